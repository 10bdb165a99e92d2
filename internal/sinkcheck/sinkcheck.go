// Package sinkcheck compares what a broker holds with what the store says
// was published: every published operation present, every message a
// well-formed sealed operation whose hash and signature hold and whose
// bytes equal the store's, no message the store does not know. It is the
// engine of `trustlog verify-sink`, the generalisation of the original
// SDK's Pulsar message verification tool.
package sinkcheck

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sort"
	"time"

	"github.com/go-trustlog/trustlog/core"
)

// Options tune a check.
type Options struct {
	// Since limits the check to messages published at or after it, and to
	// operations recorded at or after it (an operation recorded earlier
	// and published later is matched if found, not missed if not).
	// Zero: everything.
	Since time.Time
	// Verifiers check signatures, matched by key name.
	Verifiers []core.Verifier
	// RequireSignature makes an unsigned operation a mismatch.
	RequireSignature bool
	// MaxExamples caps each problem list (default 20); counts stay exact.
	MaxExamples int
	// Progress, if set, is called as messages are read (phase "sink") and
	// operations scanned (phase "store").
	Progress func(phase string, n int)
}

// Problem is one finding.
type Problem struct {
	OpID     string `json:"op_id"`
	Position string `json:"position,omitempty"`
	Reason   string `json:"reason"`
}

// Report is the outcome of a check. The lists hold at most MaxExamples
// entries each; the counts are exact.
type Report struct {
	SinkMessages   int `json:"sink_messages"`
	StorePublished int `json:"store_published"`
	Verified       int `json:"verified"`
	// Unsettled counts messages of operations the store has not settled
	// yet (published by a relay that has not recorded it): not a problem.
	Unsettled   int       `json:"unsettled"`
	MissingN    int       `json:"missing"`
	DuplicatedN int       `json:"duplicated"`
	MismatchedN int       `json:"mismatched"`
	UnknownN    int       `json:"unknown"`
	Missing     []Problem `json:"missing_examples,omitempty"`
	Duplicated  []Problem `json:"duplicated_examples,omitempty"`
	Mismatched  []Problem `json:"mismatched_examples,omitempty"`
	Unknown     []Problem `json:"unknown_examples,omitempty"`
}

// OK reports whether nothing is missing, mismatched or unknown (and, with
// duplicates true, nothing duplicated: duplicates are allowed by design,
// bounded and keyed by op_id).
func (r *Report) OK(duplicates bool) bool {
	return r.MissingN == 0 && r.MismatchedN == 0 && r.UnknownN == 0 && (!duplicates || r.DuplicatedN == 0)
}

type seen struct {
	copies   int
	sum      [sha256.Size]byte
	position string
	matched  bool
}

