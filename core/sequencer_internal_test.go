package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"
)

// commitStore is a Store of visible ("committed") rows for the sequencer
// alone; the other methods are never called (the embedded nil Store would
// panic). afterFirstAppend runs inside the first Append, before it
// returns, and the second Unsequenced read (the prefetch) waits for it:
// rows that commit while a batch is appended are what that read sees.
type commitStore struct {
	Store
	mu               sync.Mutex
	rows             []Record // visible, by seq
	hashes           []tlog.Hash
	reads            int
	afterFirstAppend func()
	appended         chan struct{}
}

func (s *commitStore) Unsequenced(_ context.Context, after int64, limit int) ([]Record, error) {
	s.mu.Lock()
	s.reads++
	second := s.reads == 2
	s.mu.Unlock()
	if second {
		<-s.appended
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Record
	for _, r := range s.rows {
		if r.LeafIndex < 0 && r.Seq > after && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *commitStore) TreeSize(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := int64(0)
	for _, r := range s.rows {
		if r.LeafIndex >= 0 {
			n++
		}
	}
	return n, nil
}

func (s *commitStore) ReadHashes(_ context.Context, idx []int64) ([]tlog.Hash, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = s.hashes[x]
	}
	return out, nil
}

func (s *commitStore) Append(_ context.Context, old int64, seqs []int64, hashes []tlog.Hash) error {
	s.mu.Lock()
	first := s.afterFirstAppend
	s.afterFirstAppend = nil
	for i, seq := range seqs {
		j := slices.IndexFunc(s.rows, func(r Record) bool { return r.Seq == seq })
		s.rows[j].LeafIndex = old + int64(i)
	}
	s.hashes = append(s.hashes, hashes...)
	s.mu.Unlock()
	if first != nil {
		first()
		close(s.appended)
	}
	return nil
}

func (s *commitStore) commit(seq int64, doid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	op := Operation{Source: SourceDOIP, Type: OpUpdate, DOID: doid, DOPrefix: "10.1000", Actor: "a", ProducerID: "p"}
	if err := op.Seal(nil); err != nil {
		panic(err)
	}
	s.rows = append(s.rows, Record{Seq: seq, Op: op, LeafIndex: -1})
	slices.SortFunc(s.rows, func(a, b Record) int { return int(a.Seq - b.Seq) })
}

// TestSequencerKeepsCommitOrderPerObject: operation A of an object took
// seq 2 but committed only while the sequencer appended a batch holding
// seqs 1 and 3; then B, recorded after A on the same object, took seq 4
// and committed. B must not get a position before A: a next read "after
// the last batch's seq" (3) would see B and not A, and publish the
// object's operations out of the order they committed in.
func TestSequencerKeepsCommitOrderPerObject(t *testing.T) {
	t.Parallel()
	s := &commitStore{appended: make(chan struct{})}
	s.commit(1, "10.1000/z")
	s.commit(3, "10.1000/y")
	s.afterFirstAppend = func() {
		s.commit(2, "10.1000/x") // A commits late
		s.commit(4, "10.1000/x") // then B, after it
	}
	n, err := SequenceAll(context.Background(), s, 2)
	require.NoError(t, err)
	if n < 4 {
		m, err := SequenceAll(context.Background(), s, 2)
		require.NoError(t, err)
		n += m
	}
	require.Equal(t, 4, n)
	pos := map[int64]int64{}
	for _, r := range s.rows {
		pos[r.Seq] = r.LeafIndex
	}
	assert.Less(t, pos[2], pos[4], "A (seq 2) before B (seq 4), the order they committed in: %v", pos)
}

// overlapStore is a commitStore that overlaps appends
// (OverlappingAppender): AppendAfter checks the size only after prev
// returned nil. An Append at an oldSize in fail fails; inFirst runs inside
// the Append at size 0 before it commits (the next batch's AppendAfter
// starts meanwhile, if the loop overlaps them).
type overlapStore struct {
	commitStore
	fail    map[int64]error
	inFirst func()
	mu2     sync.Mutex
	order   []int64 // oldSizes, in commit order
}

func (s *overlapStore) AppendAfter(ctx context.Context, old int64, seqs []int64, _ []int, hashes []tlog.Hash, prev func(context.Context) error) error {
	if old == 0 && s.inFirst != nil {
		s.inFirst()
	}
	if err := prev(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	if err := s.fail[old]; err != nil {
		return err
	}
	if size, _ := s.TreeSize(ctx); size != old {
		return fmt.Errorf("%w: size %d, not %d", ErrConflict, size, old)
	}
	s.mu2.Lock()
	s.order = append(s.order, old)
	s.mu2.Unlock()
	return s.commitStore.Append(ctx, old, seqs, hashes)
}

func (s *overlapStore) UnsequencedExcept(ctx context.Context, except []int64, limit int) ([]Record, error) {
	recs, err := s.Unsequenced(ctx, 0, limit+len(except))
	return RecordsExcept(recs, except, limit), err
}

func newOverlapStore(n int) *overlapStore {
	s := &overlapStore{commitStore: commitStore{appended: make(chan struct{})}}
	close(s.appended)
	for i := 1; i <= n; i++ {
		s.commit(int64(i), fmt.Sprintf("10.1000/%d", i%3))
	}
	return s
}

// TestSequenceOverlapsAppends: with an OverlappingAppender the next
// batch's append starts while the one before it runs, the batches commit
// in order, and the tree is the one appending them one by one gives.
func TestSequenceOverlapsAppends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newOverlapStore(10)
	plain := &commitStore{appended: make(chan struct{}), rows: slices.Clone(s.rows)}
	close(plain.appended)
	second := make(chan struct{})
	bound, cancel := context.WithTimeout(ctx, time.Minute) // only if it never overlaps
	defer cancel()
	overlapped := false
	s.inFirst = func() {
		s.inFirst = nil
		select { // the first batch commits only once the second started
		case <-second:
			overlapped = true
		case <-bound.Done():
		}
	}
	var seen [][]int64
	n, err := sequenceAll(ctx, &overlapSignal{s, second}, 3, func(seqs []int64, parts []int) {
		seen = append(seen, slices.Clone(seqs))
		assert.NotEmpty(t, parts, "the batch's partitions, to wake")
	})
	require.NoError(t, err)
	assert.True(t, overlapped, "the second batch's append started while the first ran")
	assert.Equal(t, 10, n)
	assert.Equal(t, []int64{0, 3, 6, 9}, s.order, "batches commit in order")
	assert.Equal(t, [][]int64{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10}}, seen, "each batch reported once, in order, after it committed")

	_, err = SequenceAll(ctx, plain, 3)
	require.NoError(t, err)
	assert.Equal(t, plain.hashes, s.hashes, "the same stored hashes as appending one batch after the other")
	for i := range s.rows {
		assert.Equal(t, int64(i), s.rows[i].LeafIndex)
	}
}

