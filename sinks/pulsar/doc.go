// Package pulsar is the trustlog sink for Apache Pulsar, on
// github.com/apache/pulsar-client-go.
//
// Import it for its side effect to register the "pulsar" and "pulsar+ssl"
// URL schemes:
//
//	import _ "github.com/go-trustlog/trustlog/sinks/pulsar"
//
//	pulsar://broker:6650/persistent://public/default/trustlog?producer_name=relay-a
//	pulsar+ssl://broker:6651/persistent://acme/audit/ops?token=…&tls_trust_certs=/etc/ca.pem
//
// or build one with New(Config{…}). Options: producer_name, batching,
// batch_delay, batch_messages, send_timeout, operation_timeout, token,
// tls_trust_certs, tls_allow_insecure. An unknown option is an error.
//
// # Messages
//
// Key: the DOID, so a partitioned topic keeps one object's operations on
// one partition, in order. Payload: the sealed operation
// (docs/message-format.md). Properties: the core.Message headers
// (trustlog-kind, op_id, op_hash, signer, signature, content-type,
// format_version).
//
// # Deduplication after a crash
//
// A relay that dies after the broker stored a batch but before the store
// recorded it re-sends that batch when it comes back. Pulsar's broker-side
// deduplication (brokerDeduplicationEnabled, or per namespace) drops a
// message whose producer name it knows with a sequence id at or below the
// highest it stored from that name. The sink uses it as follows.
//
//   - Give every relay a stable producer_name (the CLI's --node is a good
//     one). Without a name the broker names the producer and nothing is
//     deduplicated across restarts.
//   - The sink is a core.SequencedSink. The engine's ordered stream takes
//     every operation, batch after batch (pending ones in seq order, and
//     retries and expired claims as they come due), and goes through a
//     producer named producer_name, with a stream id as the sequence id:
//     the batch's number in the high bits, the seq's low 20 bits below
//     (see core.Message.StreamSeq), so the ids rise in the order they are
//     sent and the claim's token says under which id an operation went.
//     When it connects, the broker tells it the highest id it holds from
//     that name; the engine numbers its batches above it, and records a
//     message an earlier run had sent in that stream, and the broker held
//     when that run ended, as published without sending it again (a
//     re-send under its old id would only be dropped). The sink is a
//     core.PositionedSink: each run records where the stream stood (the
//     last id per partition) as the end of the run before it, so even an
//     older run's re-sends are judged right.
//   - What an engine sends outside its ordered stream (the batches of
//     extra workers, --workers above 1) goes through a second producer,
//     producer_name-unordered, with ids of its own: the broker never
//     mistakes such a message for a duplicate, and never drops a first
//     delivery.
//   - The ordered stream's producer has no send timeout and is fed by one
//     goroutine with a context that never ends (pulsar-client-go fails a
//     queued message whose context ended while it still sends later ones):
//     it keeps its messages, in order, until the broker has them, so what
//     the broker holds from it has no gaps. The engine records any failure
//     of an ordered batch before it sends the next, and takes the node's
//     next run number when an outcome is unknown (see
//     core.SequencedSink).
//   - Another relay that takes over a dead relay's expired claims (after
//     the grace) borrows the dead relay's producer name (core.TakeoverSink):
//     the broker refuses it while the owner is connected (ProducerBusy: the
//     rows go back to their owner, and so they do while the broker cannot
//     be reached), and otherwise tells the taker the highest id it holds
//     under that name; what the owner's runs sent that the broker holds is
//     recorded as published, not sent again. Each relay's
//     producer_name must therefore be the same across its restarts and
//     differ from every other relay's.
//   - A retry of an operation this process already handed to either
//     producer waits for that send and takes its outcome: an outage whose
//     receipts come after the engine's publish timeout leaves one copy,
//     not two. While the send is pending, the engine leaves the operation
//     under the claim it was sent with (core.SendingSink) rather than
//     claiming it anew under an id it never went out with. The unordered
//     producer, too, never gives up on a message unless send_timeout is
//     set.
//
// The ordered stream's producers never batch (one message per send),
// whatever the batching option says: pulsar-client-go sets no
// highest_sequence_id, and a real broker then judges a whole batch by its
// first sequence id. It drops a batch that starts at or below the last id
// it holds, new messages in it included (a loss the client reports as
// success), stores one that starts above it whole, copies included, and
// tells a reconnecting producer the first id of its last batch, not the
// highest it holds. pulsartest deduplicates the same way.
//
// The result: with deduplication on, a relay killed mid-batch leaves each
// message on the topic once, whether it restarts under the same name or
// another relay takes its work over (chaos.TestPulsarCrashDuplicates);
// copies remain possible for what extra workers sent through the
// unordered producer, and where the store lost track of which run sent
// an operation (see RELIABILITY.md). With deduplication off the stream is
// at least once and consumers deduplicate on op_id.
//
// pulsar-client-go (v0.19.0 to v0.21.0) does not return the broker's last sequence id
// from Producer.LastSequenceID before a first receipt, although it is
// documented to; the sink reads it from the producer's sequence generator
// (see brokerLastSequence). Should a future client change that, the sink
// logs a warning and gives up its ordered stream: duplicates after a crash,
// never a loss.
//
// # Results and errors
//
// Publish reports per message, from each message's SendAsync callback.
// Timeouts, a closed or disconnected producer, a full queue, a missing
// topic and refused credentials are core.Unavailable (the engine pauses
// without spending attempts); a message too big or invalid is
// core.Permanent and goes dead at once.
//
// # Reading back
//
// Sink implements core.Replayer with a reader per partition, from the
// earliest message: `trustlog verify-sink` compares the topic with the
// store. The package pulsartest runs an in-process broker speaking the
// Pulsar binary protocol, with deduplication, for tests. Set
// TRUSTLOG_PULSAR_URL=pulsar://host:6650 and the package's sink tests run
// against that real broker too (pulsartest.ExternalHarness).
package pulsar
