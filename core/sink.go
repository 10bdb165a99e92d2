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
	// Seq is the store's sequence for the operation (0 if it has none):
	// monotonic per store, usable as a broker-side sequence id.
	Seq int64
	// Payload is the message body.
	Payload []byte
	// OpHash, Signer and Sign repeat the operation's hash (hex) and
	// signature so consumers can route or check them without decoding.
	OpHash string
	Signer string
	Sign   []byte
	// Ordered: the message belongs to this engine's ordered stream, at
	// StreamSeq. Stream ids strictly increase, in the order the engine
	// hands messages to the sink, from above the last sequence the
	// SequencedSink's OrderedStream returned. A sink may use StreamSeq as
	// a broker-side sequence id.
	Ordered   bool
	StreamSeq int64
	// Redelivery: this engine's node sent the operation before in its
	// ordered stream, at PrevStreamSeq, and stopped before recording the
	// outcome (it crashed), and the broker's highest last sequence is at
	// or above it: re-sending it with that sequence id lets a
	// deduplicating broker drop it if it had arrived. A message may be
	// both Ordered and a Redelivery: where the broker does not hold
	// PrevStreamSeq (its partition's last sequence is lower), the message
	// goes out at StreamSeq. (With a PositionedSink the engine judges the
	// partition itself and records what the broker holds as published,
	// sending nothing.)
	Redelivery    bool
	PrevStreamSeq int64
}

// SequencedSink is implemented by sinks whose broker deduplicates by
// producer and sequence id (Pulsar). An engine then keeps one ordered
// stream: a dispatcher that claims pending operations batch by batch and
// numbers them (Message.StreamSeq) above the broker's last sequence, in
// the order it sends them, so a sink can use each StreamSeq as a sequence
// id without ever sending a lower one after a higher (which the broker
// would drop as a duplicate). The ordered dispatcher also claims retries
// and expired claims; only the batches of further dispatchers
// (EngineConfig.Workers above 1) are sent without that promise.
//
// The engine records the outcome of an ordered batch in which anything
// failed before it sends the next ordered batch (and, if it cannot, or
// when an ordered claim's outcome is unknown, takes the node's next run
// number first), so a failed message never carries an ordered claim of
// the current run number while a higher sequence reaches the broker:
// after a crash, every Redelivery whose PrevStreamSeq is at or below the
// broker's last sequence is one the broker holds, provided the sink sends
// the stream's messages in order and does not give up on one while
// sending later ones.
type SequencedSink interface {
	Sink
	// OrderedStream grants the ordered stream to one engine at a time: it
	// returns the highest sequence id the broker holds for the sink's
	// producer (0 if none), and ok false if another engine holds the
	// stream.
	OrderedStream(ctx context.Context) (last int64, ok bool, err error)
	// EndOrderedStream gives the stream back.
	EndOrderedStream()
}

// TakeoverSink is a SequencedSink whose ordered stream has a name at the
// broker that outlives the process (Pulsar: the producer name). When an
// engine takes over claims a dead node made in its ordered stream, it
// borrows that node's stream by name: the broker then says how far the
// dead node got, and what it holds is recorded as published rather than
// sent again, so a take-over adds no copies. While the owner is connected
// the broker refuses the name (ErrStreamBusy): the owner is alive and the
// engine gives the rows back to it.
type TakeoverSink interface {
	SequencedSink
	// StreamName is the broker's name of this sink's ordered stream, ""
	// if it has none that outlives the process.
	StreamName() string
	// Borrow takes the ordered stream named name while nobody else holds
	// it, and returns ErrStreamBusy (wrapped) while someone does.
	Borrow(ctx context.Context, name string) (BorrowedStream, error)
}

// BorrowedStream is another node's ordered stream, held until Release.
type BorrowedStream interface {
	// Holds reports whether the broker holds the stream's message with
	// key and stream id id, if the stream sent it: whether id is at or
	// below the highest sequence id the broker holds from the stream where
	// that key goes (Pulsar: per partition).
	Holds(key string, id int64) bool
	// Release flushes and gives the name back; it is idempotent.
	Release()
}

// PositionedSink is a SequencedSink that can say where its ordered
// stream stood at the broker, in a form of its own (Pulsar: the last
// sequence per partition). A node's next run records, as the end of the
// run before, where the stream stood when it started; that says which of
// the earlier run's sends the broker holds even after later runs sent
// higher ids, so the earlier run's unfinished claims the broker holds are
// recorded as published rather than sent again as copies.
type PositionedSink interface {
	SequencedSink
	// Position is where the stream stood when the sink connected.
	Position() string
	// HeldAt reports whether the broker held the stream's message with
	// key and stream id id when the stream stood at pos (a Position of a
	// sink for the same topic); false if pos is not one it can read.
	HeldAt(pos, key string, id int64) bool
}

// SendingSink is implemented by sinks that go on sending a message after
// Publish returned without its outcome (Pulsar: a producer never gives up
// a message of the ordered stream) and remember what they delivered. Sent
// reports what became of this process's send of the operation with seq:
// pending (handed to the broker, no outcome yet) or delivered (the broker
// acknowledged it); both false if the sink knows of none.
//
// The engine uses it when it claims an operation again: a pending one goes
// back under the claim it was sent with, and a delivered one is recorded
// as published before anything else of the batch goes out. Claiming either
// anew and sending it through the sink would have the new claim say the
// operation went out under a new stream id, which it never did, and after
// a crash the next sender could not tell that the broker holds it.
type SendingSink interface {
	Sent(seq int64) (pending, delivered bool)
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
)

// Headers returns the message's metadata as key/value pairs, the same for
// every sink: kind, op_id, op_hash (hex), signer, signature (standard
// base64), content-type and format_version. Empty values are left out.
func (m *Message) Headers() [][2]string {
	h := make([][2]string, 0, 7)
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

// NewMessage builds the message for a sealed operation and its store
// sequence.
func NewMessage(op *Operation, seq int64) (Message, error) {
	payload, err := op.AppendSealed(nil)
	if err != nil {
		return Message{}, err
	}
	return Message{
		Kind: KindOperation, Key: op.DOID, ID: op.OpID, Seq: seq, Payload: payload,
		OpHash: op.OpHash, Signer: op.Signer, Sign: op.Sign,
	}, nil
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
