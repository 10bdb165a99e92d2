package core

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/go-trustlog/trustlog/internal/backoff"
)

// publisher publishes one partition while its balancer owns it. A batch
// goes, in this file, from read to cursor advance:
//
//  1. read: ReadPartition returns up to BatchSize operations above the
//     cursor, in position order, through an index; nothing is written;
//  2. send: each row is re-hashed first (a row altered since it was
//     recorded is not sent and goes dead), then one Publish call (in strict order, one call per round in which
//     each DOID appears once, so an operation that fails holds back the
//     later ones of its DOID instead of being overtaken by them);
//  3. advance: one transaction moves the cursor to the last operation of
//     the batch's handled prefix and puts what the sink refused in the
//     retry table, compare-and-set on the lease's generation.
//
// The handled prefix ends before the first message whose outcome is
// unknown or that the sink refused as unavailable: those are sent again
// from the new cursor. A sink that is down thus pauses the partition and
// puts nothing in the retry table. Only a lost advance (a crash, or the
// database failing after the sink's ack) sends a batch twice; a Pulsar
// broker drops the copies, as each message's sequence id is its position.
type publisher struct {
	e      *Engine
	part   Partition
	stream string

	soft, hard         context.Context
	softStop, hardStop context.CancelFunc
	done               chan struct{}

	// lastRetry is when the retry table was last read; retryNow asks for
	// the next read at once (the last one made progress).
	lastRetry time.Time
	retryNow  bool
	// refusals counts this partition's batches refused as unavailable in a
	// row; pauseUntil is when it may try the sink again.
	refusals   int
	pauseUntil time.Time
	// fenced: run ended because another owner took the partition.
	fenced bool
	// leaseUntil (Unix nanoseconds) is when this owner's lease ends at
	// the latest: the start of the call that took or last renewed it,
	// plus Lease. The store set the lease's end from its own clock during
	// that call, so no later than the store's end on one clock.
	leaseUntil atomic.Int64
	// behind: a step found the lease too short to send and did nothing;
	// the renewal that extends it wakes the publisher (a wake that came
	// meanwhile was spent on that step).
	behind atomic.Bool
}

// renewed records a take or renewal of the lease by a call made at asked,
// and wakes the publisher if it was waiting for it.
func (p *publisher) renewed(asked time.Time) {
	p.leaseUntil.Store(asked.Add(p.e.cfg.Lease).UnixNano())
	if p.behind.Swap(false) {
		p.e.wakePublishers([]int{p.part.Part})
	}
}

// leaseCovers reports whether a send started now ends (at the latest,
// after PublishTimeout) before this owner's lease can: only then may it
// send. A member whose renewals fall behind (a stalled process, a store
// that answers slowly) stops sending before another can take the
// partition, so two owners never send one partition's operations at
// once, and what the earlier one sent is not sent again by the next
// unless its cursor advance itself is lost.
func (p *publisher) leaseCovers() bool {
	return time.Until(time.Unix(0, p.leaseUntil.Load())) > p.e.cfg.PublishTimeout
}

func newPublisher(e *Engine, p Partition) *publisher {
	pub := &publisher{e: e, part: p, stream: e.streamName(p.Part), done: make(chan struct{}), retryNow: true}
	pub.soft, pub.softStop = context.WithCancel(e.softCtx)
	pub.hard, pub.hardStop = context.WithCancel(e.hardCtx)
	return pub
}

// closeStream tells a sink that keeps a resource per stream that this
// owner is done with the partition's.
func (p *publisher) closeStream() {
	if sc, ok := p.e.sink.(StreamCloser); ok {
		if err := sc.CloseStream(p.stream); err != nil {
			p.e.log.Debug("trustlog: closing a partition's stream failed", "partition", p.part.Part, "err", err)
		}
	}
}

// abort stops the publisher at once (its lease is lost: its writes would
// be fenced anyway) and waits for it.
func (p *publisher) abort() {
	p.hardStop()
	p.softStop()
	<-p.done
}

