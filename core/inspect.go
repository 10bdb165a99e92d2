package core

import (
	"context"
	"strconv"
	"time"
)

// Inspector is implemented by stores that an operator can search: the
// console of `trustlog serve` lists retrying and dead operations with
// filters, shows an object's whole history and an actor's operations,
// and names the live relays. It is optional: the built-in drivers
// implement it, and a console over a Store without it shows the overview
// and the partitions but no lists or search. Every method only reads.
type Inspector interface {
	// Find returns up to q.Limit operations matching every field q sets,
	// in seq order (for a DOID: the object's history as recorded), with
	// their derived State, Attempts, LastError and LeafIndex filled as Get
	// fills them.
	Find(ctx context.Context, q FindQuery) ([]Record, error)
	// Relays returns the relay members whose heartbeat has not run out,
	// sorted, without writing anything (Heartbeat writes).
	Relays(ctx context.Context) ([]string, error)
}

// FindQuery selects operations for Inspector.Find. Set fields combine
// with AND; a query must set at least one of DOID, Actor, State,
// ErrorContains and ChangedBefore (the last three read the retry table),
// so that every search reads an index or the retry table, never the whole
// operation table. Validate says whether a query may run.
type FindQuery struct {
	// DOID selects one object's operations (exact match).
	DOID string
	// Actor selects one actor's operations (op_actor, exact match).
	Actor string
	// From and To bound created_at: From <= created_at < To; a zero
	// bound is open.
	From, To time.Time
	// State, if StateRetrying or StateDead, selects operations in the
	// retry table in that state; zero (StatePending) selects any state.
	// Other states are refused.
	State State
	// ErrorContains selects operations whose last publishing error
	// contains this text (compared byte for byte; no wildcards). It
	// implies the operation is in the retry table.
	ErrorContains string
	// ChangedBefore selects operations whose retry row last changed
	// before it (how long a dead operation has waited); zero is open. It
	// implies the operation is in the retry table.
	ChangedBefore time.Time
	// AfterSeq pages: operations with a larger seq.
	AfterSeq int64
	// Limit caps the result: default 100 (FindLimitDefault), at most
	// FindLimitMax (a larger one is lowered to it). Negative is refused.
	Limit int
}

// FindLimitDefault is the FindQuery.Limit of a query that sets none.
const FindLimitDefault = 100

// FindLimitMax is the largest FindQuery.Limit.
const FindLimitMax = 1000

// Validate returns a *QueryError (wrapping ErrInvalidQuery) if q may not
// run: it selects by none of DOID, Actor, State, ErrorContains and
// ChangedBefore, its State is neither zero nor StateRetrying nor
// StateDead, or its Limit is negative. Inspectors call it first.
func (q FindQuery) Validate() error {
	switch q.State {
	case StatePending, StateRetrying, StateDead:
	default:
		return &QueryError{Field: "State", Reason: "must be StateRetrying, StateDead or zero (any state), not " + q.State.String()}
	}
	if q.Limit < 0 {
		return &QueryError{Field: "Limit", Reason: "must not be negative (0 is the default, " + strconv.Itoa(FindLimitDefault) + ")"}
	}
	if q.DOID == "" && q.Actor == "" && q.State == StatePending && q.ErrorContains == "" && q.ChangedBefore.IsZero() {
		return &QueryError{Reason: "set at least one of DOID, Actor, State, ErrorContains and ChangedBefore (a search must not read the whole operation table)"}
	}
	return nil
}

// EffectiveLimit is the number of operations Find returns at most for
// q: its Limit, FindLimitDefault when zero, at most FindLimitMax.
func (q FindQuery) EffectiveLimit() int {
	switch {
	case q.Limit <= 0:
		return FindLimitDefault
	case q.Limit > FindLimitMax:
		return FindLimitMax
	}
	return q.Limit
}
