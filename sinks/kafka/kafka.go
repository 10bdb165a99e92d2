package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	kgo "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/redact"
)

func init() {
	core.RegisterSink("kafka", core.SinkDriverFunc(func(ctx context.Context, url string) (core.Sink, error) {
		return Open(url)
	}))
}

// Defaults of Config.
const (
	BatchSizeDefault       = 1000
	BatchTimeoutDefault    = 5 * time.Millisecond
	MaxMessageBytesDefault = 1 << 20
	WriteTimeoutDefault    = 10 * time.Second
)

// Config configures a Kafka sink. Open parses it from a URL; New takes it
// directly.
type Config struct {
	// Brokers are the bootstrap brokers, host:port.
	Brokers []string
	// Topic receives the messages.
	Topic string
	// Acks is what the broker waits for before acknowledging: AcksAll
	// (the zero value: every in-sync replica), AcksOne or AcksNone.
	// Anything but all can lose an acknowledged operation when a broker
	// fails.
	Acks Acks
	// Compression of produced batches (default none).
	Compression compress.Compression
	// BatchSize and BatchTimeout bound how the producer groups messages
	// per partition (defaults 1000 and 5ms; the engine already hands over
	// whole batches, so a short timeout only ends partial ones sooner).
	BatchSize    int
	BatchTimeout time.Duration
	// MaxMessageBytes is the largest message the broker accepts (its
	// message.max.bytes, default 1 MiB). A larger operation is refused
	// before sending, with a permanent error: it goes dead at once.
	MaxMessageBytes int
	// WriteTimeout bounds one produce request (default 10s).
	WriteTimeout time.Duration
	// TLS, if set, encrypts connections.
	TLS *tls.Config
	// SASL, if set, authenticates (plain.Mechanism, scram.Mechanism).
	SASL sasl.Mechanism
	// ClientID names the client to the brokers (default "trustlog").
	ClientID string
	// AutoCreateTopic lets the broker create a missing topic (off by
	// default: a mistyped topic should be an error, not a new topic).
	AutoCreateTopic bool
}

// Acks says which replicas must have a message before the broker
// acknowledges it.
type Acks int

// The acknowledgement levels.
const (
	AcksAll Acks = iota
	AcksOne
	AcksNone
)

func (a Acks) kafka() kgo.RequiredAcks {
	switch a {
	case AcksOne:
		return kgo.RequireOne
	case AcksNone:
		return kgo.RequireNone
	}
	return kgo.RequireAll
}

