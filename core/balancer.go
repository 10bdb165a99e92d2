package core

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// balancer is one relay member's share of the store's partitions. Two
// loops run for it:
//
//   - the renewer, every Lease/3, tells the store the member is alive
//     (Heartbeat) and renews the leases of the partitions it owns,
//     whatever the balancer is doing meanwhile, so a long round of takes
//     or give-backs never lets a lease lapse; a partition whose lease was
//     lost (taken by another member under a newer generation) stops
//     publishing at once;
//   - the balancer, every Lease/3 (every shortRound while it owns fewer
//     than its share), moves towards the member's fair share:
//     with L live members and P partitions, the member at index i of the
//     sorted member list owns P/L partitions, plus one if i < P%L. Above
//     its share it gives partitions back (each publisher finishes the
//     batch in hand first); below it, it takes free or expired ones.
//
// So a relay that joins gets partitions within about one lease period,
// and those of a relay that died move when their leases run out; a
// partition given back is idle for at most a shortRound.
type balancer struct {
	e      *Engine
	member string

	// mu guards owned and members; it is held around each take (so the
	// renewer never sees a partition taken but not yet in owned) but never
	// while a publisher is waited for.
	mu      sync.Mutex
	owned   map[int]*publisher
	members []string
	// done receives publishers whose run ended on its own (fenced).
	done chan *publisher
}

func newBalancer(e *Engine, member string) *balancer {
	return &balancer{e: e, member: member, owned: map[int]*publisher{}, done: make(chan *publisher, 64)}
}

// run balances until the engine stops, then stops its publishers, gives
// their partitions back and leaves.
func (b *balancer) run() {
	e := b.e
	defer b.leave()
	renewed := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(e.softCtx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); b.renewLoop(ctx, renewed) }()
	defer func() { cancel(); wg.Wait() }()
	// The first round waits for the first heartbeat: it needs the members.
	select {
	case <-renewed:
	case <-ctx.Done():
		return
	}
	for ctx.Err() == nil {
		short, err := b.balance(ctx)
		if err != nil && ctx.Err() == nil {
			e.log.Warn("trustlog: balancing partitions failed; will retry", "member", b.member, "err", err)
		}
		every := e.cfg.Lease / 3
		if short {
			every = min(every, shortRound)
		}
		t := time.NewTimer(every)
	wait:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case p := <-b.done:
				b.ended(ctx, p)
			case <-t.C:
				break wait
			}
		}
	}
}

// ended handles a publisher that stopped on its own (fenced): it gives the
// partition back in case it is still ours (a write whose commit was lost
// looks fenced), so it moves on.
func (b *balancer) ended(ctx context.Context, p *publisher) {
	b.mu.Lock()
	b.forget(p)
	b.mu.Unlock()
	if err := b.e.store.ReleasePartition(ctx, p.part.Part, p.part.Generation); err != nil && ctx.Err() == nil {
		b.e.log.Warn("trustlog: cannot give a partition back; it moves when its lease ends", "partition", p.part.Part, "err", err)
	}
}

// forget drops a publisher from owned; b.mu is held.
func (b *balancer) forget(p *publisher) {
	if b.owned[p.part.Part] == p {
		delete(b.owned, p.part.Part)
		b.e.owned.Add(-1)
	}
}

// renewLoop heartbeats and renews every Lease/3 until ctx ends; it signals
// renewed after each success.
func (b *balancer) renewLoop(ctx context.Context, renewed chan<- struct{}) {
	e := b.e
	for ctx.Err() == nil {
		if err := b.renew(ctx); err != nil {
			if ctx.Err() == nil {
				e.log.Warn("trustlog: renewing partition leases failed; will retry", "member", b.member, "err", err)
			}
		} else {
			select {
			case renewed <- struct{}{}:
			default:
			}
		}
		e.idle(ctx, e.cfg.Lease/3, nil)
	}
}

// renew is one heartbeat and renewal; publishers of partitions whose
// lease was lost are aborted.
func (b *balancer) renew(ctx context.Context) error {
	e := b.e
	members, err := e.store.Heartbeat(ctx, b.member, e.cfg.Lease)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.members = members
	asked := time.Now()
	held, err := e.store.RenewPartitions(ctx, b.member, e.cfg.Lease)
	if err != nil {
		b.mu.Unlock()
		return err
	}
	gens := map[int]int64{}
	for _, p := range held {
		gens[p.Part] = p.Generation
	}
	var lost []*publisher
	for part, p := range b.owned {
		if gen, ok := gens[part]; !ok || gen != p.part.Generation {
			lost = append(lost, p)
			b.forget(p)
		} else {
			p.renewed(asked)
		}
	}
	b.mu.Unlock()
	for _, p := range lost {
		e.log.Warn("trustlog: lost a partition's lease", "member", b.member, "partition", p.part.Part)
		p.abort()
	}
	return nil
}

// shortRound is the pause between balancing rounds while a member owns
// fewer partitions than its share: the partitions it is waiting for are
// given back by another member (one that finds itself above its share
// when a relay joins) or expire (a relay that died), and each is idle
// until someone takes it, so the member looks again soon rather than a
// third of a lease later.
const shortRound = 250 * time.Millisecond

