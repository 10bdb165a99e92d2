package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/internal/testenv"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/ledger"
	"github.com/go-trustlog/trustlog/sinks/kafka/kafkatest"
)

// readmeNotRun are the commands of README.md's sh blocks that TestREADME
// does not run, each with the reason. A command added to the README is
// either run or listed here.
var readmeNotRun = map[string]string{
	"go test -race ./...": "the test suite itself, which includes this test",
	"trustlog --store sqlite:app.db serve --log-key log.pub": "serves until interrupted; TestServeCommand and TestServeDemoStore run it",
}

// readmeOps is ops.jsonl, the reader's own operations that the README's
// record command reads: three lines of the kind record's help shows.
const readmeOps = `{"op_source":"DOIP","op_type":"Op.Create","doid":"10.1000/obj-1","do_prefix":"10.1000","op_actor":"alice","producer_id":"svc"}
{"op_source":"DOIP","op_type":"Op.Update","doid":"10.1000/obj-1","do_prefix":"10.1000","op_actor":"alice","producer_id":"svc"}
{"op_source":"IRP","op_type":"100","doid":"10.1000/obj-2","do_prefix":"10.1000","op_actor":"bob","producer_id":"svc"}
`

// readmeCommand is one command line of a sh block of README.md.
type readmeCommand struct {
	line          int    // in README.md
	text          string // without its comment, spaces collapsed
	args          []string
	stdin, stdout string // files of < and >
}

// readmeCommands returns the command lines of README.md's sh blocks, in
// order. Shell syntax beyond words, quotes, comments, < and > fails the
// test: it is a command the test would not run as written.
func readmeCommands(t *testing.T) []readmeCommand {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	var cmds []readmeCommand
	inSh := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "```"):
			inSh = !inSh && line == "```sh"
			continue
		case !inSh || line == "" || line[0] == '#':
			continue
		}
		words, err := shellWords(line)
		require.NoError(t, err, "README.md line %d: %s", n, line)
		c := readmeCommand{line: n}
		for i := 0; i < len(words); i++ {
			switch w := words[i]; w {
			case "<", ">":
				require.Less(t, i+1, len(words), "README.md line %d: %s names no file", n, w)
				if w == "<" {
					c.stdin = words[i+1]
				} else {
					c.stdout = words[i+1]
				}
				i++
			default:
				c.args = append(c.args, w)
			}
		}
		c.text = strings.Join(words, " ")
		cmds = append(cmds, c)
	}
	require.NoError(t, sc.Err())
	return cmds
}

