package core

import "encoding/json"

// Stream sequence ids. The ordered stream numbers its batches (the claim
// token carries a batch's number within its run number, see
// Engine.token) and gives each message the id
//
//	(base + batch) << seqBits | seq mod 2^seqBits
//
// where base is the run number's first batch number, recorded in the run
// record before any batch under it is claimed. Ids rise from batch to
// batch in the order they were claimed, and within a batch with the seq
// (a batch never spans two 2^seqBits blocks of seqs: the engine gives the
// rest back). So the stream takes every pending operation, whatever its
// seq (one committed late, or skipped by a strict claim while an earlier
// operation of its object was in flight, comes after higher seqs), and
// anyone who knows a claim's token and the run record can still say which
// id it was sent under.
const (
	seqBits = 20
	seqMask = 1<<seqBits - 1
	// maxBatch bounds the batch numbers of one run number (30 bits in
	// the token, below TentativeClaim); the run renumbers itself before it
	// runs out.
	maxBatch = 1<<30 - 1
)

// streamSeq is the stream's id of seq in batch number base+batch.
func streamSeq(base, batch, seq int64) int64 { return (base+batch)<<seqBits | seq&seqMask }

// sameBlock reports whether seqs a and b may share a batch (see seqBits).
func sameBlock(a, b int64) bool { return a>>seqBits == b>>seqBits }

// runRecord is what a node's run history (see runHistory) says about one
// of its runs: its current run number (epoch) with the first batch number
// under it, and, for earlier numbers of the same run (the run renumbers
// itself when an ordered outcome cannot be recorded), their first batch
// numbers and up to which stream id their ordered claims were all handed
// to the ordered stream in order. A claim of the node carrying one of
// these numbers, at or below its mark, was sent by the run; whether the
// broker holds it depends on how far the run got (its end, or for the
// latest run the broker's last sequence): the node's next run re-sends it
// as a redelivery, and a node taking it over re-sends it under the node's
// stream name, for the broker to drop.
type runRecord struct {
	current, base int64
	marks         []runMark
	// end is where the node's ordered stream stood at the broker when the
	// run ended (what the next run found when it started, in the sink's
	// form, see PositionedSink); "" for the latest run, or if unknown.
	end string
}

// runMark: claims under number epoch, whose batches are numbered from
// base, were handed to the ordered stream in order up to stream id upto.
type runMark struct{ epoch, base, upto int64 }

// maxRunMarks bounds the marks a record keeps (the oldest go first), and
// maxRuns the runs a history keeps. A run's claims stay unjudged until
// a later process of the node (or a taker) claims them, after their lease;
// processes that die sooner, one after another (killed every few seconds,
// or while the database restarts), each add a run meanwhile: four runs
// were too few in the chaos test. 32 records of up to eight marks and a
// position are a few kilobytes.
// maxHistoryBytes bounds the history's JSON as well (positions of
// topics with many partitions are long; MySQL's TEXT holds 64 KiB): the
// oldest runs go first.
const (
	maxRunMarks     = 8
	maxRuns         = 32
	maxHistoryBytes = 32 << 10
)

// runHistory is the value of the cursor trustlog.node.<name>.epoch: the
// node's latest runs, newest first. Run numbers are unique in it (a
// number reused after wrapping drops what an older run said about it).
//
// The value is JSON: {"runs":[{"n":[epoch,base],"m":[[epoch,base,upto],
// ...],"end":"..."},...]}. A value in another form (written before
// stream ids were numbered by batch) does not parse: nothing counts as
// sent, so a re-send goes out as a new message (a possible copy, never a
// loss).
type runHistory struct{ runs []runRecord }

type runJSON struct {
	N   [2]int64   `json:"n"`
	M   [][3]int64 `json:"m,omitempty"`
	End string     `json:"end,omitempty"`
}

type historyJSON struct {
	Runs []runJSON `json:"runs"`
}

