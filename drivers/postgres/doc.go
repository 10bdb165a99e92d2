// Package postgres is the trustlog store on PostgreSQL (12 or later),
// through bun's pgdialect and the pgx driver.
//
// Import it for its side effect to register the "postgres" and
// "postgresql" URL schemes:
//
//	import _ "github.com/go-trustlog/trustlog/drivers/postgres"
//
//	postgres://app@db.internal:5432/app?sslmode=verify-full&schema=trustlog&prefix=orders_
//
// trustlog's own URL parameters are schema (created by Migrate if
// missing), prefix (for table and index names), notify=false (for poolers
// in transaction mode, where LISTEN does not work) and max_conns; every
// other parameter goes to pgx. NewStore wraps a *bun.DB or *sql.DB the
// application already holds.
//
// # How it uses PostgreSQL
//
//   - Claims are one UPDATE … RETURNING whose candidate subquery takes the
//     lowest-seq pending rows through a partial index (WHERE state = 0)
//     with FOR UPDATE SKIP LOCKED: concurrent claimers pass over each
//     other's rows without waiting, and no timestamp decides anything.
//   - Publishing happens outside any transaction; settling is one
//     transaction of at most three statements, each a batched
//     compare-and-set (failures bound as three arrays through unnest).
//   - Wake on commit: every insert carries a pg_notify in its own round
//     trip (a CTE), delivered at commit and folded by PostgreSQL into one
//     per transaction; one LISTEN connection per store is shared by every
//     engine of the process. When it drops, engines poll (1s) until it is
//     back.
//   - Named leases are session advisory locks (pg_try_advisory_lock) on a
//     connection held for the lease: PostgreSQL releases them the moment
//     the holder's session dies, so a crashed leader's work is taken over
//     at once, and taking one writes nothing. A lease row would instead
//     keep a dead holder's lease until its TTL ran out.
//   - Migrate adopts the original SDK's tables in place (see upgrade.go),
//     then runs the embedded bun/migrate migrations, in transactions.
package postgres