// balance is one round: give back or take, towards the fair share. It
// reports whether the member still owns fewer than its share after it.
func (b *balancer) balance(ctx context.Context) (short bool, err error) {
	e := b.e
	parts, err := e.store.Partitions(ctx)
	if err != nil {
		return false, err
	}
	b.mu.Lock()
	share := fairShare(len(parts), b.members, b.member)
	if extra := len(b.owned) - share; extra > 0 {
		b.mu.Unlock()
		b.giveBack(ctx, extra)
		return false, nil
	}
	b.mu.Unlock()
	defer func() {
		if err == nil {
			b.mu.Lock()
			short = len(b.owned) < share
			b.mu.Unlock()
		}
	}()
	// Partitions leased to this member's name that it runs no publisher
	// for come first: a previous process under the same name (restarted
	// at once) or a publisher that stopped; taking them again fences
	// whatever still runs under the old generation. Then free or expired
	// ones. Taking stops once the share is met, so a round is short; the
	// renewer keeps the leases meanwhile either way.
	//
	// An expired lease is taken only takeGrace after its end: its owner
	// stops sending PublishTimeout before the end (publisher.leaseCovers)
	// but may still be advancing the cursor past its last batch, its
	// write queued behind others on a loaded store; taking the partition
	// then would fence that write and send the batch again.
	now := time.Now()
	var orphaned, free []Partition
	for _, p := range parts {
		switch {
		case p.Owner == b.member:
			orphaned = append(orphaned, p)
		case p.Owner == "" || p.Expires.Add(takeGrace(e.cfg.Lease)).Before(now):
			free = append(free, p)
		}
	}
	rand.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
	for _, cand := range append(orphaned, free...) {
		if ctx.Err() != nil {
			return false, nil
		}
		b.mu.Lock()
		if _, mine := b.owned[cand.Part]; mine {
			b.mu.Unlock()
			continue
		}
		if len(b.owned) >= share {
			b.mu.Unlock()
			if cand.Owner == b.member {
				// Leased under this name, run by nobody, and above the
				// share: give it up rather than keep renewing it.
				if err := e.store.ReleasePartition(ctx, cand.Part, cand.Generation); err != nil {
					return false, err
				}
			}
			continue
		}
		asked := time.Now()
		p, err := e.store.TakePartition(ctx, cand.Part, b.member, e.cfg.Lease)
		switch {
		case errors.Is(err, ErrLeaseHeld):
			b.mu.Unlock()
			continue
		case err != nil:
			b.mu.Unlock()
			return false, err
		}
		b.start(p, asked)
		b.mu.Unlock()
	}
	return false, nil
}

// takeGrace is how long after its end an expired lease is taken: a third
// of the lease. A dead relay's partitions thus move at most a lease and
// a third after its last renewal, plus one balancing round (Lease/3).
func takeGrace(lease time.Duration) time.Duration { return lease / 3 }

// fairShare is how many of n partitions member should own.
func fairShare(n int, members []string, member string) int {
	if !slices.Contains(members, member) {
		members = append(slices.Clone(members), member)
		slices.Sort(members)
	}
	i := slices.Index(members, member)
	share := n / len(members)
	if i < n%len(members) {
		share++
	}
	return share
}

// start runs a publisher for a partition just taken by a call made at
// asked; b.mu is held.
func (b *balancer) start(p Partition, asked time.Time) {
	e := b.e
	pub := newPublisher(e, p)
	pub.renewed(asked)
	b.owned[p.Part] = pub
	e.owned.Add(1)
	e.log.Debug("trustlog: took a partition", "member", b.member, "partition", p.Part, "generation", p.Generation, "cursor", p.Cursor)
	e.goJob(func() {
		pub.run()
		if pub.fenced {
			select {
			case b.done <- pub:
			default: // the renewer finds the lease gone and forgets it
			}
		}
	})
}

// giveBack stops n publishers (the highest partitions) at once, waits for
// each to finish its batch in hand, and releases their partitions.
func (b *balancer) giveBack(ctx context.Context, n int) {
	b.mu.Lock()
	parts := make([]int, 0, len(b.owned))
	for part := range b.owned {
		parts = append(parts, part)
	}
	slices.Sort(parts)
	n = min(n, len(parts))
	var stopping []*publisher
	for _, part := range parts[len(parts)-n:] {
		p := b.owned[part]
		b.forget(p)
		p.softStop()
		stopping = append(stopping, p)
	}
	b.mu.Unlock()
	for _, p := range stopping {
		<-p.done
		if err := b.e.store.ReleasePartition(ctx, p.part.Part, p.part.Generation); err != nil {
			b.e.log.Warn("trustlog: cannot give a partition back; it moves when its lease ends", "partition", p.part.Part, "err", err)
		}
	}
}

// leave stops every publisher, releases the partitions and leaves the
// member list.
func (b *balancer) leave() {
	e := b.e
	ctx := e.hardCtx
	b.mu.Lock()
	var stopping []*publisher
	for _, p := range b.owned {
		b.forget(p)
		p.softStop()
		stopping = append(stopping, p)
	}
	b.mu.Unlock()
	for _, p := range stopping {
		<-p.done
		if err := e.store.ReleasePartition(ctx, p.part.Part, p.part.Generation); err != nil && ctx.Err() == nil {
			e.log.Warn("trustlog: cannot give a partition back; it moves when its lease ends", "partition", p.part.Part, "err", err)
		}
	}
	// Partitions still leased under this member's name that it ran no
	// publisher for at the end (a take whose answer was lost, a publisher
	// that ended fenced while the store was out of reach) go back too,
	// rather than wait for their leases to end.
	if parts, err := e.store.Partitions(ctx); err == nil {
		for _, p := range parts {
			if p.Owner == b.member {
				if err := e.store.ReleasePartition(ctx, p.Part, p.Generation); err != nil && ctx.Err() == nil {
					e.log.Warn("trustlog: cannot give a partition back; it moves when its lease ends", "partition", p.Part, "err", err)
				}
			}
		}
	}
	if err := e.store.Leave(ctx, b.member); err != nil && ctx.Err() == nil {
		e.log.Warn("trustlog: cannot leave the member list; the member expires with its lease", "member", b.member, "err", err)
	}
}