// Check reads the whole topic (from opts.Since) and the whole store.
func Check(ctx context.Context, store core.Store, sink core.Replayer, opts Options) (*Report, error) {
	if opts.MaxExamples <= 0 {
		opts.MaxExamples = 20
	}
	r := &Report{}
	add := func(list *[]Problem, n *int, p Problem) {
		*n++
		if len(*list) < opts.MaxExamples {
			*list = append(*list, p)
		}
	}
	msgs := map[string]*seen{}
	err := sink.Replay(ctx, opts.Since, func(d core.Delivered) error {
		r.SinkMessages++
		if opts.Progress != nil && r.SinkMessages%1000 == 0 {
			opts.Progress("sink", r.SinkMessages)
		}
		if kind := d.Headers[core.HeaderKind]; kind != "" && kind != string(core.KindOperation) {
			return nil // checkpoints and other kinds are checked elsewhere
		}
		op, err := core.DecodeSealed(d.Payload)
		if err != nil {
			add(&r.Mismatched, &r.MismatchedN, Problem{OpID: d.ID, Position: d.Position, Reason: "payload: " + err.Error()})
			return nil
		}
		if reason := checkMessage(d, op, opts); reason != "" {
			add(&r.Mismatched, &r.MismatchedN, Problem{OpID: op.OpID, Position: d.Position, Reason: reason})
		}
		m := msgs[op.OpID]
		if m == nil {
			m = &seen{sum: sha256.Sum256(d.Payload), position: d.Position}
			msgs[op.OpID] = m
		} else if sha256.Sum256(d.Payload) != m.sum {
			add(&r.Mismatched, &r.MismatchedN, Problem{OpID: op.OpID, Position: d.Position,
				Reason: "a second copy differs from the first at " + m.position})
		}
		m.copies++
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("read the sink: %w", err)
	}
	if opts.Progress != nil {
		opts.Progress("sink", r.SinkMessages)
	}
	scanned := 0
	for after := int64(0); ; {
		page, err := store.Scan(ctx, core.ScanParams{AfterSeq: after, Limit: 1000})
		if err != nil {
			return r, fmt.Errorf("read the store: %w", err)
		}
		if len(page) == 0 {
			break
		}
		for i := range page {
			rec := &page[i]
			m := msgs[rec.Op.OpID]
			if rec.State != core.StatePublished {
				if m != nil {
					m.matched = true
					if rec.State == core.StateRetrying || rec.State == core.StatePending {
						r.Unsettled += m.copies
					} else {
						add(&r.Unknown, &r.UnknownN, Problem{OpID: rec.Op.OpID, Position: m.position,
							Reason: "in the sink but " + rec.State.String() + " in the store"})
					}
				}
				continue
			}
			if !opts.Since.IsZero() && rec.Op.CreatedAt.Before(opts.Since) {
				if m != nil {
					m.matched = true
				}
				continue
			}
			r.StorePublished++
			if m == nil {
				add(&r.Missing, &r.MissingN, Problem{OpID: rec.Op.OpID, Reason: fmt.Sprintf("published (seq %d) but not in the sink", rec.Seq)})
				continue
			}
			m.matched = true
			sealed, err := rec.Op.AppendSealed(nil)
			switch {
			case err != nil:
				add(&r.Mismatched, &r.MismatchedN, Problem{OpID: rec.Op.OpID, Position: m.position, Reason: "store row: " + err.Error()})
			case sha256.Sum256(sealed) != m.sum:
				add(&r.Mismatched, &r.MismatchedN, Problem{OpID: rec.Op.OpID, Position: m.position,
					Reason: "the message differs from the store's operation"})
			default:
				r.Verified++
			}
			if m.copies > 1 {
				add(&r.Duplicated, &r.DuplicatedN, Problem{OpID: rec.Op.OpID, Position: m.position, Reason: fmt.Sprintf("%d copies", m.copies)})
			}
		}
		scanned += len(page)
		if opts.Progress != nil {
			opts.Progress("store", scanned)
		}
		after = page[len(page)-1].Seq
	}
	var unknown []string
	for id, m := range msgs {
		if !m.matched {
			unknown = append(unknown, id)
		}
	}
	sort.Strings(unknown)
	for _, id := range unknown {
		add(&r.Unknown, &r.UnknownN, Problem{OpID: id, Position: msgs[id].position, Reason: "not in the store"})
	}
	return r, nil
}

// checkMessage checks a message's metadata against its payload and its
// signature.
func checkMessage(d core.Delivered, op *core.Operation, opts Options) string {
	switch {
	case d.ID != op.OpID:
		return fmt.Sprintf("op_id header %q differs from the payload's %s", d.ID, op.OpID)
	case d.Key != op.DOID:
		return fmt.Sprintf("key %q differs from the payload's doid %q", d.Key, op.DOID)
	case d.Headers[core.HeaderOpHash] != "" && d.Headers[core.HeaderOpHash] != op.OpHash:
		return "op_hash header differs from the payload's"
	}
	if err := core.VerifyOperation(op, opts.RequireSignature, opts.Verifiers...); err != nil {
		return err.Error()
	}
	return ""
}