// ParseURL parses kafka://[user:password@]host:port[,host:port…]/topic with
// the parameters acks (all, one, none), compression (none, gzip, snappy,
// lz4, zstd), batch_size, batch_timeout, max_message_bytes, write_timeout,
// tls (true, skip-verify), sasl (plain, scram-sha-256, scram-sha-512; the
// credentials come from the user info or sasl_user and sasl_password),
// client_id and auto_create. Unknown parameters are an error.
func ParseURL(raw string) (Config, error) {
	var c Config
	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: kafka URL %q: %s", core.ErrInvalidURL, redact.URL(raw), fmt.Sprintf(format, args...))
	}
	rest, ok := strings.CutPrefix(raw, "kafka://")
	if !ok {
		return bad("want kafka://host:port[,host:port…]/topic")
	}
	if redact.AmbiguousUserInfo(raw) {
		// Part of the password would be read as a broker or the topic:
		// quote nothing of it.
		return c, fmt.Errorf("%w: kafka URL: %s", core.ErrInvalidURL, redact.Unparseable)
	}
	hostPart, topicPart, _ := strings.Cut(rest, "/")
	topic, query, _ := strings.Cut(topicPart, "?")
	var user, pass string
	if at := strings.LastIndexByte(hostPart, '@'); at >= 0 {
		userinfo := hostPart[:at]
		hostPart = hostPart[at+1:]
		u, p, _ := strings.Cut(userinfo, ":")
		var err1, err2 error
		user, err1 = url.PathUnescape(u)
		pass, err2 = url.PathUnescape(p)
		if err1 != nil || err2 != nil {
			return bad("user info is not URL-encoded")
		}
	}
	for _, h := range strings.Split(hostPart, ",") {
		if _, port, err := net.SplitHostPort(h); err != nil || port == "" {
			return bad("broker %q is not host:port", h)
		}
		c.Brokers = append(c.Brokers, h)
	}
	t, err := url.PathUnescape(topic)
	if err != nil || t == "" || strings.Contains(t, "/") {
		return bad("the path must be one topic name")
	}
	c.Topic = t
	q, err := url.ParseQuery(query)
	if err != nil {
		return bad("the query cannot be parsed (write %% as %%25 and ; as %%3B)")
	}
	var mechanism string
	for k, vs := range q {
		v := vs[len(vs)-1]
		var err error
		switch k {
		case "acks":
			switch v {
			case "all", "-1":
				c.Acks = AcksAll
			case "one", "1":
				c.Acks = AcksOne
			case "none", "0":
				c.Acks = AcksNone
			default:
				return bad("acks must be all, one or none")
			}
		case "compression":
			codecs := map[string]compress.Compression{"none": 0, "gzip": compress.Gzip, "snappy": compress.Snappy,
				"lz4": compress.Lz4, "zstd": compress.Zstd}
			cc, ok := codecs[v]
			if !ok {
				return bad("compression must be none, gzip, snappy, lz4 or zstd")
			}
			c.Compression = cc
		case "batch_size", "max_message_bytes":
			n, perr := strconv.Atoi(v)
			if perr != nil || n < 1 {
				return bad("%s must be a positive integer", k)
			}
			if k == "batch_size" {
				c.BatchSize = n
			} else {
				c.MaxMessageBytes = n
			}
		case "batch_timeout", "write_timeout":
			d, perr := time.ParseDuration(v)
			if perr != nil || d <= 0 {
				return bad("%s must be a duration like 5ms", k)
			}
			if k == "batch_timeout" {
				c.BatchTimeout = d
			} else {
				c.WriteTimeout = d
			}
		case "tls":
			switch v {
			case "true", "1":
				c.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
			case "skip-verify":
				c.TLS = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}
			case "false", "0":
			default:
				return bad("tls must be true, skip-verify or false")
			}
		case "sasl":
			mechanism = strings.ToLower(v)
		case "sasl_user":
			user = v
		case "sasl_password":
			pass = v
		case "client_id":
			c.ClientID = v
		case "auto_create":
			if c.AutoCreateTopic, err = strconv.ParseBool(v); err != nil {
				return bad("auto_create must be true or false")
			}
		default:
			return bad("unknown parameter %q", k)
		}
	}
	switch mechanism {
	case "":
		if user != "" {
			return bad("user info given but no sasl mechanism (sasl=plain, scram-sha-256 or scram-sha-512)")
		}
	case "plain":
		c.SASL = plain.Mechanism{Username: user, Password: pass}
	case "scram-sha-256", "scram-sha-512":
		algo := scram.SHA256
		if mechanism == "scram-sha-512" {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, user, pass)
		if err != nil {
			return bad("sasl: %v", err)
		}
		c.SASL = m
	default:
		return bad("sasl must be plain, scram-sha-256 or scram-sha-512")
	}
	return c, nil
}

// Sink publishes to one Kafka topic with github.com/segmentio/kafka-go.
type Sink struct {
	cfg       Config
	w         *kgo.Writer
	transport *kgo.Transport
	dialer    *kgo.Dialer
	mu        sync.Mutex
	closed    bool
}

// Open parses a kafka URL (see ParseURL) and returns a sink. It does not
// connect until the first publish.
func Open(rawURL string) (*Sink, error) {
	c, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return New(c)
}

// New returns a sink for c.
func New(c Config) (*Sink, error) {
	if len(c.Brokers) == 0 {
		return nil, &core.ConfigError{Field: "Brokers", Reason: "at least one broker is required"}
	}
	if c.Topic == "" {
		return nil, &core.ConfigError{Field: "Topic", Reason: "is required"}
	}
	if c.BatchSize == 0 {
		c.BatchSize = BatchSizeDefault
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = BatchTimeoutDefault
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = MaxMessageBytesDefault
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = WriteTimeoutDefault
	}
	if c.ClientID == "" {
		c.ClientID = "trustlog"
	}
	// A transport of its own: kafka-go's default one caches metadata
	// across writers, so a topic recreated elsewhere would be looked for on
	// stale partitions.
	transport := &kgo.Transport{TLS: c.TLS, SASL: c.SASL, ClientID: c.ClientID, MetadataTTL: 10 * time.Second}
	return &Sink{
		cfg:       c,
		transport: transport,
		dialer:    &kgo.Dialer{TLS: c.TLS, SASLMechanism: c.SASL, ClientID: c.ClientID, Timeout: 10 * time.Second},
		w: &kgo.Writer{
			Addr:  kgo.TCP(c.Brokers...),
			Topic: c.Topic,
			// Java clients partition by murmur2 of the key: one object's
			// operations land in the partition any other producer of the
			// same topic would choose.
			Balancer:     &kgo.Murmur2Balancer{},
			RequiredAcks: c.Acks.kafka(),
			Compression:  c.Compression,
			BatchSize:    c.BatchSize,
			// A produce batch never exceeds what the broker accepts for one
			// message (message.max.bytes bounds record batches too).
			BatchBytes:             int64(c.MaxMessageBytes),
			BatchTimeout:           c.BatchTimeout,
			WriteTimeout:           c.WriteTimeout,
			MaxAttempts:            3,
			Transport:              transport,
			AllowAutoTopicCreation: c.AutoCreateTopic,
		},
	}, nil
}

