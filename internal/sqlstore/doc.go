// Package sqlstore implements core.Store once for every SQL database. A
// driver supplies a Dialect: its statements written out in full (claims,
// settles, leases, migrations), its placeholders, how it binds times and
// lists. sqlstore runs them, scans rows, batches inserts and keeps the
// state machine's rules in one place, so the three drivers differ only
// where their databases do.
//
// The hot path is three statements per batch, none per operation: one
// claim (UPDATE … RETURNING, or SELECT … FOR UPDATE SKIP LOCKED and UPDATE
// in one short transaction), the publish (outside any transaction), and
// one settle transaction of at most three statements.
package sqlstore
