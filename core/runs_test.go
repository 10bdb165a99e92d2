package core

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunRecord(t *testing.T) {
	r := runRecord{current: 7, base: 3}
	id, sent := r.sent(7, 2, 1<<40|9)
	assert.True(t, sent, "the current number: everything")
	assert.Equal(t, int64(5<<seqBits|9), id, "batch 3+2, the seq's low bits")
	_, sent = r.sent(6, 0, 1)
	assert.False(t, sent, "a number the record does not know")

	r = r.renumbered(10, streamSeq(3, 4, 120)).renumbered(12, 0).renumbered(20, streamSeq(12, 1, 300))
	assert.Equal(t, runRecord{current: 10, base: 20, marks: []runMark{{7, 3, 7<<seqBits | 120}, {9, 12, 13<<seqBits | 300}}}, r,
		"a renumber with nothing handed over leaves no mark")
	for _, c := range []struct {
		epoch, batch, seq int64
		want              bool
		why               string
	}{
		{7, 4, 120, true, "at the mark"},
		{7, 4, 121, false, "above the mark: uncertain"},
		{7, 3, 1 << 19, true, "an earlier batch, whatever its seq"},
		{7, 5, 1, false, "a later batch"},
		{8, 0, 1, false, "no mark"},
		{9, 1, 300, true, "at the mark, numbered from its own base"},
		{10, 1 << 20, 5000, true, "the current number"},
	} {
		_, sent := r.sent(c.epoch, c.batch, c.seq)
		assert.Equal(t, c.want, sent, c.why)
	}

	wrap := runRecord{current: 255, marks: []runMark{{0, 1, 5}}}.renumbered(4, 9)
	assert.Equal(t, runRecord{current: 0, base: 4, marks: []runMark{{255, 0, 9}}}, wrap, "the number wraps; a mark of the reused number is dropped")
	var long runRecord
	for i := range 20 {
		long = long.renumbered(int64(i), 1)
	}
	assert.Len(t, long.marks, maxRunMarks)
}

func TestRunHistory(t *testing.T) {
	first := runRecord{current: 7, base: 1}.renumbered(5, streamSeq(1, 3, 40))
	hist := runHistory{}.withLatest(first, false)
	hist.runs[0].end = "pos-a"
	second := runRecord{current: 9, base: 30}
	hist = hist.withLatest(second, false)
	assert.Equal(t, `{"runs":[{"n":[9,30]},{"n":[8,5],"m":[[7,1,4194344]],"end":"pos-a"}]}`, hist.String())
	back, ok := parseRunHistory(hist.String())
	require.True(t, ok)
	assert.Equal(t, hist, back)

	run, id, sent := back.find(7, 3, 40)
	require.NotNil(t, run)
	assert.True(t, sent)
	assert.Equal(t, "pos-a", run.end, "found in the older run, which ended at pos-a")
	assert.Equal(t, int64(4<<seqBits|40), id)
	run, _, _ = back.find(9, 0, 1)
	assert.Same(t, back.latest(), run)
	run, _, _ = back.find(3, 0, 1)
	assert.Nil(t, run, "a number no run used")

	// The latest run renumbers onto 7: the older run's mark of 7 goes.
	renumbered := back.withLatest(runRecord{current: 7, base: 40, marks: []runMark{{9, 30, 99}}}, true)
	require.Len(t, renumbered.runs, 2)
	assert.Empty(t, renumbered.runs[1].marks)
	// A new run with the older run's current number drops that run.
	assert.Len(t, back.withLatest(runRecord{current: 8}, false).runs, 2)

	var many runHistory
	for i := range maxRuns + 10 {
		many = many.withLatest(runRecord{current: int64(i)}, false)
	}
	assert.Len(t, many.runs, maxRuns)
	assert.Equal(t, int64(maxRuns+9), many.latest().current)
	// Long positions (a topic with many partitions): the oldest runs go
	// until the value fits.
	var long runHistory
	for i := range maxRuns {
		long = long.withLatest(runRecord{current: int64(i), end: strings.Repeat("9", 4000)}, false)
	}
	assert.LessOrEqual(t, len(long.String()), maxHistoryBytes)
	assert.Greater(t, len(long.runs), 1)
	assert.Equal(t, int64(maxRuns-1), long.latest().current)

	for _, bad := range []string{"", "x", "7", "7@1", "{}", `{"runs":[]}`, `{"runs":[{"n":[256,1]}]}`, `{"runs":[{"n":[-1,1]}]}`,
		`{"runs":[{"n":[3,-1]}]}`, `{"runs":[{"n":[3,1],"m":[[1,2,-2]]}]}`, `{"runs":[{"n":[3,1],"m":[[300,2,1]]}]}`,
		`{"runs":[{"n":[3,8796093022208]}]}`} {
		_, ok := parseRunHistory(bad)
		assert.False(t, ok, "%q", bad)
	}
}

func TestStreamIDs(t *testing.T) {
	// Ids rise from batch to batch whatever the seqs, and with the seq
	// within a batch of one block.
	assert.Less(t, streamSeq(1, 0, seqMask), streamSeq(1, 1, 1))
	assert.Less(t, streamSeq(1, 0, 5), streamSeq(1, 0, 6))
	assert.True(t, sameBlock(1<<seqBits, 2<<seqBits-1))
	assert.False(t, sameBlock(1<<seqBits-1, 1<<seqBits))
	token := int64(5)<<nodeShift | 7<<epochShift | maxBatch<<1 | orderedBit
	assert.Equal(t, int64(7), epochOf(token))
	assert.Equal(t, int64(maxBatch), batchOf(token))
}

func TestOpIDsLogValue(t *testing.T) {
	recs := []Record{{Op: Operation{OpID: "a"}}, {Op: Operation{OpID: "b"}}, {Op: Operation{OpID: "c"}}}
	assert.Equal(t, []string{"a", "c"}, opIDs{recs: recs, idx: []int{0, 2}}.LogValue().Any())
	var held map[int]bool // none held: an empty list, not all of them
	assert.Empty(t, opIDs{recs: recs, idx: []int{0, 1, 2}, keep: func(i int) bool { return held[i] }}.LogValue().Any())
	held = map[int]bool{1: true}
	assert.Equal(t, []string{"b"}, opIDs{recs: recs, idx: []int{0, 1, 2}, keep: func(i int) bool { return held[i] }}.LogValue().Any())
}
