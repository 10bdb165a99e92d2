package core

import (
	"context"
	"encoding/base64"
	"strconv"
	"time"
)

// MessageKind says what a message carries.
type MessageKind string

// Message kinds.
const (
	// KindOperation: Payload is a sealed operation (see AppendSealed).
	KindOperation MessageKind = "operation"
	// KindCheckpoint: Payload is a signed ledger checkpoint (C2SP
	// tlog-checkpoint text in a signed note).
	KindCheckpoint MessageKind = "checkpoint"
)

// Message is what a sink publishes.
type Message struct {
	Kind MessageKind
	// Key is the ordering key: the operation's DOID. A sink keeps messages
	// with one key in order (one Kafka partition, one Pulsar key).
	Key string
	// ID is the idempotency key: the operation's op_id. Consumers (and
	// brokers with deduplication) drop a second message with the same ID.
	ID string
	// Seq is the store's record sequence of the operation (0 if none).
	Seq int64
	// Position is the operation's position in the log (its Merkle leaf
	// index; -1 for a message that has none, such as a checkpoint or a
	// synchronous PublishOnly send). Within a Stream, positions of first
	// sends strictly increase: a sink may use Position as a broker-side
	// sequence id for Stream (Pulsar), and a consumer may ask for the
	// inclusion proof of what it received.
	Position int64
	// Stream names where the message belongs: the log's identity and the
	// operation's partition ("<log id>-p<part>"), "" for messages outside
	// any partition. At most one relay sends a stream at a time.
	Stream string
	// Retry: the message is a re-send of an operation the sink refused
	// before (from the retry table), out of its stream's position order.
	// A sink that deduplicates by sequence id must not send it under
	// Stream with Position as the sequence id (the broker would drop it
	// as older than what followed).
	Retry bool
	// Payload is the message body.
	Payload []byte
	// OpHash, Signer and Sign repeat the operation's hash (hex) and
	// signature so consumers can route or check them without decoding.
	OpHash string
	Signer string
	Sign   []byte
}

// StreamCloser is implemented by sinks that hold a broker-side resource
// per Stream (Pulsar: a producer named after it, which the broker lets
// one client hold at a time). The engine calls CloseStream when it gives
// a partition up, so the partition's next owner, in this process or
// another, gets the stream at once instead of after the sink's idle
// timeout.
type StreamCloser interface {
	CloseStream(stream string) error
}

// Header names every sink puts on a message, in this order.
const (
	HeaderKind          = "trustlog-kind"
	HeaderOpID          = "op_id"
	HeaderOpHash        = "op_hash"
	HeaderSigner        = "signer"
	HeaderSignature     = "signature"
	HeaderContentType   = "content-type"
	HeaderFormatVersion = "format_version"
	HeaderPosition      = "position"
)

// Headers returns the message's metadata as key/value pairs, the same for
// every sink: kind, op_id, op_hash (hex), signer, signature (standard
// base64), content-type, format_version and position (decimal, when the
// message has one). Empty values are left out.
func (m *Message) Headers() [][2]string {
	h := make([][2]string, 0, 8)
	add := func(k, v string) {
		if v != "" {
			h = append(h, [2]string{k, v})
		}
	}
	add(HeaderKind, string(m.Kind))
	add(HeaderOpID, m.ID)
	add(HeaderOpHash, m.OpHash)
	add(HeaderSigner, m.Signer)
	if len(m.Sign) > 0 {
		add(HeaderSignature, base64.StdEncoding.EncodeToString(m.Sign))
	}
	if m.Kind == KindOperation {
		add(HeaderContentType, ContentType)
	}
	add(HeaderFormatVersion, strconv.Itoa(FormatVersion))
	if m.Position >= 0 && m.Kind == KindOperation {
		add(HeaderPosition, strconv.FormatInt(m.Position, 10))
	}
	return h
}

// Sink publishes messages to an attestation system.
type Sink interface {
	// Publish sends msgs, keeping messages with one Key in slice order, and
	// returns one error per message (nil where the sink accepted it) in a
	// slice of len(msgs). Wrap errors that retrying cannot fix with
	// Permanent, and errors that mean the broker is unreachable (not the
	// message's fault) with Unavailable. A message may be accepted even if ctx ends first; the
	// engine treats that as unknown and retries it (at-least-once).
	Publish(ctx context.Context, msgs []Message) []error
	// Close flushes and releases the sink; it is idempotent.
	Close() error
}

// FailAll returns n copies of err: the result of a batch that failed as a
// whole.
func FailAll(n int, err error) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// NewMessage builds the message for a sealed operation, its store
// sequence and its position (-1 if none); the caller sets Stream.
func NewMessage(op *Operation, seq, position int64) (Message, error) {
	payload, err := op.AppendSealed(nil)
	if err != nil {
		return Message{}, err
	}
	return message(op, seq, position, payload), nil
}

// message is op's message with its sealed encoding as payload.
func message(op *Operation, seq, position int64, payload []byte) Message {
	return Message{
		Kind: KindOperation, Key: op.DOID, ID: op.OpID, Seq: seq, Position: position, Payload: payload,
		OpHash: op.OpHash, Signer: op.Signer, Sign: op.Sign,
	}
}

// Delivered is a message as a consumer reads it back from the broker.
type Delivered struct {
	Key     string
	ID      string // the op_id header
	Payload []byte
	Headers map[string]string
	// Position is where the broker keeps it ("partition/offset",
	// "ledgerId:entryId"), for reports.
	Position string
	// Time is the broker's timestamp of the message.
	Time time.Time
}

// Replayer is implemented by sinks that can read back what was published,
// through the broker's own consumer: `trustlog verify-sink` compares it
// with the store. Replay calls fn for every message published since the
// given time (zero: from the beginning) up to the end of the topic as of
// the call, in broker order per key, and returns.
type Replayer interface {
	Replay(ctx context.Context, since time.Time, fn func(Delivered) error) error
}
