// Package sqlite is the trustlog store on a SQLite database file: the
// embedded default that needs no server, pure Go (modernc.org/sqlite
// through bun's sqliteshim; CGO_ENABLED=0 builds).
//
// Import it for its side effect to register the "sqlite" and "file" URL
// schemes:
//
//	import _ "github.com/go-trustlog/trustlog/drivers/sqlite"
//
//	sqlite:trustlog.db
//	sqlite:///var/lib/app/trustlog.db?prefix=app_&synchronous=NORMAL
//
// or wrap a database the application already opened with NewStore.
//
// What SQLite cannot do, and what the driver does instead (reported
// through core.Capabilities, which the engine and the conformance suite
// branch on):
//
//   - One writer at a time: a relay's cursor advance and the sequencer's
//     append are short IMMEDIATE transactions. Within a process the store
//     queues its own writes behind a mutex rather than letting goroutines
//     spin on SQLITE_BUSY; across processes they wait through the busy
//     timeout.
//   - No LISTEN/NOTIFY: engines poll when idle (100ms by default) and are
//     woken at once by Record calls of a client in the same process.
//   - No session locks: named leases are rows with an expiry, renewed by
//     their holder; a holder that dies keeps its lease until the TTL runs
//     out.
//
// Files are opened in WAL mode with synchronous=FULL, a 10s busy timeout,
// IMMEDIATE transactions and an 8 MiB page cache per connection (URL
// parameters synchronous, busy_timeout, max_conns and cache_mib change
// them; partitions sets how many Migrate creates in a new store, 1 to
// 1024, default 16). Times are stored as integer Unix microseconds. The
// hot reads are pinned to their indexes with INDEXED BY: after ANALYZE on
// a big table SQLite's planner otherwise sometimes scans the whole table.
package sqlite