// overlapSignal closes started when the second batch's AppendAfter begins.
type overlapSignal struct {
	*overlapStore
	started chan struct{}
}

func (s *overlapSignal) AppendAfter(ctx context.Context, old int64, seqs []int64, parts []int, hashes []tlog.Hash, prev func(context.Context) error) error {
	if old == 3 {
		close(s.started)
	}
	return s.overlapStore.AppendAfter(ctx, old, seqs, parts, hashes, prev)
}

// TestSequenceOverlappedFailure: when a batch's append fails, the one
// after it (already started) writes nothing, the call returns the
// failure, and only what committed is counted and reported.
func TestSequenceOverlappedFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	boom := errors.New("boom")
	for _, tc := range []struct {
		failAt int64
		want   int
	}{{0, 0}, {3, 3}, {6, 6}} {
		s := newOverlapStore(10)
		s.fail = map[int64]error{tc.failAt: boom}
		reported := 0
		n, err := sequenceAll(ctx, s, 3, func(seqs []int64, _ []int) { reported += len(seqs) })
		require.ErrorIs(t, err, boom, "append at %d fails", tc.failAt)
		assert.Equal(t, tc.want, n, "append at %d fails: what committed before it", tc.failAt)
		assert.Equal(t, tc.want, reported)
		size, _ := s.TreeSize(ctx)
		assert.Equal(t, int64(tc.want), size, "nothing after the failed batch committed")
	}
}

// TestRecordsExcept: the first limit records whose seq is not excepted,
// in order, whatever the limit.
func TestRecordsExcept(t *testing.T) {
	recs := func(seqs ...int64) []Record {
		out := make([]Record, len(seqs))
		for i, s := range seqs {
			out[i] = Record{Seq: s}
		}
		return out
	}
	for _, c := range []struct {
		recs, except []int64
		limit        int
		want         []int64
	}{
		{[]int64{1, 2, 3, 4, 5}, []int64{2, 4}, 10, []int64{1, 3, 5}},
		{[]int64{1, 2, 3, 4, 5}, []int64{2, 4}, 2, []int64{1, 3}},
		{[]int64{1, 2, 3}, nil, 2, []int64{1, 2}},
		{[]int64{1, 2, 3}, []int64{1, 2, 3}, 5, []int64{}},
		{nil, []int64{1}, 5, []int64{}},
	} {
		got := []int64{}
		for _, r := range RecordsExcept(recs(c.recs...), c.except, c.limit) {
			got = append(got, r.Seq)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("RecordsExcept(%v, %v, %d) = %v, want %v", c.recs, c.except, c.limit, got, c.want)
		}
	}
}