// parseRunHistory parses a cursor value; ok is false for anything else.
func parseRunHistory(v string) (h runHistory, ok bool) {
	var j historyJSON
	if json.Unmarshal([]byte(v), &j) != nil || len(j.Runs) == 0 {
		return h, false
	}
	valid := func(epoch, base int64) bool {
		return epoch >= 0 && epoch <= 0xff && base >= 0 && base <= 1<<(63-seqBits)-1
	}
	for _, r := range j.Runs {
		if !valid(r.N[0], r.N[1]) {
			return runHistory{}, false
		}
		rec := runRecord{current: r.N[0], base: r.N[1], end: r.End}
		for _, m := range r.M {
			if !valid(m[0], m[1]) || m[2] < 0 {
				return runHistory{}, false
			}
			rec.marks = append(rec.marks, runMark{m[0], m[1], m[2]})
		}
		h.runs = append(h.runs, rec)
	}
	return h, true
}

func (h runHistory) String() string {
	var j historyJSON
	for _, r := range h.runs {
		rj := runJSON{N: [2]int64{r.current, r.base}, End: r.end}
		for _, m := range r.marks {
			rj.M = append(rj.M, [3]int64{m.epoch, m.base, m.upto})
		}
		j.Runs = append(j.Runs, rj)
	}
	b, _ := json.Marshal(j)
	return string(b)
}

// withLatest returns the history with run as its latest, in place of the
// latest one if replace is set and before it otherwise. What older runs
// say about run's numbers goes, and so do the oldest runs beyond maxRuns
// or maxHistoryBytes.
func (h runHistory) withLatest(run runRecord, replace bool) runHistory {
	older := h.runs
	if replace && len(older) > 0 {
		older = older[1:]
	}
	uses := func(epoch int64) bool {
		_, _, found := run.lookup(epoch, 0, 0)
		return found
	}
	next := runHistory{runs: []runRecord{run}}
	for _, r := range older {
		if len(next.runs) == maxRuns {
			break
		}
		if uses(r.current) {
			continue
		}
		kept := r
		kept.marks = nil
		for _, m := range r.marks {
			if !uses(m.epoch) {
				kept.marks = append(kept.marks, m)
			}
		}
		next.runs = append(next.runs, kept)
	}
	for len(next.runs) > 1 && len(next.String()) > maxHistoryBytes {
		next.runs = next.runs[:len(next.runs)-1]
	}
	return next
}

// latest is the history's latest run (nil if none).
func (h runHistory) latest() *runRecord {
	if len(h.runs) == 0 {
		return nil
	}
	return &h.runs[0]
}

// find returns the run of the history that used number epoch (nil if
// none), with the stream id of a claim of seq under it in batch number
// batch, and whether that run handed the claim to the ordered stream in
// order (see runRecord.sent).
func (h runHistory) find(epoch, batch, seq int64) (run *runRecord, id int64, sent bool) {
	for i := range h.runs {
		if id, sent, found := h.runs[i].lookup(epoch, batch, seq); found {
			return &h.runs[i], id, sent
		}
	}
	return nil, 0, false
}

// sent returns the stream id of a claim of seq under number epoch in
// batch number batch, and whether the run this record describes handed it
// to the ordered stream in order (whether the broker holds it is the
// caller's to check).
func (r runRecord) sent(epoch, batch, seq int64) (id int64, ok bool) {
	id, ok, _ = r.lookup(epoch, batch, seq)
	return id, ok
}

// lookup is sent, and whether the run used number epoch at all.
func (r runRecord) lookup(epoch, batch, seq int64) (id int64, sent, found bool) {
	if epoch == r.current {
		return streamSeq(r.base, batch, seq), true, true
	}
	for _, m := range r.marks {
		if m.epoch == epoch {
			id = streamSeq(m.base, batch, seq)
			return id, id <= m.upto, true
		}
	}
	return 0, false, false
}

// renumbered returns the record after the run moved from its current
// number to the next, whose batches are numbered from base, its claims
// under the old one handed over in order up to stream id upto (none if
// upto <= 0).
func (r runRecord) renumbered(base, upto int64) runRecord {
	next := runRecord{current: (r.current + 1) & 0xff, base: base}
	for _, m := range r.marks {
		if m.epoch != next.current {
			next.marks = append(next.marks, m)
		}
	}
	if upto > 0 {
		next.marks = append(next.marks, runMark{r.current, r.base, upto})
	}
	if len(next.marks) > maxRunMarks {
		next.marks = next.marks[len(next.marks)-maxRunMarks:]
	}
	return next
}
