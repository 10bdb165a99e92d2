package memstore

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/go-trustlog/trustlog/core"
)

var _ core.Repartitioner = (*Store)(nil)

// Repartition implements core.Repartitioner under one lock hold: every
// refusal is checked before anything is written, then the partitions are
// replaced and every row moves to its DOID's partition under n at once,
// so there is never an interrupted rewrite to finish. With n equal to the
// store's number nothing changes (the refusals still apply).
//
// The store needs no core.Placer: an operation gets its partition when
// its transaction commits (data.commit), under the same lock, so it never
// carries a number of partitions the store no longer has.
func (s *Store) Repartition(ctx context.Context, n int, progress func(rewritten int64)) error {
	if n < 1 || n > core.MaxPartitions {
		return &core.ConfigError{Field: "partitions", Reason: fmt.Sprintf("must be 1 to %d, not %d", core.MaxPartitions, n)}
	}
	d, now, err := s.lock(ctx, true)
	if err != nil {
		return err
	}
	defer d.mu.Unlock()
	if err := d.refuseRepartition(now); err != nil {
		return err
	}
	if n == len(d.parts) {
		return nil
	}
	var gen int64
	for _, p := range d.parts {
		gen = max(gen, p.Generation)
	}
	cursor := int64(len(d.byPos)) - 1
	parts := make([]*partition, n)
	for i := range parts {
		parts[i] = &partition{Partition: core.Partition{Part: i, Cursor: cursor, Generation: gen + 1}}
	}
	for _, r := range d.rows {
		r.part = core.PartitionOf(r.op.DOID, n)
	}
	for _, r := range d.byPos { // position order: each partition's rows stay sorted
		parts[r.part].rows = append(parts[r.part].rows, r)
	}
	d.parts = parts
	if progress != nil {
		progress(int64(len(d.rows)))
	}
	return nil
}

// refuseRepartition returns a *core.RepartitionError while a relay is
// live (its heartbeat, a partition lease or the sequencer's lease) or a
// partition has operations with a position above its cursor. d.mu is
// held.
func (d *data) refuseRepartition(now time.Time) error {
	var relays []string
	for m, until := range d.members {
		if until.After(now) {
			relays = append(relays, m)
		}
	}
	if len(relays) > 0 {
		sort.Strings(relays)
		return &core.RepartitionError{Reason: "relays are running (" + strings.Join(relays, ", ") + ")",
			Fix: "stop every relay first (a killed relay counts until its heartbeat runs out)"}
	}
	if d.leases[core.SequencerLease] != nil {
		return &core.RepartitionError{Reason: "a relay's sequencer is running", Fix: "stop every relay first"}
	}
	var held, behind []string
	var backlog int64
	for _, p := range d.parts {
		if p.Owner != "" && p.Expires.After(now) {
			held = append(held, fmt.Sprintf("%d (%s)", p.Part, p.Owner))
		}
		// The partition's rows are in position order: those above the
		// cursor are at the end.
		above := len(p.rows) - sort.Search(len(p.rows), func(i int) bool { return p.rows[i].pos > p.Cursor })
		if above > 0 {
			behind = append(behind, fmt.Sprint(p.Part))
			backlog += int64(above)
		}
	}
	if len(held) > 0 {
		return &core.RepartitionError{Reason: "partitions are leased: " + strings.Join(held, ", "),
			Fix: "stop every relay first (a killed relay's leases run out after --lease)"}
	}
	if backlog > 0 {
		return &core.RepartitionError{
			Reason: fmt.Sprintf("%d operations with a position are not published yet (partitions %s)", backlog, strings.Join(behind, ", ")),
			Fix:    "run the relays until `trustlog cursor status` shows no backlog, stop them, then try again"}
	}
	return nil
}
