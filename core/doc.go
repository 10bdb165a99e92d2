// Package core is trustlog's public API: the Operation and its canonical
// encoding, validation, signatures, the Client that records operations, the
// relay Engine, and the three interfaces drivers and sinks implement
// (Store, Locker, Sink) with the registry that selects them by URL.
//
// # Why
//
// An application changes a digital object and must be able to prove, later
// and to anyone, who did what to it. trustlog records an Operation in the
// same database transaction as the change (RecordTx), so the proof exists
// if and only if the change does, and then relays it to an attestation
// sink (Pulsar, Kafka) at least once, in order per object, from any number
// of worker processes.
//
// # The state machine
//
// Every stored operation is in one state. Each arrow is one
// compare-and-set statement on the row's state and claim token, so a
// worker that lost its claim can never overwrite another's result.
//
//	           Claim(ClaimPending)            sink accepted
//	pending ─────────────────────────▶ in_flight ────────────▶ published
//	   ▲    (token, lease, attempts+1)   │  │  ▲
//	   │                                 │  │  │ Claim(ClaimDue): retry due,
//	   │ Release (stop; sink             │  │  │ or lease expired (worker died)
//	   │ unavailable): attempt           │  │  │
//	   │ given back                      │  ▼  │
//	   │                       sink error│ retrying ── due_at = now + backoff
//	   │                                 │
//	   │ Requeue                         ▼ attempts = MaxAttempts,
//	   └───────────────────────────── dead   or a Permanent error
//
// What happens on each failure:
//
//   - The worker dies (kill -9) holding a claim: its rows stay in_flight
//     until the lease expires, then the retrier claims them again. Nothing
//     is lost; what it had already published goes out a second time with
//     the same op_id (the only source of duplicates), unless the sink
//     deduplicates (next).
//   - With a TakeoverSink that deduplicates (Pulsar), each relay node
//     sends through an ordered stream whose claims say under which
//     stream id each row went, and whoever claims a dead worker's rows
//     next (the node's next run, or another relay taking them over)
//     records what the broker holds as published instead of sending it
//     again. Such a claim is tentative (TentativeClaim) until the relay
//     knows which rows it sends under its own ids, so dying at any point
//     leaves each row with the claim that may have sent it.
//   - The worker stalls past its lease and then settles: its token no
//     longer matches, the settle changes nothing and is counted as stale.
//   - The sink rejects one message: that operation is retried with
//     exponential backoff and jitter, the rest of the batch is published.
//     After MaxAttempts claims, or at once for a Permanent error, it goes
//     dead; `trustlog dead requeue` brings it back.
//   - The sink is unavailable (Unavailable errors): the batch is released
//     without counting an attempt and every loop pauses, doubling the pause
//     while the outage lasts, so no outage sends anything to dead.
//   - The database is unreachable: claims fail and are retried with a
//     growing delay; nothing is claimed, so nothing is lost.
//   - A stored row was altered after recording: its content no longer
//     hashes to its op_hash; it is not published and goes dead.
//
// The original SDK's status names survive as State.Status: NOT_TRUSTLOGGED
// (pending, in_flight, retrying), TRUSTLOGGED (published) and DEAD.
//
// # Strategies
//
// StoreAndPublish (default) is the outbox above. StoreOnly keeps the
// operation and never publishes it. PublishOnly publishes synchronously
// with a bounded retry and returns the sink's error; nothing is stored.
//
// # Drivers and sinks
//
// Stores and sinks register under URL schemes from their packages' init
// functions, like database/sql drivers; a blank import selects them:
//
//	import (
//		"github.com/go-trustlog/trustlog/core"
//		_ "github.com/go-trustlog/trustlog/drivers/sqlite"
//		_ "github.com/go-trustlog/trustlog/sinks/memory"
//	)
//
//	c, err := core.Open(ctx, core.Config{Store: "sqlite:app.db", Sink: "memory://", Migrate: true})
//
// core imports no driver and no sink.
package core