// run publishes until stopped or fenced.
func (p *publisher) run() {
	defer close(p.done)
	defer p.hardStop()
	e := p.e
	// While the store fails, the next try waits retry.Delay(failures):
	// 100 ms, doubling, at most 5 s.
	retry := backoff.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second}
	failures := 0
	defer p.closeStream()
	for p.soft.Err() == nil {
		if d := time.Until(p.pauseUntil); d > 0 {
			e.idle(p.soft, d, nil)
			continue
		}
		wake := e.publisherWake(p.part.Part)
		n, err := p.step()
		switch {
		case errors.Is(err, ErrFenced):
			e.log.Warn("trustlog: partition taken by another owner; stopped publishing it", "partition", p.part.Part, "generation", p.part.Generation)
			p.fenced = true
			return
		case err != nil && p.hard.Err() == nil:
			failures++
			d := retry.Delay(failures)
			e.log.Warn("trustlog: publishing a partition failed; will retry", "partition", p.part.Part, "err", err, "retry_in", d)
			e.idle(p.soft, d, nil)
		case n == 0:
			failures = 0
			e.idle(p.soft, e.cfg.PollInterval, wake)
		default:
			failures = 0
		}
	}
}

// step handles due retries, then one batch of new operations, and returns
// how many operations it handled.
func (p *publisher) step() (int, error) {
	if !p.leaseCovers() {
		// Until the renewer renews the lease (renewed wakes this
		// publisher), or loses it. Marked before the second look, so
		// that a renewal between the two either is seen or wakes.
		p.behind.Store(true)
		if !p.leaseCovers() {
			return 0, nil
		}
		p.behind.Store(false)
	}
	n, err := p.retryDue()
	if err != nil {
		return n, err
	}
	m, err := p.publishNext()
	return n + m, err
}

// publishNext is one batch: read, send, advance.
func (p *publisher) publishNext() (int, error) {
	e := p.e
	start := time.Now()
	recs, err := e.store.ReadPartition(p.hard, ReadParams{Part: p.part.Part, After: p.part.Cursor, Limit: e.cfg.BatchSize, Strict: e.cfg.StrictOrder})
	if err != nil || len(recs) == 0 {
		return 0, err
	}
	e.tel.readDur.Record(p.hard, time.Since(start).Seconds())
	span := e.tel.batchSpan("partition", start, recs)
	defer span.End()
	res := p.send(span, recs, false)
	handled := len(res)
	for i, r := range res {
		if r.unknown {
			handled = i
			break
		}
	}
	if handled == 0 {
		return 0, nil
	}
	failed := p.failures(recs[:handled], res[:handled])
	advStart := time.Now()
	to := recs[handled-1].LeafIndex
	err = p.write(func(ctx context.Context) error {
		return e.store.Advance(ctx, AdvanceParams{Part: p.part.Part, Generation: p.part.Generation, From: p.part.Cursor, To: to, Failed: failed})
	}, to)
	e.tel.advanceDur.Record(p.hard, time.Since(advStart).Seconds())
	e.tel.child(span, "advance", advStart, err)
	if err != nil {
		return 0, err
	}
	p.part.Cursor = to
	p.report(recs[:handled], res[:handled], failed)
	return handled, nil
}

// result is what became of one operation of a batch.
type result struct {
	// ok: the sink accepted it.
	ok bool
	// held: not sent; it waits behind an earlier operation of its DOID.
	held bool
	// unknown: not sent (the sink is unavailable) or its outcome is
	// unknown (timeout): it goes out again.
	unknown bool
	err     error
}

// send publishes recs (retry: from the retry table) and returns each
// one's result. In strict order it sends runs of consecutive operations
// in which no DOID appears twice, one after the other, and holds back
// what follows a failure of its DOID; the positions of first sends thus
// reach the sink in increasing order, which a sink deduplicating by
// sequence id needs (a lower position sent after a higher one would be
// dropped as a duplicate).
func (p *publisher) send(span trace.Span, recs []Record, retry bool) []result {
	e := p.e
	msgs, res := p.encode(recs, retry)
	pubStart := time.Now()
	accepted, down := p.sendRounds(recs, msgs, res)
	e.tel.publishDur.Record(p.hard, time.Since(pubStart).Seconds(), e.tel.sinkAttr)
	e.tel.child(span, "publish", pubStart, nil)
	switch {
	case accepted:
		p.sinkAccepted()
	case down:
		p.sinkDown(res)
	}
	return res
}

// encode turns recs into messages; a held operation, or one that fails
// its tamper check or cannot be encoded, gets its result instead.
func (p *publisher) encode(recs []Record, retry bool) ([]Message, []result) {
	res := make([]result, len(recs))
	msgs := make([]Message, len(recs))
	for i := range recs {
		r := &recs[i]
		if r.Held {
			res[i].held = true
			continue
		}
		payload, sum, ok := r.Op.appendSealedChecked(nil)
		if !ok {
			// Altered after it was recorded: never published.
			res[i].err = Permanent(fmt.Errorf("integrity: stored row does not match its op_hash %s (computed %s); it was altered after recording", r.Op.OpHash, hexDigest(sum)))
			continue
		}
		msgs[i] = message(&r.Op, r.Seq, r.LeafIndex, payload)
		msgs[i].Stream, msgs[i].Retry = p.stream, retry
	}
	return msgs, res
}

