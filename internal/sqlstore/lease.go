package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/go-trustlog/trustlog/core"
)

// rowLocker keeps named leases as rows with an expiry, renewed by the
// holder at a third of their TTL. It works on any database; a holder that
// dies keeps its lease until the TTL runs out.
type rowLocker struct{ s *Store }

// HolderID returns a new identity for a lease holder: host, pid and a
// random suffix, so a log line says who held what.
func HolderID() string {
	host, _ := os.Hostname()
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

func (l *rowLocker) TryAcquire(ctx context.Context, name string, ttl time.Duration) (core.Lease, error) {
	if ttl < time.Second {
		return nil, l.s.errf("lease %q: ttl must be at least 1s", name)
	}
	holder := HolderID()
	unlock := l.s.writing()
	n, err := execCount(ctx, l.s.db, l.s.q.LeaseAcquire, name, holder, ttl.Microseconds())
	unlock()
	if err != nil {
		return nil, l.s.errf("lease %q: %w", name, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: %q", core.ErrLeaseHeld, name)
	}
	return NewRenewedLease(name, ttl, func(ctx context.Context) (bool, error) {
		defer l.s.writing()()
		n, err := execCount(ctx, l.s.db, l.s.q.LeaseRenew, ttl.Microseconds(), name, holder)
		return n == 1, err
	}, func(ctx context.Context) error {
		defer l.s.writing()()
		_, err := l.s.db.ExecContext(ctx, l.s.q.LeaseRelease, name, holder)
		return err
	}), nil
}

// RenewedLease is a core.Lease kept alive by a renew function called every
// third of the TTL. It is lost when renew says the lease is gone, or when
// renew keeps failing until the TTL since the last success has passed.
type RenewedLease struct {
	name    string
	lost    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	release func(context.Context) error
}

// NewRenewedLease starts renewing a freshly acquired lease.
func NewRenewedLease(name string, ttl time.Duration, renew func(context.Context) (bool, error), release func(context.Context) error) *RenewedLease {
	l := &RenewedLease{name: name, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{}), release: release}
	go l.keep(ttl, renew)
	return l
}

func (l *RenewedLease) keep(ttl time.Duration, renew func(context.Context) (bool, error)) {
	defer close(l.done)
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	deadline := time.Now().Add(ttl)
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), ttl/3)
		held, err := renew(ctx)
		cancel()
		switch {
		case err == nil && held:
			deadline = time.Now().Add(ttl)
		case err == nil || time.Now().After(deadline):
			close(l.lost)
			return
		}
	}
}

// Name implements core.Lease.
func (l *RenewedLease) Name() string { return l.name }

// Lost implements core.Lease.
func (l *RenewedLease) Lost() <-chan struct{} { return l.lost }

// Release implements core.Lease.
func (l *RenewedLease) Release(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		err = l.release(ctx)
	})
	return err
}

// SessionLocker keeps named leases as database session locks
// (PostgreSQL advisory locks, MySQL GET_LOCK) on a connection held for the
// lease's lifetime. The database drops such a lock the moment the holder's
// session ends, so a crashed leader's lease is free at once, and taking
// one writes nothing. The holder pings its connection every third of the
// TTL; a failed ping means the session, and the lock with it, is gone:
// the lease reports Lost.
type SessionLocker struct {
	DB *sql.DB
	// Driver names the driver in errors.
	Driver string
	// Acquire takes the lock without waiting and returns one boolean (or
	// 1/0). Args: Key(name).
	Acquire string
	// Release drops the lock. Args: Key(name).
	Release string
	// Key maps a lease name to the lock's key.
	Key func(name string) any
}

// TryAcquire implements core.Locker.
func (l *SessionLocker) TryAcquire(ctx context.Context, name string, ttl time.Duration) (core.Lease, error) {
	if ttl < time.Second {
		return nil, fmt.Errorf("trustlog/%s: lease %q: ttl must be at least 1s", l.Driver, name)
	}
	conn, err := l.DB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("trustlog/%s: lease %q: %w", l.Driver, name, err)
	}
	key := l.Key(name)
	var ok sql.NullBool
	if err := conn.QueryRowContext(ctx, l.Acquire, key).Scan(&ok); err != nil {
		conn.Close()
		return nil, fmt.Errorf("trustlog/%s: lease %q: %w", l.Driver, name, err)
	}
	if !ok.Bool {
		conn.Close()
		return nil, fmt.Errorf("%w: %q", core.ErrLeaseHeld, name)
	}
	return NewRenewedLease(name, ttl, func(ctx context.Context) (bool, error) {
		return conn.PingContext(ctx) == nil, nil
	}, func(ctx context.Context) error {
		_, err := conn.ExecContext(ctx, l.Release, key)
		conn.Close()
		return err
	}), nil
}
