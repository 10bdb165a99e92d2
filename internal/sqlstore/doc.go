// Package sqlstore implements core.Store once for every SQL database. A
// driver supplies a Dialect: its statements written out in full
// (partition reads, cursor advances, the retry table, leases, the
// sequencer's appends, migrations), its placeholders, how it binds times
// and lists. sqlstore runs them, scans rows, batches inserts and keeps the
// publishing rules in one place, so the three drivers differ only where
// their databases do.
//
// An operation's publishing state is never stored in its row: every
// operation has a partition (the part column, written by Insert) and,
// from the sequencer, a position (leaf_index, its leaf in the Merkle log:
// a column of the row, or, on PostgreSQL, a row of a narrow positions
// table; the dialect's statements say which, see Names.Position).
// A partition row holds a cursor: its operations at or below it were
// published or are in the retry table, where what the sink refused waits
// (dead or due at a time). So the hot path is one index read per batch
// (the partition above its cursor, in position order) and one short
// transaction (the cursor's compare-and-set, fenced by the partition
// lease's generation, with the batch's failures): nothing per operation.
// Records come back with their state derived from the cursor and the
// retry table (see Columns).
//
// Migrate upgrades a store of the previous schema in place (see
// upgrade.go): each operation gets a position, and its state carries
// over to the cursors and the retry table.
package sqlstore