// Publish implements core.Sink. Messages are produced with the DOID as
// key (one object, one partition, in order), the op_id and the other
// core.Message headers, and the sealed operation as value. A batch whose
// partition write fails with MessageTooLarge is retried one message at a
// time, so only the oversized operation is refused.
func (s *Sink) Publish(ctx context.Context, msgs []core.Message) []error {
	errs := make([]error, len(msgs))
	if len(msgs) == 0 {
		return errs
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return core.FailAll(len(msgs), core.Unavailable(core.ErrClosed))
	}
	out := make([]kgo.Message, 0, len(msgs))
	idx := make([]int, 0, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		if n := messageSize(m); n > s.cfg.MaxMessageBytes {
			errs[i] = core.Permanent(fmt.Errorf("kafka: message of %d bytes exceeds max_message_bytes %d", n, s.cfg.MaxMessageBytes))
			continue
		}
		out = append(out, toKafka(m))
		idx = append(idx, i)
	}
	if len(out) == 0 {
		return errs
	}
	werrs := s.write(ctx, out)
	var tooLarge []int
	for j, err := range werrs {
		if errors.Is(err, kgo.MessageSizeTooLarge) && len(out) > 1 {
			tooLarge = append(tooLarge, j)
			continue
		}
		errs[idx[j]] = classify(err)
	}
	for _, j := range tooLarge {
		errs[idx[j]] = classify(s.write(ctx, out[j:j+1])[0])
	}
	return errs
}

// write produces msgs and returns one error per message.
func (s *Sink) write(ctx context.Context, msgs []kgo.Message) []error {
	err := s.w.WriteMessages(ctx, msgs...)
	var we kgo.WriteErrors
	switch {
	case err == nil:
		return make([]error, len(msgs))
	case errors.As(err, &we) && len(we) == len(msgs):
		return we
	}
	return core.FailAll(len(msgs), err)
}

// classify marks broker-side conditions that are not the message's fault
// as core.Unavailable (the engine pauses without spending attempts), and
// size and format rejections as core.Permanent.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ke kgo.Error
	if errors.As(err, &ke) {
		switch ke {
		case kgo.MessageSizeTooLarge, kgo.RecordListTooLarge, kgo.InvalidMessage,
			kgo.InvalidRecord, kgo.UnsupportedCompressionType:
			return core.Permanent(err)
		}
		if ke.Temporary() || ke == kgo.UnknownTopicOrPartition || ke == kgo.TopicAuthorizationFailed ||
			ke == kgo.SASLAuthenticationFailed || ke == kgo.ClusterAuthorizationFailed {
			// Leadership moves, timeouts, a missing topic or credentials:
			// every message would fail alike until someone or something
			// fixes the broker side.
			return core.Unavailable(err)
		}
		return err
	}
	if errors.Is(err, protocol.ErrNoLeader) || errors.Is(err, protocol.ErrNoPartition) || errors.Is(err, protocol.ErrNoTopic) {
		// The client's metadata has no leader for the partition (the
		// broker restarts, or elects one), or lacks the partition or
		// topic: the cluster's state, not the message's fault.
		return core.Unavailable(err)
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrClosedPipe) {
		return core.Unavailable(err)
	}
	return err
}

func toKafka(m *core.Message) kgo.Message {
	hs := m.Headers()
	headers := make([]kgo.Header, len(hs))
	for i, h := range hs {
		headers[i] = kgo.Header{Key: h[0], Value: []byte(h[1])}
	}
	return kgo.Message{Key: []byte(m.Key), Value: m.Payload, Headers: headers}
}

// messageSize approximates a message's size on the wire (record overhead
// included), to refuse what the broker would.
func messageSize(m *core.Message) int {
	n := len(m.Key) + len(m.Payload) + 64
	for _, h := range m.Headers() {
		n += len(h[0]) + len(h[1]) + 8
	}
	return n
}

// Close flushes and closes the producer; it is idempotent.
func (s *Sink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	err := s.w.Close()
	s.transport.CloseIdleConnections()
	return err
}

// replayRetryFor bounds how long Replay retries an offset lookup the
// broker answers with a temporary error.
const replayRetryFor = 10 * time.Second

