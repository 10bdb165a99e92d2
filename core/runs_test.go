package core

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunRecord(t *testing.T) {
	r, ok := parseRunRecord("7")
	require.True(t, ok)
	assert.Equal(t, runRecord{current: 7}, r)
	assert.True(t, r.covers(7, 1<<40))
	assert.False(t, r.covers(6, 1))

	r = r.renumbered(120).renumbered(0).renumbered(300)
	assert.Equal(t, "10 7:120 9:300", r.String(), "a renumber with nothing handed over leaves no mark")
	back, ok := parseRunRecord(r.String())
	require.True(t, ok)
	assert.Equal(t, r, back)
	assert.True(t, back.covers(7, 120))
	assert.False(t, back.covers(7, 121), "above the mark: uncertain")
	assert.False(t, back.covers(8, 1))
	assert.True(t, back.covers(9, 300))
	assert.True(t, back.covers(10, 5000))

	wrap := runRecord{current: 255, marks: []runMark{{0, 5}}}.renumbered(9)
	assert.Equal(t, "0 255:9", wrap.String(), "the number wraps; a mark of the reused number is dropped")
	var long runRecord
	for range 20 {
		long = long.renumbered(1)
	}
	assert.Len(t, long.marks, maxRunMarks)

	for _, bad := range []string{"", "x", "256", "-1", "3 1", "3 1:x", "3 a:1", "3 1:-2", "3 300:1"} {
		_, ok := parseRunRecord(bad)
		assert.False(t, ok, "%q", bad)
	}
}
