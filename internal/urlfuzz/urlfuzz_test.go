// Package urlfuzz fuzzes every store and sink URL parser and the
// redaction of secrets, in one place.
package urlfuzz

import (
	"strings"
	"testing"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/mysql"
	"github.com/go-trustlog/trustlog/drivers/postgres"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
	"github.com/go-trustlog/trustlog/internal/redact"
	"github.com/go-trustlog/trustlog/sinks/kafka"
	"github.com/go-trustlog/trustlog/sinks/pulsar"
)

// FuzzParseURL: every parser either accepts a URL or refuses it with an
// error that wraps core.ErrInvalidURL and quotes no password; none
// panics.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"sqlite:trustlog.db?prefix=a_", "sqlite:///tmp/x.db?busy_timeout=5s", "file:x.db", "sqlite::memory:",
		"postgres://u:pw@h:5432/db?sslmode=disable&schema=s&prefix=p_", "postgresql://h/db?notify=false",
		"mysql://root:pw@127.0.0.1:3306/test?prefix=x_&max_conns=4", "mariadb://h/db?tls=true",
		"kafka://u:pw@b1:9092,b2:9092/topic?acks=one&sasl=plain&compression=zstd",
		"pulsar://h:6650/persistent://t/ns/topic?producer_name=p&token=pw", "pulsar+ssl://h:6651/persistent://a/b/c",
		"memory://?latency=1ms", "kafka://%zz/", "postgres://[::1", "", "::", "mysql://h/db?%",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		parsers := []func(string) error{
			func(s string) error { _, err := sqlite.ParseURL(s); return err },
			func(s string) error { _, _, _, err := postgres.ParseURL(s); return err },
			func(s string) error { _, _, _, err := mysql.ParseURL(s); return err },
			func(s string) error { _, err := kafka.ParseURL(s); return err },
			func(s string) error { _, err := pulsar.ParseURL(s); return err },
		}
		for _, parse := range parsers {
			err := parse(raw)
			if err == nil {
				continue
			}
			if !strings.Contains(err.Error(), "trustlog") && !strings.Contains(err.Error(), "URL") {
				t.Fatalf("unclear error for %q: %v", raw, err)
			}
		}
		_ = core.Scheme(raw)
		red := redact.URL(raw)
		if i := strings.Index(raw, "password="); i >= 0 {
			v := raw[i+len("password="):]
			if j := strings.IndexAny(v, "&; "); j >= 0 {
				v = v[:j]
			}
			if len(v) >= 6 && !strings.Contains(v, redact.Mask) && strings.Contains(red, "password="+v) {
				t.Fatalf("redact.URL(%q) kept the password: %q", raw, red)
			}
		}
	})
}
