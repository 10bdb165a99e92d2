// Command trustlog records, relays, inspects and verifies provable
// operations. Run `trustlog --help` for the commands, `trustlog demo` for a
// tour that needs no setup.
//
// Exit codes: 0 success, 1 failure, 2 usage error (bad flag, argument or
// input), 3 verification found a problem.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/lmittmann/tint"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/go-trustlog/trustlog/core"
	_ "github.com/go-trustlog/trustlog/drivers/mysql"
	_ "github.com/go-trustlog/trustlog/drivers/postgres"
	_ "github.com/go-trustlog/trustlog/drivers/sqlite"
	"github.com/go-trustlog/trustlog/internal/redact"
	_ "github.com/go-trustlog/trustlog/sinks/kafka"
	_ "github.com/go-trustlog/trustlog/sinks/memory"
	_ "github.com/go-trustlog/trustlog/sinks/pulsar"
)

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitVerifyKO = 3
)

// usageError marks errors that are the caller's input, not a failure.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// verifyError marks a verification that ran and found a problem.
type verifyError struct{ error }

// cliChildEnv marks a process a command started as a copy of itself
// (`bench` starts relays); a test binary seeing it runs as the CLI.
const cliChildEnv = "TRUSTLOG_CLI_CHILD"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	a.stopTracing()
	if err == nil {
		return exitOK
	}
	msg := redactErr(err)
	if !strings.HasPrefix(msg, "trustlog") {
		msg = "trustlog: " + msg
	}
	fmt.Fprintln(stderr, msg)
	var ue usageError
	var ve verifyError
	var vale *core.ValidationError
	var ce *core.ConfigError
	switch {
	case errors.As(err, &ve):
		return exitVerifyKO
	case errors.As(err, &ue), errors.As(err, &vale), errors.As(err, &ce),
		errors.Is(err, core.ErrInvalidURL), errors.Is(err, core.ErrUnknownScheme), errors.Is(err, core.ErrRepartitionRefused):
		return exitUsage
	}
	return exitFailure
}

// redactErr scrubs anything URL-like in an error message of secrets.
func redactErr(err error) string {
	words := strings.Fields(err.Error())
	for i, w := range words {
		if strings.Contains(w, "@") || strings.Contains(w, "=") {
			words[i] = redact.URL(w)
		}
	}
	return strings.Join(words, " ")
}

// app holds the global flags and what commands share.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	storeURL, sinkURL string
	logFormat         string
	logLevel          string
	signKeyFile       string
	configFile        string
	benchProgress     *progress
	benchSteps        map[string]int
	log               *slog.Logger
	tracing           *tracing // trace export, once a command asked for it (tracerProvider)
}

// envFlags maps global flags to the environment variables that set them
// when the flag is not given (flags win over the environment).
var envFlags = map[string]string{
	"store":         "TRUSTLOG_STORE",
	"sink":          "TRUSTLOG_SINK",
	"log-format":    "TRUSTLOG_LOG_FORMAT",
	"log-level":     "TRUSTLOG_LOG_LEVEL",
	"sign-key-file": "TRUSTLOG_SIGN_KEY_FILE",
}

