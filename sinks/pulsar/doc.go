// Package pulsar is the trustlog sink for Apache Pulsar, on
// github.com/apache/pulsar-client-go.
//
// Import it for its side effect to register the "pulsar" and "pulsar+ssl"
// URL schemes:
//
//	import _ "github.com/go-trustlog/trustlog/sinks/pulsar"
//
//	pulsar://broker:6650/persistent://public/default/trustlog
//	pulsar+ssl://broker:6651/persistent://acme/audit/ops?token=…&tls_trust_certs=/etc/ca.pem
//
// or build one with New(Config{…}). Options: producer_name, batching,
// batch_delay, batch_messages, send_timeout, operation_timeout,
// max_streams, stream_idle, token, tls_trust_certs, tls_allow_insecure.
// An unknown option is an error.
//
// # Messages
//
// Key: the DOID, so a partitioned topic keeps one object's operations on
// one partition, in order. Payload: the sealed operation
// (docs/message-format.md). Properties: the core.Message headers
// (trustlog-kind, op_id, op_hash, signer, signature, content-type,
// format_version, position).
//
// # One producer per stream, positions as sequence ids
//
// The relay splits the log into partitions; one relay at a time owns a
// partition and sends its operations in position order, as the stream
// core.Message.Stream names ("<log id>-p<part>"). The sink gives each
// stream a producer named exactly after it and sends each of the
// stream's operations with its position (its Merkle leaf index) as the
// Pulsar sequence id. With deduplication on (brokerDeduplicationEnabled,
// or per namespace), the broker keeps, per producer name and topic
// partition, the highest sequence id it stored, and drops a message at or
// below it. So whoever owns a partition next (the same relay restarted
// after a crash, or another one after a rebalance) simply sends again
// from the partition's cursor under the same name: the broker drops what
// it already holds and stores the rest, once. No run history, no
// coordination between relays: the position is the same for every
// sender, and the broker remembers the stream's progress.
//
// That holds only if the broker never holds a position above one it does
// not hold from the same producer name: it would drop that one's re-send
// as a copy, a loss the client reports as success. The sink keeps to it:
//
//   - A stream's producer never batches, whatever batching says:
//     pulsar-client-go sets no highest_sequence_id, so a broker judges a
//     batch by its first sequence id alone, dropping a batch that starts
//     at or below the last it holds whole, new messages included.
//   - It never gives up a message: no send timeout, and every message is
//     handed over, in position order, by one goroutine with a context
//     that ends only when the producer closes (pulsar-client-go fails a
//     queued message whose context ended while it still delivers later
//     ones). A producer that fails a message for any other reason than
//     the message itself (it was closed under the sink, say) is closed at
//     once, failing what it still holds, and the stream's next Publish
//     opens a new one, which the broker tells where the stream stands.
//   - A first send of a position at or below one already handed to the
//     stream's producer (out of the stream's order, which a relay should
//     not do) goes through the plain producer below: a copy at worst.
//
// Within the process, a re-send of a position the stream's producer
// still holds (the engine gave up waiting for its receipt and sends from
// its cursor again) waits for that send instead of queuing a second one,
// and a re-send of a position the broker acknowledged lately is answered
// at once.
//
// The broker lets one connected producer hold a name. A sink that opens a
// stream while another client still holds it (the previous owner is
// alive, or its connection has not closed yet) gets ProducerBusy, which
// Publish returns as core.Unavailable: the partition waits and tries
// again, without spending attempts, until the holder lets go. A relay
// lets go when it closes the sink, calls CloseStream, or leaves the
// stream unused for stream_idle (default 30s), whichever comes first; at
// most max_streams (default 64) stream producers stay open, the least
// recently used idle one closing first. When a relay dies, the broker
// frees its names as its connections close (a broker that asks for a
// held name checks that the holder still answers). LastPosition reports
// the highest position the broker acknowledged to this sink's producer
// of a stream, for logs, status and tests.
//
// # Retries and messages outside streams
//
// Everything else goes through one plain producer (named producer_name,
// or by the broker when that is empty), with sequence ids the client
// numbers itself: retries (core.Message.Retry, re-sends from the retry
// table), messages with no stream (checkpoints, synchronous sends), and
// out-of-order first sends. A retry cannot reuse its stream's sequence
// ids: it is a position the stream went past (the operation was refused
// then, and later positions were sent and stored since), so under the
// stream's name the broker would take it for a copy and drop it, and the
// operation would never reach the topic. The plain producer's ids are
// new to the broker, so it stores every first delivery; what it gives up
// on is at-least-once delivery instead of exactly once: consumers drop a
// second copy by op_id. Within the process, a retry of an operation the
// plain producer still holds, or delivered lately, takes that send's
// outcome instead of sending a copy.
//
// # Results and errors
//
// Publish reports per message, from each message's SendAsync callback, or
// core.Unavailable for those still without a receipt when ctx ends (their
// sends go on; a re-send waits for them). Timeouts, a closed or
// disconnected producer, a full queue, a missing topic, refused
// credentials, a stream held by another producer, and any producer the
// broker will not create (starting, its metadata or storage recovering)
// are core.Unavailable: the engine pauses the partition without spending
// attempts, and nothing goes to the retry table, whose re-sends leave
// outside the stream's deduplication. A message too big or invalid is
// core.Permanent and goes dead at once.
//
// With deduplication off the sink is at least once throughout, and
// consumers deduplicate on op_id.
//
// # Reading back
//
// Sink implements core.Replayer with a reader per partition, from the
// earliest message: `trustlog verify-sink` compares the topic with the
// store. The package pulsartest runs an in-process broker speaking the
// Pulsar binary protocol, with deduplication as Apache Pulsar does it,
// for tests that inject faults; the real broker (pulsartest.Server,
// `scripts/services.sh up pulsar`) is where the tests prove the
// deduplication itself.
package pulsar
