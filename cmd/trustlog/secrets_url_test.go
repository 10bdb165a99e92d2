package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/go-trustlog/trustlog/internal/redact"
)

// TestSecretsInUnparseableURLs: a password holding an unencoded / ? # or
// space is in no command's output, whether the URL parser refuses the URL
// or reads part of the password as its port, path or query.
func TestSecretsInUnparseableURLs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sqlite := "sqlite:" + filepath.Join(t.TempDir(), "x.db")
	for _, c := range []struct {
		args   []string
		secret string
	}{
		{[]string{"--store", "postgres://u:S3cr3tPart/Two@127.0.0.1:5432/db", "status"}, "S3cr3tPart"},
		{[]string{"--store", "postgres://u:5/S3cr3tPart@127.0.0.1:5432/db", "status"}, "S3cr3tPart"},
		{[]string{"--store", "mysql://u:My Secret Pw@127.0.0.1:3306/db", "status"}, "Secret"},
		{[]string{"--store", "mysql://u:5?S3cr3tPart@127.0.0.1:3306/db", "migrate", "up"}, "S3cr3tPart"},
		{[]string{"--store", sqlite, "--sink", "kafka://kuser:LeakK1:LeakK2/x@127.0.0.1:1/topic", "relay"}, "LeakK"},
		{[]string{"--store", sqlite, "--sink", "pulsar://u:a/S3cr3tPart@127.0.0.1:1/persistent://t/ns/x", "verify-sink"}, "S3cr3tPart"},
	} {
		code, out, errOut := cli(t, ctx, "", c.args...)
		assert.Equal(t, exitUsage, code, "%v: %s", c.args, errOut)
		assert.NotContains(t, out+errOut, c.secret, "%v", c.args)
		assert.Contains(t, errOut, "percent-encoded", "%v says what to do", c.args)
	}
}

// TestErrorsShowTheUser: an error quoting a URL with no password shows it
// whole, user included, for the command line redacts each word of an
// error (the URL there is in quotes).
func TestErrorsShowTheUser(t *testing.T) {
	t.Parallel()
	code, _, errOut := cli(t, context.Background(), "", "--store", "postgres://postgres@127.0.0.1:5432/test?prefix=A", "status")
	assert.Equal(t, exitUsage, code, errOut)
	assert.Contains(t, errOut, `"postgres://postgres@127.0.0.1:5432/test?prefix=A"`)
	assert.NotContains(t, errOut, redact.Mask, "nothing to mask")
}