// commandEnv maps command flags to environment variables likewise.
var commandEnv = map[string]string{
	"ledger-key-file":  "TRUSTLOG_LEDGER_KEY_FILE",
	"admin-token-file": "TRUSTLOG_ADMIN_TOKEN_FILE",
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "trustlog",
		Short: "Record, relay and verify provable operations on digital objects",
		Long: `trustlog records every operation on a digital object in the same database
transaction as the change, relays it at least once and in order per object to
an attestation sink (Kafka, Pulsar, memory), and keeps what it needs to prove
later that nothing was altered, dropped or reordered.

Stores and sinks are URLs:
  --store sqlite:trustlog.db | postgres://user@host/db | mysql://user@host/db
  --sink  memory:// | kafka://host:9092/topic | pulsar://host:6650/persistent://t/ns/topic
memory:// keeps what it is sent inside this one process (for demos and tests):
nothing outlives the process and no other process sees it, so verify-sink
refuses it; use Kafka or Pulsar for anything a second process must read.
Each global flag can come from the environment instead:
  TRUSTLOG_STORE, TRUSTLOG_SINK, TRUSTLOG_LOG_FORMAT, TRUSTLOG_LOG_LEVEL,
  TRUSTLOG_SIGN_KEY_FILE, TRUSTLOG_LEDGER_KEY_FILE, TRUSTLOG_ADMIN_TOKEN_FILE,
or from a YAML file named by --config or TRUSTLOG_CONFIG:
  store: postgres://app@db/app
  sink: kafka://kafka-1:9092/attestations
  relay:
    batch: 1000
Flags win over the environment, the environment over the file; unknown keys
in the file are errors.

Exit codes: 0 success, 1 failure, 2 usage error, 3 verification failed.`,
		Example: `  trustlog demo
  trustlog --store sqlite:app.db migrate up
  trustlog --store sqlite:app.db record < ops.jsonl
  trustlog --store sqlite:app.db --sink memory:// relay
  trustlog --store sqlite:app.db status`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.setup(cmd)
		},
	}
	f := root.PersistentFlags()
	f.StringVar(&a.storeURL, "store", "", "store URL (env TRUSTLOG_STORE)")
	f.StringVar(&a.sinkURL, "sink", "", "sink URL: kafka://…, pulsar://…, or memory:// (this process only: gone when it exits, invisible to any other) (env TRUSTLOG_SINK)")
	f.StringVar(&a.logFormat, "log-format", "auto", "log format: auto (coloured text on a terminal, JSON otherwise), text or json (env TRUSTLOG_LOG_FORMAT)")
	f.StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error (env TRUSTLOG_LOG_LEVEL)")
	f.StringVar(&a.configFile, "config", "", "YAML file with flag values; flags win over the environment, the environment over the file (env TRUSTLOG_CONFIG)")
	f.StringVar(&a.signKeyFile, "sign-key-file", "", "file with the Ed25519 note private key that signs recorded operations (env TRUSTLOG_SIGN_KEY_FILE)")
	root.AddCommand(a.migrateCmd(), a.recordCmd(), a.relayCmd(), a.statusCmd(), a.cursorCmd(), a.deadCmd(), a.demoCmd(), a.verifySinkCmd(),
		a.keygenCmd(), a.proveCmd(), a.verifyProofCmd(), a.verifyCmd(), a.pruneCmd(), a.benchCmd(), a.versionCmd(), a.witnessCmd(), a.serveCmd(), a.partitionsCmd())
	root.Version = version()
	root.SetVersionTemplate("trustlog {{.Version}}\n")
	if a.stdout != nil {
		root.SetOut(a.stdout) // before strictUsage: the completion command keeps its writer
	}
	strictUsage(root)
	return root
}

// strictUsage makes every misuse of the command line a usage error (exit
// 2, one line on stderr) rather than cobra's defaults, where an unknown
// subcommand or a bare group command prints help and exits 0, and where
// an unknown flag or a wrong argument count exits 1:
//   - a flag error names the command;
//   - a group command (root, migrate, cursor, dead, completion) run bare or
//     with an unknown subcommand names the subcommands there are;
//   - a leaf command's argument validator fails as a usage error;
//   - "help" of an unknown topic is one.
//
// It creates cobra's help and completion commands up front, so they are
// covered too.
func strictUsage(root *cobra.Command) {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	// Group commands now run (to refuse being run bare); their usage still
	// shows only "<command> [command]", not a bare "<command> [flags]".
	root.SetUsageTemplate(strings.Replace(root.UsageTemplate(),
		"{{if .Runnable}}", "{{if and .Runnable (not .HasAvailableSubCommands)}}", 1))
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usagef("%s: %v", c.CommandPath(), err)
	})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		switch {
		case c.HasParent() && c.Name() == "help" && !c.HasSubCommands():
			c.Args = helpArgs
		case c.HasSubCommands() && !c.Runnable():
			if c.SuggestionsMinimumDistance <= 0 {
				c.SuggestionsMinimumDistance = 2 // cobra's default for its own suggestions
			}
			c.Args = groupArgs
			c.RunE = func(cmd *cobra.Command, _ []string) error {
				what := "subcommand"
				if !cmd.HasParent() {
					what = "command"
				}
				return usagef("%s: missing %s: one of %s (see %s --help)", cmd.CommandPath(), what, commandNames(cmd), cmd.CommandPath())
			}
		default:
			c.Args = usageArgs(c.Args)
		}
	}
	walk(root)
}

