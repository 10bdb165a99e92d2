// Package serve publishes a trustlog ledger over HTTP, so that anyone can
// fetch its signed checkpoints, its Merkle tree and its entries, and
// check them, with standard tooling and no trustlog code.
//
// # Why
//
// A proof file (`trustlog prove`) convinces whoever receives it. A log
// earns trust when anyone can monitor it as a whole: fetch the latest
// checkpoint, recompute its root from the tree's hashes, read every
// entry, and check that each new checkpoint extends the last one. The
// C2SP tlog-tiles API (https://c2sp.org/tlog-tiles) is the common way to
// offer that: static, cacheable resources fetched by plain GETs that a
// C2SP client reads as they are. golang.org/x/mod/sumdb/tlog's
// TileHashReader reads and authenticates them once told a tile's C2SP
// path; this package's tests check a served log that way.
//
// # What NewPublicLog serves
//
//	GET /checkpoint                        the latest signed checkpoint (C2SP tlog-checkpoint note)
//	GET /tile/<L>/<N>[.p/<W>]              hash tiles of height 8 (C2SP tlog-tiles)
//	GET /tile/entries/<N>[.p/<W>]          entry bundles: each leaf (the operation's sealed
//	                                       encoding) as a big-endian uint16 length and its bytes
//	GET /proof/<op_id>                     an operation's C2SP tlog-proof, as `trustlog prove` writes it
//	GET /.well-known/trustlog/log.pub      the log's public key (note verifier key; its name is the origin)
//
// Tiles and entry bundles are served only as far as the latest signed
// checkpoint reaches, so everything served is covered by a signature the
// client can check; full ones never change and are cached as immutable.
// The server holds no private key: it serves what the store holds and
// what the ledger's sequencer signed (`trustlog relay --ledger-key-file`).
//
// Every response carries Content-Security-Policy default-src 'none',
// X-Content-Type-Options nosniff and X-Frame-Options DENY; only GET and
// HEAD are allowed. Entries (which hold user-supplied text such as DOIDs)
// are only ever sent as application/octet-stream bytes. `trustlog serve`
// runs this handler; docs/operating.md ("Serving the public log") says
// how to check a served log.
package serve
