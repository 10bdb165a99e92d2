package urlfuzz

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/mysql"
	"github.com/go-trustlog/trustlog/drivers/postgres"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
	"github.com/go-trustlog/trustlog/internal/redact"
	"github.com/go-trustlog/trustlog/sinks/kafka"
	"github.com/go-trustlog/trustlog/sinks/memory"
	"github.com/go-trustlog/trustlog/sinks/pulsar"
)

// secret is what FuzzUserInfoSecret plants in a password.
const secret = "S3cr3tPart"

// issueURLs leaked their password through every command's error (a
// password holding an unencoded / or space, a user info holding a second
// ":" and a "/").
var issueURLs = []string{
	"postgres://u:S3cr3tPart/Two@127.0.0.1:5432/db",
	"mysql://u:My S3cr3tPart Pw@127.0.0.1:3306/db",
	"kafka://kuser:S3cr3tPart:LeakK2/x@127.0.0.1:1/topic",
}

// FuzzUserInfoSecret: a secret planted in a URL's password, whatever the
// user info around it holds (/ ? # space : @ % …), is in no error of any
// registered driver's or sink's parser, nor of core.OpenStore, OpenSink,
// OpenReplayer and Open with it, nor in redact.URL's output.
func FuzzUserInfoSecret(f *testing.F) {
	// A sqlite URL that parses opens (and may create) a file relative to
	// the working directory: keep those out of the source tree.
	f.Chdir(f.TempDir())
	for _, s := range issueURLs {
		scheme, rest, _ := strings.Cut(s, "://")
		info, tail, _ := strings.Cut(rest, "@127.0.0.1:")
		user, pw, _ := strings.Cut(info, ":")
		before, after, _ := strings.Cut(pw, secret)
		_, path, _ := strings.Cut(tail, "/")
		f.Add(scheme, user, before, after, path)
	}
	for _, s := range []string{"sqlite", "file", "postgresql", "mariadb", "pulsar", "pulsar+ssl", "memory"} {
		f.Add(s, "u", "5/", "", "x")
		f.Add(s, "u/x", "", "?y", "persistent://t/ns/x?prefix=Bad")
	}
	f.Add("postgres", "u", "5?", "", "db")
	f.Add("postgres", "u", "5#", "", "db")
	f.Add("postgres", "a", "b@h:5/", "", "db")
	f.Add("mysql", "root", "", "%zz", "test")
	f.Add("file", "0", "@", "", "0") // sqlite quoted the path "0:@S3cr3tPart@…" with the password's "@"
	f.Add("sqlite", "@", "0", "", "0")
	f.Add("kafka", "u", "", "", "t?sasl=plain&acks=maybe")
	f.Add("kafka", "u", "", "", "t?sasl=scram-sha-256")
	f.Add("memory", "u", "", "", "?latency=soon")
	f.Fuzz(func(t *testing.T, scheme, user, before, after, path string) {
		raw := scheme + "://" + user + ":" + before + secret + after + "@127.0.0.1:1/" + path
		if strings.Count(raw, secret) != 1 || decodes(user+"\x00"+path) {
			t.Skip("the secret is also outside the password")
		}
		if red := redact.URL(raw); strings.Contains(red, secret) {
			t.Fatalf("redact.URL(%q) = %q", raw, red)
		}
		check := func(what string, err error) {
			t.Helper()
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Fatalf("%s(%q): %v", what, raw, err)
			}
		}
		var accepted bool
		for name, parse := range map[string]func(string) error{
			"sqlite":   func(s string) error { _, err := sqlite.ParseURL(s); return err },
			"postgres": func(s string) error { _, _, _, err := postgres.ParseURL(s); return err },
			"mysql":    func(s string) error { _, _, _, err := mysql.ParseURL(s); return err },
			"kafka":    func(s string) error { _, err := kafka.ParseURL(s); return err },
			"pulsar":   func(s string) error { _, err := pulsar.ParseURL(s); return err },
			"memory": func(s string) error {
				m, err := memory.Open(s)
				if err == nil {
					m.Close()
				}
				return err
			},
		} {
			err := parse(raw)
			check(name+".ParseURL", err)
			accepted = accepted || err == nil
		}
		// Opening connects: pulsar's client retries for seconds, the rest
		// fail at once on 127.0.0.1:1 (sqlite's file is in a directory
		// named after the password, which does not exist).
		if accepted && strings.HasPrefix(strings.ToLower(scheme), "pulsar") {
			return
		}
		ctx := context.Background()
		if s, err := core.OpenStore(ctx, raw); err == nil {
			s.Close()
		} else {
			check("core.OpenStore", err)
		}
		if s, err := core.OpenSink(ctx, raw); err == nil {
			s.Close()
		} else {
			check("core.OpenSink", err)
		}
		if r, err := core.OpenReplayer(ctx, raw); err == nil {
			r.Close()
		} else {
			check("core.OpenReplayer", err)
		}
	})
}

// decodes reports whether s holds the secret once percent-decoded (an
// error may quote a decoded path or user).
func decodes(s string) bool {
	for _, unescape := range []func(string) (string, error){url.PathUnescape, url.QueryUnescape} {
		if d, err := unescape(s); err == nil && strings.Contains(d, secret) {
			return true
		}
	}
	return strings.Contains(strings.ToLower(s), strings.ToLower(secret))
}

// TestIssueURLs: the issue's URLs, through core.Open as an application
// opens them and through redact.URL, show no part of the password.
func TestIssueURLs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, cfg := range []core.Config{
		{Store: issueURLs[0], Sink: "memory://"},
		{Store: issueURLs[1], Sink: "memory://"},
		{Strategy: core.PublishOnly, Sink: issueURLs[2]},
		{Store: "sqlite:" + t.TempDir() + "/x.db", Sink: issueURLs[2]},
	} {
		_, err := core.Open(ctx, cfg)
		if err == nil {
			t.Fatalf("core.Open(%q, %q) succeeded", cfg.Store, cfg.Sink)
		}
		for _, part := range []string{secret, "Two", "LeakK2", " Pw"} {
			if strings.Contains(err.Error(), part) {
				t.Errorf("core.Open(%q, %q): %v", cfg.Store, cfg.Sink, err)
				break
			}
		}
	}
	for _, s := range issueURLs {
		if red := redact.URL(s); strings.Contains(red, secret) {
			t.Errorf("redact.URL(%q) = %q", s, red)
		}
	}
}
