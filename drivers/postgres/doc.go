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
// in transaction mode, where LISTEN does not work), max_conns and
// partitions (how many Migrate creates in a new store, 1 to 1024, default
// 16); every other parameter goes to pgx. NewStore wraps a *bun.DB or
// *sql.DB the application already holds.
//
// # How it uses PostgreSQL
//
//   - Positions are not in the operation row but in a narrow table of
//     their own, trustlog_position (leaf_index, seq, part), and the
//     operations without one wait in trustlog_unsequenced. The store's
//     INSERT queues its operations there in the same statement; a row
//     trigger on the operation table queues those anyone else inserts
//     (the original SDK, a COPY), in the inserting transaction. The
//     sequencer takes a batch off that queue and inserts
//     its positions: the operation row is written once, by the
//     application. Updating a leaf_index column there instead wrote a
//     new version of the whole row and an entry in each of its indexes
//     (the update is never HOT, the column being indexed), 2.3-2.5 x the
//     cost of the narrow rows (BENCHMARKS.md).
//   - A relay reads a partition above its cursor through the positions'
//     (part, leaf_index) index, in position order, and writes nothing per
//     operation: one transaction moves the cursor (a compare-and-set on
//     the partition row, fenced by the lease's generation) and puts the
//     batch's failures in the retry table (bound as five arrays through
//     unnest). No timestamp decides anything.
//   - Wake on commit: every insert carries a pg_notify in its own round
//     trip (a CTE), delivered at commit and folded by PostgreSQL into one
//     per transaction, and the sequencer's Append notifies the same
//     channel when it gives positions; one LISTEN connection per store is
//     shared by every engine of the process. When it drops, engines poll
//     (1s) until it is back.
//   - Named leases are session advisory locks (pg_try_advisory_lock) on a
//     connection held for the lease: PostgreSQL releases them the moment
//     the holder's session dies, so a crashed leader's work is taken over
//     at once, and taking one writes nothing. A lease row would instead
//     keep a dead holder's lease until its TTL ran out.
//   - Partition leases are rows (owner, expiry, generation), not advisory
//     locks: a session per partition would pin a connection each.
//   - Migrate adopts the original SDK's tables in place (see upgrade.go),
//     then runs the embedded bun/migrate migrations, in transactions; a
//     store of the previous schema is upgraded in place (sqlstore's
//     positions migration).
package postgres