// rounds is the order of the sends: one round of every sendable
// operation, or in strict order the runs of strictRuns.
func (p *publisher) rounds(recs []Record, res []result) [][]int {
	if p.e.cfg.StrictOrder {
		return strictRuns(recs, res)
	}
	all := make([]int, 0, len(recs))
	for i := range recs {
		if !res[i].held && res[i].err == nil {
			all = append(all, i)
		}
	}
	return [][]int{all}
}

// sendRounds sends the rounds one after the other and fills res. It
// reports whether the sink accepted anything and whether it was down (a
// round refused as unavailable, or timed out): then, as when the lease
// no longer covers a send, the rest is not sent now.
func (p *publisher) sendRounds(recs []Record, msgs []Message, res []result) (accepted, down bool) {
	e := p.e
	blocked := map[string]bool{} // DOIDs that failed or were held this batch
	for i := range recs {
		if res[i].held || res[i].err != nil {
			blocked[recs[i].Op.DOID] = true
		}
	}
	expiring := false
	for _, round := range p.rounds(recs, res) {
		var idx []int
		for _, i := range round {
			if e.cfg.StrictOrder && blocked[recs[i].Op.DOID] {
				res[i].held = true
				continue
			}
			idx = append(idx, i)
		}
		if len(idx) == 0 {
			continue
		}
		if !down && !expiring && !p.leaseCovers() {
			expiring = true
			e.log.Debug("trustlog: the partition's lease ends too soon to send; waiting for its renewal", "partition", p.part.Part)
		}
		if down || expiring {
			for _, i := range idx {
				res[i].unknown = true
			}
			continue
		}
		ok, unavailable := p.sendRound(recs, msgs, res, idx, blocked)
		accepted, down = accepted || ok, down || unavailable
	}
	return accepted, down
}

// sendRound publishes the messages idx of one round and records each
// one's result; a refused operation's DOID is blocked for the rest of the
// batch. It reports whether the sink accepted any and whether it was
// unavailable.
func (p *publisher) sendRound(recs []Record, msgs []Message, res []result, idx []int, blocked map[string]bool) (accepted, down bool) {
	e := p.e
	batch := make([]Message, len(idx))
	for j, i := range idx {
		batch[j] = msgs[i]
	}
	ctx, cancel := context.WithTimeout(p.hard, e.cfg.PublishTimeout)
	errs := e.sink.Publish(ctx, batch)
	timedOut := ctx.Err() != nil
	cancel()
	if len(errs) != len(batch) {
		errs = FailAll(len(batch), Unavailable(fmt.Errorf("trustlog: sink returned %d results for %d messages", len(errs), len(batch))))
	}
	for j, i := range idx {
		switch err := errs[j]; {
		case err == nil:
			res[i].ok, accepted = true, true
		case IsUnavailable(err) || timedOut && !IsPermanent(err):
			res[i].unknown, res[i].err, down = true, err, true
			blocked[recs[i].Op.DOID] = true
		default:
			res[i].err = err
			blocked[recs[i].Op.DOID] = true
		}
	}
	return accepted, down
}

// sinkAccepted ends the partition's pause and the engine's outage.
func (p *publisher) sinkAccepted() {
	p.refusals, p.pauseUntil = 0, time.Time{}
	if streak := p.e.outage.ok(); streak > 0 {
		p.e.log.Info("trustlog: sink available again", "streak", streak)
	}
}

// sinkDown pauses the partition after the sink refused a send as
// unavailable (another partition's stream may be fine: a Pulsar producer
// still held by the partition's previous owner); the engine counts the
// outage. One outage is one warning; each further refusal while it lasts
// is a debug line with the streak and the pause.
func (p *publisher) sinkDown(res []result) {
	e := p.e
	var first error
	for i := range res {
		if res[i].unknown && res[i].err != nil {
			first = res[i].err
			break
		}
	}
	e.refused.Add(1)
	p.refusals++
	d := backoff.Policy{Base: 100 * time.Millisecond, Max: e.cfg.ProbeInterval}.Delay(p.refusals)
	p.pauseUntil = time.Now().Add(d)
	streak := e.outage.fail()
	if streak == 1 {
		e.log.Warn("trustlog: sink unavailable; pausing every partition", "partition", p.part.Part, "err", first, "streak", streak, "pause", d)
	} else {
		e.log.Debug("trustlog: sink still unavailable", "partition", p.part.Part, "err", first, "streak", streak, "pause", d)
	}
}