// groupArgs refuses any argument of a group command: it is an unknown
// subcommand.
func groupArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return usagef("%s: want one of %s", msg, commandNames(cmd))
}

// helpArgs refuses help for a command that does not exist.
func helpArgs(cmd *cobra.Command, args []string) error {
	target, rest, err := cmd.Root().Find(args)
	if err != nil || target == nil || len(rest) > 0 {
		return usagef("unknown help topic %q: want one of %s", strings.Join(args, " "), commandNames(cmd.Root()))
	}
	return nil
}

// usageArgs turns the errors of an argument validator (cobra.NoArgs,
// cobra.ExactArgs, …; none means any arguments) into usage errors that
// name the command and show its usage line.
func usageArgs(validate cobra.PositionalArgs) cobra.PositionalArgs {
	if validate == nil {
		validate = cobra.ArbitraryArgs
	}
	return func(cmd *cobra.Command, args []string) error {
		err := validate(cmd, args)
		var ue usageError
		if err == nil || errors.As(err, &ue) {
			return err
		}
		msg := err.Error()
		if strings.HasPrefix(msg, "unknown command ") && len(args) > 0 {
			// cobra.NoArgs: the argument is not a subcommand but unexpected.
			msg = fmt.Sprintf("unexpected argument %q", args[0])
		}
		return usagef("%s: %s (usage: %s)", cmd.CommandPath(), msg, cmd.UseLine())
	}
}

// setup applies the environment, then the configuration file, to flags not
// given, and builds the logger.
func (a *app) setup(cmd *cobra.Command) error {
	flags := cmd.Flags()
	if v, ok := os.LookupEnv(configEnv); ok && !flags.Changed("config") {
		a.configFile = v
	}
	for _, m := range []map[string]string{envFlags, commandEnv} {
		for name, env := range m {
			if v, ok := os.LookupEnv(env); ok && flags.Lookup(name) != nil && !flags.Changed(name) {
				if err := flags.Set(name, v); err != nil {
					return usagef("%s: %v", env, err)
				}
			}
		}
	}
	if a.configFile != "" {
		settings, err := loadConfig(cmd.Root(), a.configFile)
		if err != nil {
			return err
		}
		if err := applyConfig(cmd, flags, settings); err != nil {
			return err
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(a.logLevel)); err != nil {
		return usagef("--log-level %q: want debug, info, warn or error", a.logLevel)
	}
	// JSON shows durations as the text does ("12.884s"), not as
	// nanoseconds.
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, attr slog.Attr) slog.Attr {
		if attr.Value.Kind() == slog.KindDuration {
			return slog.String(attr.Key, attr.Value.Duration().String())
		}
		return redactAttr(groups, attr)
	}}
	tty := false
	if f, ok := a.stderr.(*os.File); ok {
		tty = isatty.IsTerminal(f.Fd())
	}
	switch a.logFormat {
	case "json":
		a.log = slog.New(slog.NewJSONHandler(a.stderr, opts))
	case "text":
		a.log = slog.New(tint.NewTextHandler(a.stderr, &tint.Options{Level: level, ReplaceAttr: redactAttr, NoColor: !tty}))
	case "auto":
		if tty {
			a.log = slog.New(tint.NewTextHandler(a.stderr, &tint.Options{Level: level, ReplaceAttr: redactAttr}))
		} else {
			a.log = slog.New(slog.NewJSONHandler(a.stderr, opts))
		}
	default:
		return usagef("--log-format %q: want auto, text or json", a.logFormat)
	}
	return nil
}

// redactAttr scrubs secrets from every string logged: connection strings
// and errors that quote them.
func redactAttr(_ []string, attr slog.Attr) slog.Attr {
	switch attr.Value.Kind() {
	case slog.KindString:
		if s := attr.Value.String(); strings.ContainsAny(s, "@=") {
			return slog.String(attr.Key, redact.URL(s))
		}
	case slog.KindAny:
		if err, ok := attr.Value.Any().(error); ok {
			return slog.String(attr.Key, redactErr(err))
		}
	}
	return attr
}

