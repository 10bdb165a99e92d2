package benchplot

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDocsPlotsReproduce: each docs/bench/NAME.png is exactly what
// `go run ./internal/tools/benchplot docs/bench/*.json` draws from
// docs/bench/NAME.json.
func TestDocsPlotsReproduce(t *testing.T) {
	t.Parallel()
	runs, err := filepath.Glob("../../docs/bench/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, runs)
	for _, in := range runs {
		name := filepath.Base(in[:len(in)-len(".json")])
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rep, err := ReadReport(in)
			require.NoError(t, err)
			require.NotEmpty(t, rep.Latency)
			require.NotEmpty(t, rep.Backlog)
			out := filepath.Join(t.TempDir(), name+".png")
			require.NoError(t, WriteReport(out, rep))
			drawn, err := os.ReadFile(out)
			require.NoError(t, err)
			committed, err := os.ReadFile("../../docs/bench/" + name + ".png")
			require.NoError(t, err)
			assert.True(t, bytes.Equal(drawn, committed),
				"docs/bench/%s.png is not what its JSON draws now: run `go run ./internal/tools/benchplot docs/bench/*.json`", name)
		})
	}
}

// TestEmptyPanels: a report without the latency or backlog workload still
// draws, each missing panel saying so.
func TestEmptyPanels(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "empty.png")
	require.NoError(t, WriteReport(out, &Report{Store: "sqlite (temporary file)"}))
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")), "a PNG file")
}

// TestReadReportRefuses: a file that is not a bench report is named.
func TestReadReportRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{"text.json": "hello", "other.json": `{"latency":[]}`} {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		_, err := ReadReport(path)
		assert.True(t, errors.Is(err, ErrNotReport), "%s: %v", name, err)
		assert.ErrorContains(t, err, path)
	}
	_, err := ReadReport(filepath.Join(dir, "absent.json"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}
