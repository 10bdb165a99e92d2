package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/internal/backoff"
)

// SequencerLease is the named lease the sequencer holds: one leader per
// store gives positions.
const SequencerLease = "trustlog.ledger"

// SequenceBatchDefault is how many operations one Append takes: each
// transaction has a fixed cost of a few round trips and a commit, and on
// PostgreSQL 4000 per transaction sequences about 60% faster than 1000;
// 8000 drains a backlog from scratch about 5% faster than 4000 (each
// partition's publisher then reads twice as many positions at a time,
// and moves its cursor half as often), where 16000 is slower again
// (BENCHMARKS.md). A relay that keeps up with its writers appends what
// is there, far fewer.
const SequenceBatchDefault = 8000

// SequenceAll gives every operation that has no position one, in seq
// order, appending it to the store's Merkle tree, in transactions of
// batch operations (SequenceBatchDefault if batch <= 0), and returns how
// many it sequenced. Each leaf is the operation's sealed encoding
// (Operation.AppendSealed). Only one caller may sequence a store at a
// time (the engine holds SequencerLease); a concurrent one fails with
// ErrConflict and writes nothing.
//
// Every batch is the first unsequenced operations in seq order as of its
// read, never "those after the last batch": an operation whose
// transaction committed late, with a lower seq, is sequenced with the
// next batch, before any operation recorded after it whose transaction
// committed after it (the same object's later operations, when the
// application serialises its writes to an object). A seq watermark would
// let such a later operation take a position before it. While one batch
// is appended the next is read (twice as many, the batch in flight
// dropped from them), so reading and appending overlap. On a store that
// is an OverlappingAppender the next batch may also be written while the
// one before it commits (AppendAfter), and is read past the batch in
// flight (UnsequencedExcept).
func SequenceAll(ctx context.Context, st Store, batch int) (int, error) {
	return sequenceAll(ctx, st, batch, nil)
}

func sequenceAll(ctx context.Context, st Store, batch int, appended func(seqs []int64, parts []int)) (int, error) {
	if batch <= 0 {
		batch = SequenceBatchDefault
	}
	recs, err := st.Unsequenced(ctx, 0, batch)
	if err == nil {
		err = place(ctx, st, recs)
	}
	if err != nil || len(recs) == 0 {
		return 0, err
	}
	size, err := st.TreeSize(ctx)
	if err != nil {
		return 0, err
	}
	r := NewHashReader(ctx, st)
	if oa, ok := st.(OverlappingAppender); ok {
		return sequenceOverlapped(ctx, st, oa, recs, size, r, batch, appended)
	}
	total := 0
	for len(recs) > 0 && ctx.Err() == nil {
		seqs, hashes, err := leafHashes(recs, size, r)
		if err != nil {
			return total, err
		}
		type next struct {
			recs []Record
			err  error
		}
		prefetch := make(chan next, 1)
		go func() {
			n, err := st.Unsequenced(ctx, 0, 2*batch)
			prefetch <- next{n, err}
		}()
		err = st.Append(ctx, size, seqs, hashes)
		nx := <-prefetch
		if err != nil {
			return total, err
		}
		total += len(seqs)
		size += int64(len(seqs))
		if appended != nil {
			appended(seqs, partsOf(recs))
		}
		// Keep only the frontier hashes later leaves need: the cache would
		// otherwise grow with the whole stream.
		r.Trim(size)
		if nx.err != nil {
			return total, nx.err
		}
		recs = RecordsExcept(nx.recs, seqs, batch)
		if err := place(ctx, st, recs); err != nil {
			return total, err
		}
	}
	return total, ctx.Err()
}

// place lets a Placer store move the operations recorded in another
// partition than their object's before they get a position.
func place(ctx context.Context, st Store, recs []Record) error {
	if p, ok := st.(Placer); ok && len(recs) > 0 {
		return p.Place(ctx, recs)
	}
	return nil
}

// overlapWait bounds how long an append waits for the one before it to
// commit (OverlappingAppender): past it, the later append gives up its
// rows (ErrConflict) and the sequencer starts again from the stored tree.
// An append of a batch takes well under a second; only a foreign
// sequencer waiting for the later append's rows while the earlier waits
// for it holds one this long.
var overlapWait = 10 * time.Second

// errOverlapWait is prev's answer when overlapWait passed.
var errOverlapWait = errors.New("trustlog: the previous append did not finish in time")

// noPrev is the first batch's predecessor: none. Its AppendAfter takes
// the locks in the order of the ones after it (the operations' rows, then
// the tree's), so that racing sequencers (a lease that moved) do not
// take them in opposite orders.
func noPrev(context.Context) error { return nil }

