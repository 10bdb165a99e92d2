package sqlstore

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/go-trustlog/trustlog/core"
)

var _ core.Inspector = (*Store)(nil)

// Find implements core.Inspector. A query on the retry table's fields
// (State, ErrorContains, ChangedBefore) reads the retry table in seq
// order (the (dead, seq) index when it names a state, its primary key
// otherwise, filtering the error text and last change on the way: the
// table holds only failed operations) and joins each row to its
// operation; any other reads the operation table through its
// (doid, seq) or (op_actor, seq, created_at) index (migration 00005,
// 00006 on MySQL). Both select Columns, as Get does. Every value is a
// bound parameter; ErrorContains goes through the dialect's substring
// test (Queries.FindErrorContains), never LIKE, so % and _ are plain
// text.
func (s *Store) Find(ctx context.Context, q core.FindQuery) ([]core.Record, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	text, args := s.findSQL(q)
	recs, err := s.queryRecords(ctx, s.db, text, args...)
	if err != nil {
		return nil, s.errf("find: %w", err)
	}
	return recs, nil
}

// findSQL renders q (valid) as one statement and its arguments.
func (s *Store) findSQL(q core.FindQuery) (string, []any) {
	var (
		conds []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return s.d.Placeholder(len(args))
	}
	inRetry := q.State != core.StatePending || q.ErrorContains != "" || !q.ChangedBefore.IsZero()
	var b strings.Builder
	seq := "o.seq"
	switch {
	case inRetry:
		b.WriteString(s.q.FindInRetry)
		seq = "r.seq"
		switch q.State {
		case core.StateDead:
			conds = append(conds, s.q.FindDead)
		case core.StateRetrying:
			conds = append(conds, s.q.FindRetrying)
		}
		if q.DOID != "" {
			// The retry row's copy of the DOID: its (doid, leaf_index)
			// index.
			conds = append(conds, "r.doid = "+arg(q.DOID))
		}
	case q.DOID != "":
		b.WriteString(s.q.FindByDOID)
		conds = append(conds, "o.doid = "+arg(q.DOID))
	default:
		b.WriteString(s.q.FindByActor)
	}
	if q.Actor != "" {
		conds = append(conds, "o.op_actor = "+arg(q.Actor))
	}
	if !q.From.IsZero() {
		conds = append(conds, "o.created_at >= "+arg(s.d.TimeArg(ceilMicro(q.From))))
	}
	if !q.To.IsZero() {
		conds = append(conds, "o.created_at < "+arg(s.d.TimeArg(ceilMicro(q.To))))
	}
	if q.ErrorContains != "" {
		conds = append(conds, strings.Replace(s.q.FindErrorContains, "{arg}", arg(q.ErrorContains), 1))
	}
	if !q.ChangedBefore.IsZero() {
		conds = append(conds, "r.updated_at < "+arg(s.d.TimeArg(ceilMicro(q.ChangedBefore))))
	}
	conds = append(conds, seq+" > "+arg(q.AfterSeq))
	b.WriteString(" WHERE ")
	b.WriteString(strings.Join(conds, " AND "))
	b.WriteString(" ORDER BY " + seq + " LIMIT " + arg(q.EffectiveLimit()))
	return b.String(), args
}

// ceilMicro rounds t up to the microsecond, the precision every driver
// stores times in: created_at >= t holds for a stored time exactly when
// created_at >= ceilMicro(t), and likewise for <.
func ceilMicro(t time.Time) time.Time {
	if r := t.Truncate(time.Microsecond); !r.Equal(t) {
		return r.Add(time.Microsecond)
	}
	return t
}

// Relays implements core.Inspector: the members Heartbeat would return,
// read without writing (expired rows stay until a heartbeat forgets
// them).
func (s *Store) Relays(ctx context.Context) ([]string, error) {
	members, err := s.members(ctx)
	if err != nil {
		return nil, s.errf("relays: %w", err)
	}
	return members, nil
}

// members lists the relay members whose heartbeat has not run out,
// sorted byte-wise (the same on every database).
func (s *Store) members(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.q.Members)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var members []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return nil, err
		}
		members = append(members, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.Sort(members)
	return members, nil
}
