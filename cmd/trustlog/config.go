package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// The optional configuration file (--config or TRUSTLOG_CONFIG) is YAML.
// Top-level keys are global flags (store, sink, log-level, …) or flags that
// several commands share (ledger-key-file); a key whose value is a mapping
// names a command and holds that command's flags, nested for subcommands:
//
//	store: postgres://app@db.internal/app
//	sink: kafka://kafka-1:9092/attestations
//	log-level: info
//	relay:
//	  batch: 1000
//	  workers: 4
//	dead:
//	  list:
//	    limit: 20
//
// A value applies only where neither the flag nor its environment variable
// was given: flags win over the environment, the environment over the file.
// Unknown keys are errors, so a typo does not silently fall back to a
// default.

// configEnv names the environment variable that points at the file.
const configEnv = "TRUSTLOG_CONFIG"

// configSetting is one value from the file, addressed to a command path.
type configSetting struct {
	path  []string // command path below the root; empty for top-level keys
	name  string
	value string
}

// loadConfig reads and validates the file against the command tree.
func loadConfig(root *cobra.Command, file string) ([]configSetting, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, usagef("--config: %v", err)
	}
	var doc map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, usagef("config file %s: %v", file, err)
	}
	var out []configSetting
	if err := walkConfig(root, file, nil, doc, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// walkConfig checks the keys of one mapping against the command at path.
func walkConfig(root *cobra.Command, file string, path []string, m map[string]any, out *[]configSetting) error {
	cmd := root
	for _, p := range path {
		cmd = subcommand(cmd, p)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m[k]
		where := strings.Join(append(append([]string{}, path...), k), ".")
		if sub, ok := v.(map[string]any); ok {
			if subcommand(cmd, k) == nil {
				return usagef("config file %s: %q is not a command (sections name commands: %s)", file, where, commandNames(cmd))
			}
			if err := walkConfig(root, file, append(append([]string{}, path...), k), sub, out); err != nil {
				return err
			}
			continue
		}
		if !configurable(root, cmd, k) {
			return usagef("config file %s: unknown key %q (see trustlog %s --help for the flags)", file, where, strings.Join(path, " "))
		}
		s, err := configValue(v)
		if err != nil {
			return usagef("config file %s: %s: %v", file, where, err)
		}
		*out = append(*out, configSetting{path: path, name: k, value: s})
	}
	return nil
}

// configurable reports whether key names a flag the file may set at cmd:
// a global flag or a shared command flag at the top, the command's own
// flags in a section.
func configurable(root, cmd *cobra.Command, key string) bool {
	if cmd == root {
		if root.PersistentFlags().Lookup(key) != nil {
			return true
		}
		_, shared := commandEnv[key]
		return shared
	}
	return key != "help" && cmd.Flags().Lookup(key) != nil
}

// configValue renders a YAML scalar or list as a flag value.
func configValue(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", fmt.Errorf("no value")
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			if _, ok := e.(map[string]any); ok {
				return "", fmt.Errorf("a list of mappings is not a flag value")
			}
			parts[i] = fmt.Sprint(e)
		}
		return strings.Join(parts, ","), nil
	default:
		return fmt.Sprint(v), nil
	}
}

func subcommand(cmd *cobra.Command, name string) *cobra.Command {
	if cmd == nil {
		return nil
	}
	for _, c := range cmd.Commands() {
		if c.Name() == name {
			return c
		}
	}
	return nil
}

func commandNames(cmd *cobra.Command) string {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return strings.Join(names, ", ")
}

// applyConfig sets, on the running command's flags, the file's values for
// flags given neither on the command line nor in the environment.
func applyConfig(running *cobra.Command, flags *pflag.FlagSet, settings []configSetting) error {
	var path []string
	for c := running; c.HasParent(); c = c.Parent() {
		path = append([]string{c.Name()}, path...)
	}
	// A command's own section wins over the top level.
	settings = append([]configSetting(nil), settings...)
	sort.SliceStable(settings, func(i, j int) bool { return len(settings[i].path) > len(settings[j].path) })
	for _, s := range settings {
		if !isPrefix(s.path, path) {
			continue
		}
		f := flags.Lookup(s.name)
		if f == nil || f.Changed {
			continue
		}
		if err := flags.Set(s.name, s.value); err != nil {
			return usagef("config file: %s: %v", strings.Join(append(append([]string{}, s.path...), s.name), "."), err)
		}
	}
	return nil
}

// isPrefix reports whether a section addresses the running command: the
// top level addresses every command, "relay" only relay, "dead.list" only
// that subcommand.
func isPrefix(section, path []string) bool {
	if len(section) == 0 {
		return true
	}
	if len(section) != len(path) {
		return false
	}
	for i := range section {
		if section[i] != path[i] {
			return false
		}
	}
	return true
}