// Replay implements core.Replayer with kafka-go Readers, one per
// partition, from the first offset (or the first at or after since) to the
// end of each partition as of the call.
func (s *Sink) Replay(ctx context.Context, since time.Time, fn func(core.Delivered) error) error {
	client := &kgo.Client{Addr: kgo.TCP(s.cfg.Brokers...), Transport: s.transport, Timeout: 10 * time.Second}
	meta, err := s.topicMetadata(ctx, client)
	if err != nil {
		return err
	}
	var bounds, atTime []kgo.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		bounds = append(bounds, kgo.FirstOffsetOf(p.ID), kgo.LastOffsetOf(p.ID))
		atTime = append(atTime, kgo.TimeOffsetOf(p.ID, since))
	}
	offsets := func(reqs []kgo.OffsetRequest) (map[int]kgo.PartitionOffsets, error) {
		// A partition's leader answers metadata a moment before it answers
		// offset lookups (NOT_LEADER_OR_FOLLOWER right after a topic is
		// created or a leader moves): retry what the broker calls
		// temporary, for up to replayRetryFor.
		deadline := time.Now().Add(replayRetryFor)
		for {
			res, err := client.ListOffsets(ctx, &kgo.ListOffsetsRequest{Topics: map[string][]kgo.OffsetRequest{s.cfg.Topic: reqs}})
			if err != nil {
				return nil, fmt.Errorf("kafka: offsets: %w", err)
			}
			out := map[int]kgo.PartitionOffsets{}
			for _, po := range res.Topics[s.cfg.Topic] {
				if err == nil && po.Error != nil {
					err = fmt.Errorf("kafka: offsets of partition %d: %w", po.Partition, po.Error)
				}
				out[po.Partition] = po
			}
			var kerr kgo.Error
			if err == nil || !errors.As(err, &kerr) || !kerr.Temporary() || time.Now().After(deadline) {
				return out, err
			}
			select {
			case <-ctx.Done():
				return nil, err
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	b, err := offsets(bounds)
	if err != nil {
		return err
	}
	var t map[int]kgo.PartitionOffsets
	if !since.IsZero() {
		if t, err = offsets(atTime); err != nil {
			return err
		}
	}
	for _, p := range meta.Topics[0].Partitions {
		start, end := b[p.ID].FirstOffset, b[p.ID].LastOffset
		if t != nil {
			start = end // nothing at or after since, unless the broker names an offset
			for off := range t[p.ID].Offsets {
				if off >= 0 && off < start {
					start = off
				}
			}
		}
		if start >= end {
			continue
		}
		if err := s.replayPartition(ctx, p.ID, start, end, fn); err != nil {
			return err
		}
	}
	return nil
}

// topicMetadata returns the metadata of the sink's topic. A broker
// answers UNKNOWN_TOPIC_OR_PARTITION for a moment after the topic was
// created (its metadata cache lags), as it does for a topic that does not
// exist: errors the broker calls temporary are retried for up to
// replayRetryFor, so a topic that is missing for good fails after that.
func (s *Sink) topicMetadata(ctx context.Context, client *kgo.Client) (*kgo.MetadataResponse, error) {
	deadline := time.Now().Add(replayRetryFor)
	for {
		meta, err := client.Metadata(ctx, &kgo.MetadataRequest{Topics: []string{s.cfg.Topic}})
		switch {
		case err != nil:
			return nil, fmt.Errorf("kafka: metadata: %w", err)
		case len(meta.Topics) != 1:
			return nil, fmt.Errorf("kafka: topic %s not found", s.cfg.Topic)
		case meta.Topics[0].Error == nil:
			return meta, nil
		}
		err = fmt.Errorf("kafka: topic %s: %w", s.cfg.Topic, meta.Topics[0].Error)
		var kerr kgo.Error
		if !errors.As(err, &kerr) || !kerr.Temporary() || time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Sink) replayPartition(ctx context.Context, partition int, start, end int64, fn func(core.Delivered) error) error {
	r := kgo.NewReader(kgo.ReaderConfig{
		Brokers: s.cfg.Brokers, Topic: s.cfg.Topic, Partition: partition, Dialer: s.dialer,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(start); err != nil {
		return err
	}
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return fmt.Errorf("kafka: read partition %d: %w", partition, err)
		}
		h := make(map[string]string, len(m.Headers))
		for _, kv := range m.Headers {
			h[kv.Key] = string(kv.Value)
		}
		if err := fn(core.Delivered{Key: string(m.Key), ID: h[core.HeaderOpID], Payload: m.Value, Headers: h,
			Position: fmt.Sprintf("%d/%d", partition, m.Offset), Time: m.Time}); err != nil {
			return err
		}
		if m.Offset+1 >= end {
			return nil
		}
	}
}
