package postgres

import (
	"hash/fnv"

	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

// advisoryLocker keeps named leases as session advisory locks. Why
// advisory locks rather than a lease row: see sqlstore.SessionLocker.
// Keys are per schema and prefix (ns), so two logs in one database have
// separate leases.
func advisoryLocker(s *sqlstore.Store, ns string) *sqlstore.SessionLocker {
	return &sqlstore.SessionLocker{
		DB: s.DB(), Driver: "postgres",
		Acquire: `SELECT pg_try_advisory_lock($1)`,
		Release: `SELECT pg_advisory_unlock($1)`,
		Key: func(name string) any {
			h := fnv.New64a()
			h.Write([]byte(ns + "\x00" + name))
			return int64(h.Sum64())
		},
	}
}
