// Package witness lets anyone run a witness of a trustlog ledger (or of
// any C2SP tlog-checkpoint log), and lets a verifier require cosignatures
// from witnesses it trusts.
//
// # Why
//
// A signed checkpoint proves what the log's key signed, not that everyone
// was shown the same log. A log operator (or whoever holds its key and
// database) could show one history to an auditor and another to a user, or
// rewrite history and sign a fresh tree: a split view. Each view verifies
// on its own; only comparing them reveals the fork.
//
// A witness does the comparing. It keeps, per log, the latest checkpoint it
// accepted, and cosigns a new checkpoint only if the log signed it and it
// provably extends that one (an RFC 6962 consistency proof). It never
// cosigns a smaller tree, nor two different trees of one size. A verifier
// that requires cosignatures from K witnesses it trusts
// ([VerifyCosignatures]) knows that each of them saw that tree as the
// append-only continuation of everything it saw before; to split the
// view, the log would have to fool them all.
//
// # Formats
//
// Everything is a C2SP format, so a trustlog witness interoperates with
// other witnesses, logs and verifiers:
//   - checkpoints are C2SP tlog-checkpoint signed notes (package ledger);
//   - an add-checkpoint request is the body of the C2SP tlog-witness
//     add-checkpoint call ("old <size>", the consistency proof hashes, an
//     empty line, the checkpoint), which `trustlog prove --consistency`
//     writes ([ledger.ConsistencyProof]);
//   - a cosignature is a C2SP tlog-cosignature Ed25519 cosignature/v1: a
//     note signature line whose key ID is SHA-256(name || "\n" || 0x04 ||
//     public key)[:4] and whose signature is an 8-byte big-endian
//     timestamp followed by the Ed25519 signature of
//     "cosignature/v1\ntime <timestamp>\n" || checkpoint body.
//
// # Pieces
//
//   - [GenerateKey], [NewSigner], [NewVerifier]: witness keys in the
//     signed-note key format (vkey type 0x04).
//   - [Witness]: the state file (one per witness, atomically replaced and
//     fsynced, updates serialized by a lock file) and
//     [Witness.AddCheckpoint], which verifies and cosigns, or rejects with a
//     [RejectError] saying why (rollback, fork, bad signature, unknown log,
//     conflict, malformed).
//   - [Witness.Handler]: the C2SP tlog-witness HTTP API (POST
//     /add-checkpoint).
//   - [VerifyCosignatures] and [Cosignatures]: the verifier's side.
package witness