// flight is one batch's append, running.
type flight struct {
	seqs  []int64
	parts []int // the distinct partitions of the batch, to wake
	done  chan struct{}
	err   error
}

// wait is the flight's outcome, for the next flight's AppendAfter: it
// waits at most overlapWait.
func (f *flight) wait(ctx context.Context) error {
	t := time.NewTimer(overlapWait)
	defer t.Stop()
	select {
	case <-f.done:
		return f.err
	case <-t.C:
		return errOverlapWait
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sequenceOverlapped is sequenceAll's loop for an OverlappingAppender:
// while batch k is appended, batch k+1 is read, hashed and handed to
// AppendAfter, which writes it and commits once k committed. At most two
// appends run; each batch is still the first unsequenced operations in
// seq order as of its read, the ones in flight excepted.
func sequenceOverlapped(ctx context.Context, st Store, oa OverlappingAppender, recs []Record, size int64, r *HashReader,
	batch int, appended func(seqs []int64, parts []int)) (total int, err error) {
	var last, older *flight
	settle := func(f *flight) error {
		<-f.done
		if f.err != nil {
			return f.err
		}
		total += len(f.seqs)
		if appended != nil {
			appended(f.seqs, f.parts)
		}
		return nil
	}
	defer func() {
		// Nothing outlives the call: the appends still running end (their
		// own error, or the one before them failed), and what committed
		// is counted.
		for _, f := range []*flight{older, last} {
			if f != nil {
				if e := settle(f); e != nil && err == nil {
					err = e
				}
			}
		}
	}()
	for len(recs) > 0 && ctx.Err() == nil {
		seqs, hashes, err := leafHashes(recs, size, r)
		if err != nil {
			return total, err
		}
		parts := make([]int, len(recs))
		for i := range recs {
			parts[i] = recs[i].Part
		}
		// The flight keeps no records: a batch's records are garbage once
		// hashed, so a relay holds two batches (the one hashed and the
		// one read ahead), not four, whatever the appends' pace.
		f := &flight{seqs: seqs, parts: partsOf(recs), done: make(chan struct{})}
		go func(p *flight, at int64) {
			defer close(f.done)
			prev := noPrev
			if p != nil {
				prev = p.wait
			}
			f.err = oa.AppendAfter(ctx, at, seqs, parts, hashes, prev)
		}(last, size)
		size += int64(len(seqs))
		r.Trim(size)
		older, last = last, f
		// The batch before is committed before the next read (two appends
		// in flight at most); the seqs of the one in flight are the first
		// unsequenced ones (unless it committed meanwhile): read as many
		// more as a batch.
		if older != nil {
			o := older
			older = nil
			if err := settle(o); err != nil {
				return total, err
			}
		}
		next, err := oa.UnsequencedExcept(ctx, f.seqs, batch)
		if err == nil {
			err = place(ctx, st, next)
		}
		if err != nil {
			return total, err
		}
		recs = next
	}
	f := last
	last = nil
	if f != nil {
		if err := settle(f); err != nil {
			return total, err
		}
	}
	return total, ctx.Err()
}

// RecordsExcept returns the first limit records of recs (in seq order)
// whose seq is not in except (sorted), reusing recs' array: what
// UnsequencedExcept returns when a store reads the excepted records too
// (Unsequenced with limit+len(except)) and drops them.
func RecordsExcept(recs []Record, except []int64, limit int) []Record {
	out := recs[:0]
	for _, r := range recs {
		if _, found := slices.BinarySearch(except, r.Seq); !found {
			out = append(out, r)
			if len(out) == limit {
				break
			}
		}
	}
	return out
}

// leafHashes computes the stored hashes of recs appended at size.
func leafHashes(recs []Record, size int64, r *HashReader) ([]int64, []tlog.Hash, error) {
	seqs := make([]int64, len(recs))
	hashes := make([]tlog.Hash, 0, 2*len(recs))
	var buf []byte
	for i := range recs {
		n := size + int64(i)
		leaf, err := recs[i].Op.AppendSealed(buf[:0])
		if err != nil {
			return nil, nil, fmt.Errorf("trustlog: operation %s (seq %d) cannot be a leaf: %w", recs[i].Op.OpID, recs[i].Seq, err)
		}
		buf = leaf
		hs, err := tlog.StoredHashes(n, leaf, r)
		if err != nil {
			return nil, nil, err
		}
		base := tlog.StoredHashIndex(0, n)
		for j, h := range hs {
			r.cache[base+int64(j)] = h
		}
		hashes = append(hashes, hs...)
		seqs[i] = recs[i].Seq
	}
	return seqs, hashes, nil
}

// HashReader reads a store's Merkle hashes (tlog.HashReader), serving
// from memory what it already read or was told.
type HashReader struct {
	ctx context.Context
	st  interface {
		ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	}
	cache map[int64]tlog.Hash
}

// NewHashReader returns a HashReader of st's stored hashes.
func NewHashReader(ctx context.Context, st Store) *HashReader {
	return &HashReader{ctx: ctx, st: st, cache: map[int64]tlog.Hash{}}
}

// ReadHashes implements tlog.HashReader.
func (r *HashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var missing []int64
	for _, idx := range indexes {
		if _, ok := r.cache[idx]; !ok {
			missing = append(missing, idx)
		}
	}
	if len(missing) > 0 {
		hs, err := r.st.ReadHashes(r.ctx, missing)
		if err != nil {
			return nil, err
		}
		if len(hs) != len(missing) {
			return nil, fmt.Errorf("trustlog: store returned %d hashes for %d indexes", len(hs), len(missing))
		}
		for i, idx := range missing {
			r.cache[idx] = hs[i]
		}
	}
	for i, idx := range indexes {
		out[i] = r.cache[idx]
	}
	return out, nil
}

// Trim drops cached hashes a tree of the given size no longer needs to
// grow: all but the stored hashes of its complete subtrees' roots (at most
// one per level).
func (r *HashReader) Trim(size int64) {
	keep := map[int64]bool{}
	for level := 0; level < 63; level++ {
		n := size >> uint(level)
		if n == 0 {
			break
		}
		if n&1 == 1 {
			keep[tlog.StoredHashIndex(level, n-1)] = true
		}
	}
	for idx := range r.cache {
		if !keep[idx] {
			delete(r.cache, idx)
		}
	}
}

// busyPoll is how soon the sequencer of an engine that does not listen
// for commit notifications looks again after a pass that gave positions.
// Under a steady load commits keep coming, and waiting a whole
// PollInterval after each pass would hold every operation back for up to
// that long (commit → ack p50 at 1,000 operations a second on PostgreSQL
// without NOTIFY: 39 ms with 100 ms polls, BENCHMARKS.md). An idle
// store's first empty pass goes back to PollInterval.
const busyPoll = 10 * time.Millisecond

// sequencer is the engine's leader job: while it holds SequencerLease it
// gives committed operations their positions, and wakes the engine's
// partition publishers when it did.
type sequencer struct {
	e *Engine
}

// run tries to lead until ctx ends.
func (s sequencer) run(ctx context.Context) {
	e := s.e
	for ctx.Err() == nil {
		lease, err := e.store.Locker().TryAcquire(ctx, SequencerLease, e.cfg.Lease)
		switch {
		case errors.Is(err, ErrLeaseHeld):
			e.idle(ctx, e.cfg.Lease/3, nil)
			continue
		case err != nil:
			if ctx.Err() == nil {
				e.log.Warn("trustlog: cannot take the sequencer lease", "err", err)
			}
			e.idle(ctx, time.Second, nil)
			continue
		}
		s.lead(ctx, lease)
		_ = lease.Release(context.WithoutCancel(ctx))
	}
}

// lead sequences until ctx ends or the lease is lost.
func (s sequencer) lead(ctx context.Context, lease Lease) {
	e := s.e
	e.log.Debug("trustlog: sequencing")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.leading.Store(true)
	defer e.leading.Store(false)
	go func() {
		select {
		case <-lease.Lost():
			e.log.Warn("trustlog: lost the sequencer lease")
			cancel()
		case <-ctx.Done():
		}
	}()
	retry := backoff.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second}
	failures := 0
	for ctx.Err() == nil {
		n, err := sequenceAll(ctx, e.store, e.cfg.SequenceBatch, func(seqs []int64, parts []int) {
			e.sequenced.Add(int64(len(seqs)))
			e.wakePublishers(parts)
		})
		switch {
		case err == nil || errors.Is(err, ErrConflict):
			failures = 0
			wait := e.cfg.PollInterval
			if n > 0 && !e.listening.Load() {
				wait = min(wait, busyPoll)
			}
			e.idle(ctx, wait, e.sequencerWake)
		case ctx.Err() == nil:
			failures++
			e.log.Error("trustlog: sequencing failed", "err", err, "retry_in", retry.Delay(failures))
			e.idle(ctx, retry.Delay(failures), nil)
		}
	}
}

// partsOf returns the distinct partitions of recs.
func partsOf(recs []Record) []int {
	seen := map[int]bool{}
	parts := make([]int, 0, 4)
	for _, r := range recs {
		if !seen[r.Part] {
			seen[r.Part] = true
			parts = append(parts, r.Part)
		}
	}
	return parts
}
