// Package mysql is the trustlog store on MySQL (>= 8.0.17) and MariaDB
// (>= 10.6), through bun's mysqldialect and github.com/go-sql-driver/mysql.
//
// Import it for its side effect to register the "mysql" and "mariadb" URL
// schemes:
//
//	import _ "github.com/go-trustlog/trustlog/drivers/mysql"
//
//	mysql://app:secret@db.internal:3306/app?prefix=orders_&tls=true
//
// trustlog's own URL parameters are prefix, max_conns and partitions (how
// many Migrate creates in a new store, 1 to 1024, default 16); the rest
// go to the driver. The driver sets what trustlog depends on itself (parseTime,
// UTC, utf8mb4, client-side interpolation, found-rows counting), so DSNs
// need not know. NewStore wraps a *bun.DB or *sql.DB the application
// already holds.
//
// # How it uses MySQL
//
//   - Open asks the server its version and refuses one without a NO PAD
//     binary collation, saying which it found and which it needs: there
//     is no silent fallback to something unsafe.
//   - A relay reads a partition above its cursor through a (part,
//     leaf_index) index, in position order, and writes nothing per
//     operation: one READ COMMITTED transaction moves the cursor (a
//     compare-and-set on the partition row, fenced by the lease's
//     generation) and puts the batch's failures in the retry table.
//     Deadlock victims (1213) and lock wait timeouts (1205) are retried.
//   - No LISTEN/NOTIFY: the capability says so, and engines poll when idle
//     (every 100ms by default; EngineConfig.PollInterval). A client's
//     Record wakes engines of its own process at once.
//   - Named leases are GET_LOCK/RELEASE_LOCK session locks on a held
//     connection: the server releases them when the holder's connection
//     dies, so a crashed leader is replaced at once, and taking one writes
//     nothing.
//   - Times are DATETIME(6) in UTC; text is utf8mb4 with a NO PAD binary collation,
//     so DOIDs and ids compare byte for byte, trailing spaces included, as on
//     the other databases (migration 00002; utf8mb4_bin ignored them).
//   - Migrate adopts the original SDK's tables in place (upgrade.go), step
//     by step because MySQL commits DDL statement by statement; an
//     interrupted adoption resumes. The schema migrations are idempotent
//     for the same reason, and a store of the previous schema is
//     upgraded in place (sqlstore's positions migration).
package mysql
