// Package kafka is the trustlog sink for Apache Kafka, on
// github.com/segmentio/kafka-go.
//
// Import it for its side effect to register the "kafka" URL scheme:
//
//	import _ "github.com/go-trustlog/trustlog/sinks/kafka"
//
//	kafka://broker1:9092,broker2:9092/trustlog.operations?acks=all&compression=zstd
//	kafka://user:secret@broker:9093/ops?tls=true&sasl=scram-sha-512
//
// or build one with New(Config{…}). Options: acks (all, the default; one;
// none), compression, batch_size, batch_timeout, max_message_bytes,
// write_timeout, tls, sasl (plain, scram-sha-256, scram-sha-512), client_id
// and auto_create (off by default: a mistyped topic is an error, not a new
// topic).
//
// # Messages
//
// Key: the DOID, partitioned with murmur2 like the Java client, so one
// object's operations share a partition and stay in order. Value: the
// sealed operation (docs/message-format.md). Headers: trustlog-kind, op_id
// (the idempotency key), op_hash, signer, signature, content-type,
// format_version and position (the operation's leaf index in the log).
//
// # Delivery
//
// Every message goes through one producer, whatever its stream or
// whether it is a retry: Kafka orders by key within a partition, which
// is all the relay's order needs. Kafka has no deduplication that
// outlives a producer session (the idempotent producer's sequence
// numbers are per session, not per name), so a partition's next owner,
// sending again from the partition's cursor after a crash or a
// rebalance, can put a second copy of a message on the topic: delivery is
// at least once, and consumers drop copies by op_id (the position header
// says where each belongs in the log).
//
// # Results and errors
//
// Publish reports per message: kafka-go's WriteErrors say which messages
// of a batch failed, and only those are retried. Errors are classified
// for the engine: a broker that is down, a moving partition leader or
// one the client's metadata does not have yet (no leader while the
// broker restarts), a missing topic or refused credentials are
// core.Unavailable (the engine pauses without spending any operation's
// attempts, and nothing goes to the retry table); a message over
// max_message_bytes, or one the broker refuses as too large, is
// core.Permanent and goes dead at once. A partition batch refused as too
// large is retried message by message, so only the oversized operation
// fails.
//
// # Reading back
//
// Sink implements core.Replayer with kafka-go Readers, one per partition:
// `trustlog verify-sink` compares the topic with the store. The package
// kafkatest runs an in-process cluster speaking the real Kafka protocol for
// tests.
package kafka
