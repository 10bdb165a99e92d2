package redact

import (
	"strings"
	"testing"
)

// TestURLUnencodedPassword: a password holding an unencoded / ? # space
// or : ends the user info early for a URL parser, which then reads part
// of it as the port, path, query or fragment (or refuses the URL). None of
// it may survive, in a URL alone or quoted in an error message.
func TestURLUnencodedPassword(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, secret string }{
		{"postgres://u:S3cr3tPart/Two@127.0.0.1:5432/db", "S3cr3tPart"},
		{"postgres://u:S3cr3tPart/Two@127.0.0.1:5432/db", "Two"},
		{"mysql://u:My Secret Pw@127.0.0.1:3306/db", "Secret"},
		{"kafka://kuser:LeakK1:LeakK2/x@127.0.0.1:1/topic", "LeakK1"},
		{"kafka://kuser:LeakK1:LeakK2/x@127.0.0.1:1/topic", "LeakK2"},
		{"postgres://u:5/S3cr3tPart@h/db", "S3cr3tPart"},      // parses: host u, port 5
		{"postgres://u:5?S3cr3tPart@h/db", "S3cr3tPart"},      // parses: a query
		{"postgres://u:5#S3cr3tPart@h/db", "S3cr3tPart"},      // parses: a fragment
		{"postgres://u/x:S3cr3tPart@h/db", "S3cr3tPart"},      // parses: host u
		{"postgres://a:b@h:5/S3cr3tPart@h2/db", "S3cr3tPart"}, // password b@h:5/S3cr3tPart
		{"postgres://u:S3cr3tPart\"x@h/db", "S3cr3tPart"},
		{`"postgres://u:S3cr3tPart/Two@127.0.0.1:5432/db":`, "S3cr3tPart"},
		{"0:@S3cr3tPart@127.0.0.1:1", "S3cr3tPart"},        // no scheme: a sqlite path, a go-sql-driver DSN
		{"root:a@S3cr3tPart@tcp(h:3306)/db", "S3cr3tPart"}, // go-sql-driver: the password is a@S3cr3tPart
		{`postgres URL "mysql://u:My Secret Pw@127.0.0.1:3306/db": no`, "Secret"},
	} {
		if got := URL(c.in); strings.Contains(got, c.secret) {
			t.Errorf("URL(%q) = %q still holds %q", c.in, got, c.secret)
		}
	}
}

// TestURLKeepsUser: redaction hides secrets only; a URL with no password
// keeps its user, alone or quoted in an error message (the command line
// redacts each word of an error).
func TestURLKeepsUser(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://postgres@127.0.0.1:5432/test?prefix=A":       "postgres://postgres@127.0.0.1:5432/test?prefix=A",
		`"postgres://postgres@127.0.0.1:5432/test?prefix=A":`:    `"postgres://postgres@127.0.0.1:5432/test?prefix=A":`,
		`"postgres://app:pw@127.0.0.1:5432/test?prefix=A":`:      `"postgres://app:xxxxx@127.0.0.1:5432/test?prefix=A":`,
		"postgres://app@h/db?sslmode=disable&application_name=x": "postgres://app@h/db?sslmode=disable&application_name=x",
		"sqlite:///tmp/a@b.db":                                   "sqlite:///tmp/a@b.db",
		"kafka://u:pw@b1:9092/ops":                               "kafka://u:xxxxx@b1:9092/ops",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAmbiguousUserInfo(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{
		"postgres://u:S3cr3tPart/Two@127.0.0.1:5432/db":    true,
		"postgres://u:5#x@h/db":                            true,
		"mysql://u:My Secret Pw@127.0.0.1:3306/db":         true,
		"kafka://kuser:LeakK1:LeakK2/x@127.0.0.1:1/topic":  true,
		"postgres://h:5432/db?application_name=me@corp":    true, // write %40
		"postgres://u:p@ss:w@h:5432/db":                    false,
		"postgres://postgres@127.0.0.1:5432/test?prefix=A": false,
		"pulsar://h:6650/persistent://t/ns/x":              false,
		"sqlite:///tmp/a@b.db":                             false,
		"sqlite:rel/a@b.db":                                false,
		`"postgres://u:a/b@h/db"`:                          false, // not a URL
	} {
		if got := AmbiguousUserInfo(in); got != want {
			t.Errorf("AmbiguousUserInfo(%q) = %v, want %v", in, got, want)
		}
	}
}
