// Package ledger keeps a Merkle log of every stored operation, in the same
// database, so that anyone holding the log's public key can prove offline
// that nothing was altered, dropped or reordered: what makes a trust log
// more than an outbox.
//
// It builds on golang.org/x/mod/sumdb: tlog for RFC 6962 hashing, stored
// hashes, inclusion and consistency proofs; note for Ed25519 signed notes.
// Nothing of the tree math is re-derived here.
//
// # Pieces
//
//   - The leaf of an operation is its sealed encoding (content, op_hash,
//     signer, signature; docs/message-format.md), the same bytes its
//     messages carry.
//   - The Sequencer (one leader per store, by a named lease) takes stored
//     operations that have no leaf index yet, selected by that state and
//     never by a cursor or a timestamp, so late commits are sequenced late
//     rather than skipped. In one transaction it gives them gapless leaf
//     indices, stores the tree's new hashes and advances the tree size,
//     with a compare-and-set on the size.
//   - Checkpoints follow C2SP tlog-checkpoint (origin, size, base64 root)
//     as signed notes. The sequencer never signs two inconsistent ones:
//     before signing it proves the tree extends the last signed checkpoint,
//     it refuses a tree smaller than a signed one, and a store that lost
//     the last checkpoint it signed. Checkpoints are
//     stored and also published through the sink, so a copy lives outside
//     the database.
//   - Proofs follow C2SP tlog-proof: index, inclusion proof, checkpoint,
//     and the operation in the "extra" line. Verify checks one with the
//     log's key alone.
//   - Consistency proofs (ProveConsistency, ConsistencyProof,
//     VerifyConsistency) show that a checkpointed tree extends an older
//     one; their text is the body of a C2SP tlog-witness add-checkpoint
//     request.
//   - Audit checks a whole store: every leaf recomputed from its row, every
//     stored hash, gapless indices, every operation (sequenced or not),
//     every checkpoint, every signature, that a checkpoint covers every
//     leaf; it names the first bad index. Checkpoints held outside the
//     store (AuditOptions.Trusted: saved files, the sink's copies,
//     PublishedCheckpoints) catch what the store alone cannot: a truncated
//     or rewritten log whose checkpoints were deleted with it.
//
// The three built-in drivers implement Storage; a third-party store may
// (it is optional: without it a store relays but keeps no signed
// checkpoints). Every relay engine builds the tree; it runs a Sequencer,
// which signs checkpoints, when EngineConfig.Ledger is set (`trustlog
// relay --ledger-key-file`).
package ledger