// signer loads --sign-key-file, or returns nil when none is given.
func (a *app) signer() (core.Signer, error) {
	if a.signKeyFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(a.signKeyFile)
	if err != nil {
		return nil, usagef("--sign-key-file: %v", err)
	}
	s, err := core.NewEd25519Signer(string(b))
	if err != nil {
		return nil, usagef("--sign-key-file %s: %v", a.signKeyFile, err)
	}
	return s, nil
}

// openStore opens --store, refusing one without trustlog's schema.
func (a *app) openStore(ctx context.Context) (core.Store, error) {
	s, err := a.openStoreUnchecked(ctx)
	if err != nil {
		return nil, err
	}
	if _, perr := url.Parse(a.sinkURL); perr != nil {
		// Configuration first: the command reports this sink URL when
		// it opens the sink (verify-sink), whatever the store holds.
		return s, nil
	}
	if err := requireSchema(ctx, s, ""); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// openStoreUnchecked opens --store as it is (for the migrate commands).
func (a *app) openStoreUnchecked(ctx context.Context) (core.Store, error) {
	if a.storeURL == "" {
		return nil, usagef("no store: give --store or set TRUSTLOG_STORE (e.g. sqlite:trustlog.db)")
	}
	return core.OpenStore(ctx, a.storeURL)
}

// openClient opens --store and, unless StoreOnly, --sink.
func (a *app) openClient(ctx context.Context, strategy core.Strategy, engine core.EngineConfig, migrate bool) (*core.Client, error) {
	if a.storeURL == "" && strategy != core.PublishOnly {
		return nil, usagef("no store: give --store or set TRUSTLOG_STORE (e.g. sqlite:trustlog.db)")
	}
	if a.sinkURL == "" && strategy != core.StoreOnly {
		return nil, usagef("no sink: give --sink or set TRUSTLOG_SINK (e.g. memory://)")
	}
	signer, err := a.signer()
	if err != nil {
		return nil, err
	}
	engine.Logger = a.log
	if engine.Telemetry.TracerProvider == nil {
		if engine.Telemetry.TracerProvider, err = a.tracerProvider(ctx); err != nil {
			return nil, err
		}
	}
	c, err := core.Open(ctx, core.Config{
		Store: a.storeURL, Sink: a.sinkURL, Strategy: strategy, Signer: signer,
		Engine: engine, Migrate: migrate, Logger: a.log,
		Telemetry: core.Telemetry{TracerProvider: engine.Telemetry.TracerProvider},
	})
	if migrate || strategy == core.PublishOnly || err != nil && !transient(err) {
		return c, err
	}
	// A store without the schema is a usage error, found with one query
	// now rather than by every statement (and a relay retrying them):
	// after the configuration errors Open reports, and before waiting for
	// a sink that is down.
	hint := ""
	if strategy == core.StoreAndPublish || engine.Ledger != nil {
		hint = " (or --migrate)" // the relay's flag
	}
	if err != nil {
		if s, serr := a.openStoreUnchecked(ctx); serr == nil {
			serr = requireSchema(ctx, s, hint)
			s.Close()
			if errors.As(serr, new(usageError)) {
				return nil, serr
			}
		}
		return nil, err
	}
	if err := requireSchema(ctx, c.Store(), hint); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// opIDArgs is the argument validator of commands whose arguments are
// op_ids (core.CheckOpID). Anything else is a usage error naming the
// argument, never a "not found".
func opIDArgs(cmd *cobra.Command, args []string) error {
	for _, id := range args {
		var ve *core.ValidationError
		if errors.As(core.CheckOpID(id), &ve) {
			return usagef("%s: op_id %q: %s", cmd.CommandPath(), id, ve.Reason)
		}
	}
	return nil
}

// opIDs returns op_ids that passed opIDArgs in the lower case the store
// holds them in (core's Seal normalises them so).
func opIDs(args []string) []string {
	out := make([]string, len(args))
	for i, id := range args {
		out[i] = strings.ToLower(id)
	}
	return out
}
