package memstore

import (
	"context"
	"fmt"
	"time"

	"github.com/go-trustlog/trustlog/core"
)

// Locker implements core.Store: named leases held by this handle.
func (s *Store) Locker() core.Locker { return locker{s} }

type locker struct{ s *Store }

// TryAcquire implements core.Locker. A lease is held until Release or
// until the handle that took it is closed (a session lease: see the
// package doc); ttl is not needed, as nothing in one process can stall a
// holder without also ending it. Leases are not re-entrant: a second
// TryAcquire of a held name fails with core.ErrLeaseHeld, whoever asks.
func (l locker) TryAcquire(ctx context.Context, name string, _ time.Duration) (core.Lease, error) {
	d, _, err := l.s.lock(ctx, false)
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	if name == "" {
		return nil, fmt.Errorf("memstore: a lease needs a name")
	}
	if d.leases[name] != nil {
		return nil, fmt.Errorf("%w: %s", core.ErrLeaseHeld, name)
	}
	ls := &lease{name: name, holder: l.s, lost: make(chan struct{})}
	d.leases[name] = ls
	return ls, nil
}

// lease is a held named lease.
type lease struct {
	name   string
	holder *Store
	lost   chan struct{} // closed when the holder's handle closes
}

func (l *lease) Name() string          { return l.name }
func (l *lease) Lost() <-chan struct{} { return l.lost }

// Release ends the lease if it is still this one; it is idempotent, and
// does not close Lost (the lease was given up, not lost).
func (l *lease) Release(context.Context) error {
	d := l.holder.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.leases[l.name] == l {
		delete(d.leases, l.name)
	}
	return nil
}
