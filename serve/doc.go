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
//	GET /op/<op_id>                        an HTML page that shows the operation and verifies it in the browser
//	GET /assets/<name>                     the page's script, style sheet and icon (embedded; versioned names
//	                                       such as verify.<hash>.js never change and are cached as immutable)
//
// Tiles and entry bundles are served only as far as the latest signed
// checkpoint reaches, so everything served is covered by a signature the
// client can check; full ones never change and are cached as immutable.
// The server holds no private key: it serves what the store holds and
// what the ledger's sequencer signed (`trustlog relay --ledger-key-file`).
//
// # The operation page
//
// A person who is sent a link to an operation should not need trustlog
// to check it. /op/<op_id> shows the operation as the store holds it,
// and its script (web/assets/verify.js, WebCrypto only: SHA-256 and
// Ed25519) checks it against the log the way `trustlog verify-proof`
// does: it fetches the operation's proof and the log's key from this
// server, verifies the checkpoint's note signature and that its origin
// is the key's name, recomputes the tree's root from the entry and the
// inclusion proof (RFC 6962), decodes the entry (docs/message-format.md)
// and compares each field with the page. The page says which step failed
// and why, or that no checkpoint covers the operation yet. A key fetched
// from the server proves only that the server agrees with itself; the
// page shows the key's name and hash for the reader to compare with the
// one the log's operator publishes.
//
// The operation's fields are text that applications recorded, never
// markup: html/template escapes them on the server, and the script
// writes the entry's fields with textContent only.
//
// # Response policy
//
// Every response carries Content-Security-Policy default-src 'none',
// X-Content-Type-Options nosniff and X-Frame-Options DENY; only GET and
// HEAD are allowed. The HTML pages (/op/, and their 400 and 404 pages)
// are the exception to the first: their policy allows their own script,
// style sheet, icon and fetches from this origin, and nothing inline:
//
//	default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self';
//	base-uri 'none'; form-action 'self'; frame-ancestors 'none'
//
// Entries (which hold user-supplied text such as DOIDs) are otherwise
// only ever sent as application/octet-stream bytes. `trustlog serve`
// runs this handler; docs/operating.md ("Serving the public log") says
// how to check a served log. The pages' tests run them in headless
// Chromium (internal/browsertest).
package serve
