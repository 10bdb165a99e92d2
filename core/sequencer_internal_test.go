package core

import (
	"context"
	"slices"
	"sync"
	"testing"

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