// strictRuns splits the sendable operations of a batch into runs of
// consecutive operations (in position order) in which no DOID appears
// twice.
func strictRuns(recs []Record, res []result) [][]int {
	var runs [][]int
	var run []int
	inRun := map[string]bool{}
	for i := range recs {
		if res[i].held || res[i].err != nil {
			continue
		}
		if d := recs[i].Op.DOID; inRun[d] {
			runs = append(runs, run)
			run, inRun = nil, map[string]bool{}
		}
		run = append(run, i)
		inRun[recs[i].Op.DOID] = true
	}
	if len(run) > 0 {
		runs = append(runs, run)
	}
	return runs
}

// failures turns the refused and held operations of a handled batch into
// retry-table entries.
func (p *publisher) failures(recs []Record, res []result) []Failure {
	var out []Failure
	for i := range recs {
		r, x := &recs[i], res[i]
		switch {
		case x.ok:
		case x.held:
			out = append(out, Failure{Seq: r.Seq, Held: true})
		default:
			attempts := r.Attempts + 1
			out = append(out, Failure{
				Seq: r.Seq, Err: truncate(x.err.Error(), maxErrLen), Delay: p.e.backoff(attempts),
				Dead: IsPermanent(x.err) || attempts >= p.e.cfg.MaxAttempts,
			})
		}
	}
	return out
}

// maxErrLen bounds a stored last_error.
const maxErrLen = 2000

// write runs a fenced store write (an advance or a retry settle), again
// with backoff while the store fails, until it succeeds, is fenced, or
// the publisher is aborted. to is the cursor the write sets (-2 for a
// write that sets none): a write whose commit was lost in transit and
// that the store then refuses as fenced succeeded if the partition is
// still ours at that cursor.
func (p *publisher) write(fn func(ctx context.Context) error, to int64) error {
	e := p.e
	retry := backoff.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second}
	for attempt := 1; ; attempt++ {
		err := fn(p.hard)
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrFenced) {
			if attempt > 1 && to > -2 && p.stillOursAt(to) {
				return nil
			}
			return err
		}
		if p.hard.Err() != nil {
			return err
		}
		d := retry.Delay(attempt)
		e.log.Warn("trustlog: cannot record a batch's outcome yet; will retry", "partition", p.part.Part, "err", err, "retry_in", d)
		e.idle(p.hard, d, nil)
	}
}

// stillOursAt reports whether the partition still has our generation and
// the cursor to.
func (p *publisher) stillOursAt(to int64) bool {
	parts, err := p.e.store.Partitions(p.hard)
	if err != nil {
		return false
	}
	for _, q := range parts {
		if q.Part == p.part.Part {
			return q.Generation == p.part.Generation && q.Cursor == to
		}
	}
	return false
}

// report counts and logs a handled batch.
func (p *publisher) report(recs []Record, res []result, failed []Failure) {
	e := p.e
	ctx := p.hard
	n := 0
	now := time.Now()
	for i := range recs {
		if res[i].ok {
			n++
			e.tel.ackLatency.Record(ctx, now.Sub(recs[i].Op.CreatedAt).Seconds(), e.tel.sinkAttr)
		}
	}
	e.batches.Add(1)
	e.published.Add(int64(n))
	e.tel.published.Add(ctx, int64(n), e.tel.sinkAttr)
	if len(failed) == 0 {
		return
	}
	bySeq := make(map[int64]*Record, len(recs))
	for i := range recs {
		bySeq[recs[i].Seq] = &recs[i]
	}
	for _, f := range failed {
		r := bySeq[f.Seq]
		switch {
		case f.Held:
		case f.Dead:
			e.dead.Add(1)
			e.tel.dead.Add(ctx, 1, e.tel.sinkAttr)
			e.log.Error("trustlog: operation is dead", "op_id", r.Op.OpID, "doid", r.Op.DOID, "attempts", r.Attempts+1, "err", f.Err)
			if e.cfg.OnDead != nil {
				e.cfg.OnDead(DeadEvent{Seq: r.Seq, OpID: r.Op.OpID, DOID: r.Op.DOID, Attempts: r.Attempts + 1, Err: f.Err})
			}
		default:
			e.retried.Add(1)
			e.tel.retried.Add(ctx, 1, e.tel.sinkAttr)
			e.log.Debug("trustlog: publish failed, will retry", "op_id", r.Op.OpID, "attempt", r.Attempts+1, "delay", f.Delay, "err", f.Err)
		}
	}
}
