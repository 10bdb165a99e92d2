package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestJSONLogDurations: JSON log lines show durations as Go duration
// strings ("12.884430053s"), as the text format does, not as nanosecond
// integers; in groups too; and strings are still redacted.
func TestJSONLogDurations(t *testing.T) {
	t.Parallel()
	var errOut bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &errOut}
	root := a.rootCmd()
	root.SetArgs([]string{"--log-format", "json", "version"})
	require.NoError(t, root.Execute())
	require.NotNil(t, a.log)
	a.log.Info("paused", "pause", 12884430053*time.Nanosecond, slog.Group("retry", "in", 1500*time.Millisecond),
		"store", "postgres://app:s3cr3t@db/app")
	var line map[string]any
	require.NoError(t, json.Unmarshal(errOut.Bytes(), &line), errOut.String())
	assert.Equal(t, "12.884430053s", line["pause"])
	assert.Equal(t, map[string]any{"in": "1.5s"}, line["retry"])
	assert.NotContains(t, errOut.String(), "s3cr3t")
}
