package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

// advisoryLocker keeps named leases as session advisory locks
// (pg_try_advisory_lock) on a connection held for the lease's lifetime.
// Why advisory locks rather than a lease row: PostgreSQL drops them the
// moment the holder's session ends, so a crashed leader's lease is free at
// once instead of after a TTL, and taking one writes nothing. The holder
// pings its connection every third of the TTL; a failed ping means the
// session (and with it the lock) is gone, and the lease reports Lost.
type advisoryLocker struct {
	s  *sqlstore.Store
	ns string // the store's channel name: leases are per schema and prefix
}

// lockKey maps a lease name to the advisory lock's bigint key.
func (l *advisoryLocker) lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(l.ns + "\x00" + name))
	return int64(h.Sum64())
}

func (l *advisoryLocker) TryAcquire(ctx context.Context, name string, ttl time.Duration) (core.Lease, error) {
	if ttl < time.Second {
		return nil, fmt.Errorf("trustlog/postgres: lease %q: ttl must be at least 1s", name)
	}
	conn, err := l.s.DB().Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("trustlog/postgres: lease %q: %w", name, err)
	}
	key := l.lockKey(name)
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
		conn.Close()
		return nil, fmt.Errorf("trustlog/postgres: lease %q: %w", name, err)
	}
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("%w: %q", core.ErrLeaseHeld, name)
	}
	return sqlstore.NewRenewedLease(name, ttl, func(ctx context.Context) (bool, error) {
		return conn.PingContext(ctx) == nil, nil
	}, func(ctx context.Context) error {
		_, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, key)
		conn.Close()
		return err
	}), nil
}