// shellWords splits a command line into words as sh would for the
// syntax the README uses: blanks, '…' and "…" quotes, a # comment. It
// refuses pipes, lists, substitutions and variables.
func shellWords(line string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words, inWord = append(words, w.String()), false
				w.Reset()
			}
		case c == '#' && !inWord:
			return words, nil
		case c == '\'' || c == '"':
			end := strings.IndexByte(line[i+1:], c)
			if end < 0 {
				return nil, fmt.Errorf("unterminated %c quote", c)
			}
			w.WriteString(line[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case strings.IndexByte("|&;$`\\(){}*?", c) >= 0:
			return nil, fmt.Errorf("shell syntax %q: TestREADME runs words, quotes, < and > only", c)
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// TestREADME runs every command of README.md's sh blocks, in order, in
// one temporary directory, except those in readmeNotRun. The trustlog
// commands run in-process (`go run ./cmd/trustlog` is this package);
// each must exit 0. A relay runs until every operation is published
// (with a sink) and, with --ledger-key-file, sequenced and covered by a
// signed checkpoint; then it is stopped as SIGINT would stop it. Inputs
// the README assumes are the reader's (ops.jsonl) are written first;
// placeholders are filled in: <op_id> by an operation recorded above,
// "--store …" and the Kafka sink of verify-sink by a store that relayed
// to a new topic on the real broker (kafkatest.Server; the command skips
// without one, with how to start it). bench --quick runs with the sizes
// of TestBenchSQLite.
//
// Not parallel: it changes the working directory.
func TestREADME(t *testing.T) {
	cmds := readmeCommands(t)
	dir := t.TempDir()
	t.Chdir(dir)
	require.NoError(t, os.WriteFile("ops.jsonl", []byte(readmeOps), 0o600))
	ctx := context.Background()
	var opID string // the first operation recorded
	excluded := map[string]bool{}
	for _, c := range cmds {
		if why, ok := readmeNotRun[c.text]; ok {
			excluded[c.text] = true
			t.Logf("README.md line %d not run: %s: %s", c.line, c.text, why)
			continue
		}
		ok := t.Run(fmt.Sprintf("line %d %s", c.line, strings.Join(c.args[:min(len(c.args), 4)], " ")), func(t *testing.T) {
			args := slices.Clone(c.args)
			switch {
			case slices.Equal(args[:min(len(args), 3)], []string{"go", "run", "./cmd/trustlog"}):
				args = args[3:]
			case args[0] == "trustlog":
				args = args[1:]
			default:
				t.Fatalf("README.md line %d: %s: neither a trustlog command nor in readmeNotRun (say why it is not run)", c.line, c.text)
			}
			for i, a := range args {
				if a == "<op_id>" {
					require.NotEmpty(t, opID, "no operation recorded before line %d", c.line)
					args[i] = opID
				}
			}
			if slices.Contains(args, "verify-sink") {
				args = readmeKafkaStore(t, ctx, args)
			}
			if slices.Contains(args, "bench") {
				args = append(args, tinyBench...)
			}
			require.NotContains(t, strings.Join(args, " "), "…", "a placeholder the test does not fill in")
			out := readmeRun(t, ctx, c, args)
			if slices.Contains(args, "record") && opID == "" {
				var first struct {
					OpID string `json:"op_id"`
				}
				line, _, _ := strings.Cut(out, "\n")
				require.NoError(t, json.Unmarshal([]byte(line), &first), "record prints op_id and op_hash: %s", out)
				opID = first.OpID
			}
		})
		if !ok {
			// Later commands build on this one's files and store.
			for _, r := range cmds {
				if r.line > c.line {
					if _, ok := readmeNotRun[r.text]; !ok {
						t.Logf("README.md line %d not run: line %d failed", r.line, c.line)
					}
				}
			}
			return
		}
	}
	for text := range readmeNotRun {
		assert.True(t, excluded[text], "readmeNotRun lists %q, which is no longer a README command", text)
	}
}

// readmeRun runs one README command in-process with its redirections
// and returns its standard output. A relay runs until readmeRelayDone.
func readmeRun(t *testing.T, ctx context.Context, c readmeCommand, args []string) string {
	t.Helper()
	var stdin io.Reader = strings.NewReader("")
	if c.stdin != "" {
		f, err := os.Open(c.stdin)
		require.NoError(t, err, "%s reads %s", c.text, c.stdin)
		defer f.Close()
		stdin = f
	}
	var out, errOut testenv.Buffer // a relay writes them while the test waits
	var stdout io.Writer = &out
	if c.stdout != "" {
		f, err := os.OpenFile(c.stdout, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		require.NoError(t, err)
		defer f.Close()
		stdout = f
	}
	code := 0
	if slices.Contains(args, "relay") {
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan int, 1)
		go func() { done <- run(rctx, args, stdin, stdout, &errOut) }()
		exited := false
		require.Eventually(t, func() bool {
			select {
			case code = <-done:
				exited = true
				return true
			default:
				return readmeRelayDone(t, ctx, args)
			}
		}, testenv.Patience(t), 50*time.Millisecond, "%s: the relay did not finish its work", c.text)
		require.False(t, exited, "%s: the relay exited by itself (code %d): %s", c.text, code, errOut.String())
		cancel() // as SIGINT does
		code = <-done
	} else {
		code = run(ctx, args, stdin, stdout, &errOut)
	}
	require.Equal(t, 0, code, "%s\nstdout:\n%s\nstderr:\n%s", c.text, out.String(), errOut.String())
	if c.stdout != "" {
		st, err := os.Stat(c.stdout)
		require.NoError(t, err)
		assert.Positive(t, st.Size(), "%s writes %s", c.text, c.stdout)
	}
	return out.String()
}

// flagValue returns the value of --name in args, or "".
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// readmeRelayDone reports whether the relay that args start has done all
// there is: with a sink, every stored operation published; with
// --ledger-key-file, every one sequenced and a signed checkpoint of the
// whole log.
func readmeRelayDone(t *testing.T, ctx context.Context, args []string) bool {
	s, err := core.OpenStore(ctx, flagValue(args, "store"))
	require.NoError(t, err)
	defer s.Close()
	st, err := s.Stats(ctx)
	require.NoError(t, err)
	var total int64
	for _, n := range st.Counts {
		total += n
	}
	if flagValue(args, "sink") != "" && st.Counts[core.StatePublished] != total {
		return false
	}
	if flagValue(args, "ledger-key-file") == "" {
		return true
	}
	ls, ok := s.(ledger.Storage)
	require.True(t, ok, "the store has a ledger")
	size, err := ls.TreeSize(ctx)
	require.NoError(t, err)
	if size != total {
		return false
	}
	cps, err := ls.Checkpoints(ctx, ledger.CheckpointQuery{Latest: true})
	require.NoError(t, err)
	return len(cps) == 1 && cps[0].Size == size
}

// readmeKafkaStore prepares what the README's verify-sink line stands for
// ("--store …" that relayed to a Kafka topic): ops.jsonl recorded into a
// new store and relayed to a new topic on the real broker. It returns
// args with that store and the topic's sink URL, the rest (the command
// and its flags) as the README has them.
func readmeKafkaStore(t *testing.T, ctx context.Context, args []string) []string {
	r := kafkatest.NeedReal(t)
	topic := kafkatest.Topic()
	r.CreateTopic(t, topic, 3)
	store, sink := "sqlite:kafka.db", r.URL(topic)
	for _, step := range [][]string{
		{"--store", store, "migrate", "up"},
		{"--store", store, "record", "--file", "ops.jsonl"},
	} {
		code, _, errOut := cli(t, ctx, "", step...)
		require.Equal(t, 0, code, "%v: %s", step, errOut)
	}
	readmeRun(t, ctx, readmeCommand{text: "relay to " + sink}, []string{"--store", store, "--sink", sink, "relay"})
	out := slices.Clone(args)
	for i, a := range out {
		switch {
		case i > 0 && out[i-1] == "--store":
			out[i] = store
		case i > 0 && out[i-1] == "--sink":
			require.True(t, strings.HasPrefix(a, "kafka://"), "verify-sink's sink in the README is Kafka: %s", a)
			out[i] = sink
		}
	}
	return out
}
