// Package pulsartest is an in-process Apache Pulsar broker for tests.
//
// It speaks the Pulsar binary protocol over TCP on 127.0.0.1, well enough for
// github.com/apache/pulsar-client-go (written against v0.19.0, used with
// v0.21.0) producers, consumers and readers to work against it unchanged:
//
//	b := pulsartest.Start(t)                       // closed by t.Cleanup
//	client, _ := pulsar.NewClient(pulsar.ClientOptions{URL: b.URL()})
//	... produce and consume as against a real broker ...
//	msgs := b.Messages("my-topic")                 // what the broker stored
//
// # What it does
//
//   - Handshake: CONNECT/CONNECTED (protocol version up to 20, max_message_size
//     5 MiB unless WithMaxMessageSize), PING/PONG (it answers pings; it never
//     pings by itself), AUTH_RESPONSE is ignored.
//   - Lookup: PARTITIONED_METADATA (the number of partitions for topics made
//     with CreatePartitionedTopic or WithPartitionedTopic, 0 otherwise) and
//     LOOKUP (always "connect to this broker", authoritative).
//   - Topics: persistent://tenant/namespace/topic names (short names are
//     expanded like the client does). Topics are created on first use by a
//     producer or consumer. A partitioned topic "t" with n partitions is the
//     n topics "t-partition-0" .. "t-partition-<n-1>".
//   - Producing: PRODUCER/PRODUCER_SUCCESS (the client's producer name is
//     used, otherwise a unique one is assigned; last_sequence_id is the highest
//     sequence id stored for that producer name on that topic, so a restarted
//     producer resumes), SEND/SEND_RECEIPT/SEND_ERROR, CLOSE_PRODUCER. The
//     CRC32C of every SEND is checked: a frame without the checksum magic or
//     with a wrong checksum is answered with SEND_ERROR ChecksumError and not
//     stored. Batches are split into their messages, each with its own key,
//     properties and sequence id. Each SEND is one entry with message id
//     (ledger, entry); messages of a batch also carry their batch index.
//     Message ids carry the partition index on partitioned topics.
//   - Deduplication (on by default, WithDedup/SetDedup), as Apache Pulsar
//     4.2 does it (checked against a real broker, see RELIABILITY.md): per
//     topic and producer name the broker keeps the last sequence id, and a
//     SEND is judged as a whole by its highest_sequence_id, or by its
//     sequence_id (its first message's) when the client sets none, as
//     pulsar-client-go never does. A SEND not above the last is dropped
//     whole, new messages of a batch included, and answered with a
//     SEND_RECEIPT with message id -1:-1, which the client reports as
//     success; any other SEND is stored whole, messages with ids the broker
//     already holds included, and its id becomes the last. PRODUCER_SUCCESS
//     tells a producer that last id: after a batch, its first message's id,
//     not the highest stored.
//   - Consuming: SUBSCRIBE (Exclusive, Shared, Failover and Key_Shared;
//     initial position Earliest or Latest; durable subscriptions keep their
//     cursor across consumer reconnects and broker restarts; non-durable ones,
//     as readers use, start at the given start message id and disappear with
//     their last consumer), FLOW permits, MESSAGE (one MESSAGE per stored
//     entry, i.e. a batch is delivered as the batch it was sent as, and a
//     partly acknowledged batch with an ack_set), ACK (individual and
//     cumulative, batch-index ack_set honoured, ACK_RESPONSE when a request
//     id is given), REDELIVER_UNACKNOWLEDGED_MESSAGES (all, or the given
//     entries; redeliveries come before new entries), CLOSE_CONSUMER,
//     UNSUBSCRIBE, GET_LAST_MESSAGE_ID (with the mark-delete position), SEEK
//     by message id or publish time (the cursor is reset and the consumers
//     are sent CLOSE_CONSUMER so that they re-subscribe, as Pulsar does), and
//     GET_TOPICS_OF_NAMESPACE. What a consumer had not acknowledged when it
//     went away is redelivered.
//   - Anything else that carries a request id (schema lookups, consumer
//     stats, transactions, topic list watchers) is answered with an ERROR
//     (NotAllowedError); other unknown commands are ignored. Malformed frames
//     close that connection; they never crash the broker.
//   - Inspection and fault injection: Messages, Topics, DropConnections,
//     DelayReceipts, WithholdReceipts, RejectSends, Stop and Restart.
//
// # What it does not do
//
//   - No authentication or authorization (auth data is ignored), no TLS.
//   - No schemas: there is no schema registry. Schemas given by producers and
//     consumers are accepted and ignored; GET_OR_CREATE_SCHEMA succeeds
//     without a schema version and GET_SCHEMA fails.
//   - No transactions, no chunked messages, no end-to-end encryption, no
//     compression: SENDs using any of them are refused with SEND_ERROR
//     NotAllowedError (only compression type NONE is accepted). Note that
//     pulsar-client-go's dead-letter and retry-letter producers always
//     compress (LZ4), so DLQ/RLQ routing does not work against this broker.
//   - No non-persistent topics, no geo-replication, no retention or TTL
//     (nothing is ever deleted while the broker lives; a real broker with
//     the default retention of 0 deletes a rolled-over ledger that no
//     subscription or deduplication cursor still needs), no backlog quotas, no
//     topic compaction (read_compacted is ignored), no delayed delivery
//     (deliver_at_time is ignored: messages are delivered at once), no
//     dead-letter or retry topics beyond what the client does itself.
//   - One broker, in memory. Each topic has a single ledger for its whole
//     life, also across Restart. Data survives Stop/Restart but not Close.
//   - Subscription types are not enforced beyond this: a subscription with an
//     Exclusive consumer refuses a second consumer (ConsumerBusy); other types
//     accept several consumers and dispatch to them round robin (no failover
//     standby, no key-based routing). Producer access modes are ignored;
//     as on a real broker, a producer name is held by one connected
//     producer per topic at a time (another gets ProducerBusy).
//   - No broker-initiated keep-alive pings, no stale-connection detection
//     (a real broker pings the connection holding a producer name that
//     another producer asks for and hands the name over after 5 s without
//     an answer; pulsartest answers ProducerBusy until the holder's
//     connection closes), no topic migration, no BrokerEntryMetadata.
//   - A topic keeps one ledger id across Restart (a real broker opens a
//     new ledger, so message ids after a restart start from entry 0 of
//     it), and a producer may attach to "t-partition-N" of a topic that is
//     not partitioned (a real broker refuses it: "Partition metadata not
//     found").
//   - Flow control counts permits per message like Pulsar, but a whole entry
//     is sent as soon as at least one permit is left.
//
// pulsar-client-go (v0.19.0 to v0.21.0) reacts to SEND_ERROR (other than NotAllowedError
// and TopicTerminatedError) by closing the connection and retransmitting, so
// a refused send fails on the client only when its SendTimeout expires. Its
// non-batching producer also has a data race, reported by -race, when it
// reconnects while a send is in flight (partitionProducer.grabCnx rewrites
// fields internalSingleSend reads); tests that drop connections under load
// are best written with batching producers.
//
// The broker is safe for concurrent use. Close (and Stop) wait for every
// goroutine the broker started.
package pulsartest
