package core

import (
	"context"
	"time"
)

// retryDue re-sends the partition's due operations from the retry table
// and records what became of them, fenced like an advance. It reads the
// table at most every RetryPoll, unless its last round made progress (in
// strict order each round sends the head of each held DOID's line, so a
// line drains one round at a time). An operation the sink refuses as
// unavailable stays due, untouched; one it refuses otherwise gets its
// next attempt after a backoff, or goes dead at MaxAttempts or on a
// permanent error. A dead operation no longer holds its DOID back.
func (p *publisher) retryDue() (int, error) {
	e := p.e
	if !p.retryNow && time.Since(p.lastRetry) < e.cfg.RetryPoll {
		return 0, nil
	}
	p.lastRetry, p.retryNow = time.Now(), false
	start := time.Now()
	recs, err := e.store.DueRetries(p.hard, DueParams{Part: p.part.Part, Limit: e.cfg.BatchSize, Strict: e.cfg.StrictOrder})
	if err != nil || len(recs) == 0 {
		return 0, err
	}
	span := e.tel.batchSpan("retry", start, recs)
	defer span.End()
	res := p.send(span, recs, true)
	var published []int64
	var done []Record
	var doneRes []result
	for i := range recs {
		switch {
		case res[i].unknown:
		case res[i].ok:
			published = append(published, recs[i].Seq)
			fallthrough
		default:
			done = append(done, recs[i])
			doneRes = append(doneRes, res[i])
		}
	}
	// A held operation among retries (non-strict reads never hold) stays
	// as it is: it is not a failure of its own.
	var failed []Failure
	for _, f := range p.failures(done, doneRes) {
		if !f.Held {
			failed = append(failed, f)
		}
	}
	if len(published) == 0 && len(failed) == 0 {
		return 0, nil
	}
	settleStart := time.Now()
	err = p.write(func(ctx context.Context) error {
		return e.store.SettleRetries(ctx, SettleParams{Part: p.part.Part, Generation: p.part.Generation, Published: published, Failed: failed})
	}, -2)
	e.tel.child(span, "settle", settleStart, err)
	if err != nil {
		return 0, err
	}
	p.retryNow = len(published) > 0
	p.report(done, doneRes, failed)
	return len(done), nil
}
