package pulsar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	pc "github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/redact"
)

func init() {
	core.RegisterSink("pulsar", driver{})
	core.RegisterSink("pulsar+ssl", driver{})
}

// driver opens sinks, and readers for `trustlog verify-sink`
// (core.ReplayOpener): a reader creates no producer, so it can run beside
// relays that hold the producer names of the same URL.
type driver struct{}

func (driver) OpenSink(ctx context.Context, url string) (core.Sink, error) {
	c, err := configFor(ctx, url)
	if err != nil {
		return nil, err
	}
	return New(c)
}

func (driver) OpenReplayer(ctx context.Context, url string) (core.ReplaySource, error) {
	c, err := configFor(ctx, url)
	if err != nil {
		return nil, err
	}
	return newReader(c)
}

// configFor parses url, logging where ctx says (core.ContextWithLogger).
func configFor(ctx context.Context, url string) (Config, error) {
	c, err := ParseURL(url)
	c.Logger = core.LoggerFrom(ctx)
	return c, err
}

// Defaults of Config.
const (
	BatchDelayDefault    = time.Millisecond
	BatchMessagesDefault = 1000
	OpTimeoutDefault     = 10 * time.Second
)

// Config configures a Pulsar sink. Open parses it from a URL; New takes it
// directly.
type Config struct {
	// ServiceURL is the broker, pulsar://host:6650 or pulsar+ssl://host:6651.
	ServiceURL string
	// Topic is the full topic name, persistent://tenant/namespace/topic.
	Topic string
	// ProducerName names the producer, stably across restarts (each relay
	// its own). With the namespace's deduplication on, the broker then
	// drops what a crashed relay had sent before it could record it (see
	// the package documentation). Empty: the broker names it, and a
	// restarted relay's re-sends are not deduplicated.
	ProducerName string
	// NoBatching sends one message per request (default: batching on). It
	// applies to the producer of extra workers' batches (outside the
	// ordered stream); the ordered stream never batches (see the package
	// documentation, "Deduplication after a crash").
	NoBatching bool
	// BatchDelay and BatchMessages bound a producer batch (defaults 1ms,
	// 1000; the engine hands over whole batches already).
	BatchDelay    time.Duration
	BatchMessages int
	// SendTimeout, if set, makes the client give up on a message outside
	// the ordered stream after this long. By default no producer gives up:
	// each keeps what it holds until the broker has it, and the engine's
	// publish timeout bounds how long a batch waits for its receipts; the
	// engine's retry of such a message then waits for the pending send
	// instead of sending a copy. A message the client gave up on may still
	// reach the broker, so with SendTimeout set its retry can duplicate it.
	// (The ordered stream's producer never gives up, whatever is set: one
	// it timed out while a later one got through would be a gap the
	// broker's deduplication could then hide.)
	SendTimeout time.Duration
	// OperationTimeout bounds lookups and producer creation (default 10s).
	OperationTimeout time.Duration
	// Token authenticates with a JWT (token authentication).
	Token string
	// TLSTrustCertsFile is the CA bundle for pulsar+ssl; TLSAllowInsecure
	// skips verification (tests only).
	TLSTrustCertsFile string
	TLSAllowInsecure  bool
	// Logger receives the client library's warnings and errors (default
	// slog.Default()); its info lines are dropped.
	Logger *slog.Logger
}

// validTopic reports whether topic is a full topic name: persistent:// or
// non-persistent://, then tenant/namespace/name, none of them empty.
func validTopic(topic string) bool {
	_, name, ok := strings.Cut(topic, "://")
	if !ok || !strings.HasPrefix(topic, "persistent://") && !strings.HasPrefix(topic, "non-persistent://") {
		return false
	}
	parts := strings.Split(name, "/")
	return len(parts) == 3 && parts[0] != "" && parts[1] != "" && parts[2] != ""
}

// ParseURL parses pulsar://host:6650/persistent://tenant/ns/topic (or
// pulsar+ssl://) with the parameters producer_name, batching (true,
// false), batch_delay, batch_messages, send_timeout, operation_timeout,
// token, tls_trust_certs and tls_allow_insecure. Unknown parameters are
// an error.
func ParseURL(raw string) (Config, error) {
	var c Config
	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: pulsar URL %q: %s", core.ErrInvalidURL, redact.URL(raw), fmt.Sprintf(format, args...))
	}
	scheme := core.Scheme(raw)
	if scheme != "pulsar" && scheme != "pulsar+ssl" {
		return bad("scheme must be pulsar or pulsar+ssl")
	}
	if redact.AmbiguousUserInfo(raw) {
		// Part of the password would be read as the topic: quote nothing
		// of it.
		return c, fmt.Errorf("%w: pulsar URL: %s", core.ErrInvalidURL, redact.Unparseable)
	}
	rest := strings.TrimPrefix(raw[len(scheme):], "://")
	if rest == raw[len(scheme):] {
		return bad("want %s://host:port/persistent://tenant/namespace/topic", scheme)
	}
	host, topicPart, ok := strings.Cut(rest, "/")
	if !ok || host == "" {
		return bad("want %s://host:port/persistent://tenant/namespace/topic", scheme)
	}
	topic, query, _ := strings.Cut(topicPart, "?")
	if !validTopic(topic) {
		return bad("topic %q is not persistent://tenant/namespace/topic (each part non-empty)", topic)
	}
	c.ServiceURL, c.Topic = scheme+"://"+host, topic
	q, err := url.ParseQuery(query)
	if err != nil {
		return bad("the query cannot be parsed (write %% as %%25 and ; as %%3B)")
	}
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "producer_name":
			c.ProducerName = v
		case "batching", "tls_allow_insecure":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return bad("%s must be true or false", k)
			}
			if k == "batching" {
				c.NoBatching = !b
			} else {
				c.TLSAllowInsecure = b
			}
		case "batch_delay", "send_timeout", "operation_timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return bad("%s must be a duration like 1ms", k)
			}
			switch k {
			case "batch_delay":
				c.BatchDelay = d
			case "send_timeout":
				c.SendTimeout = d
			default:
				c.OperationTimeout = d
			}
		case "batch_messages":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return bad("batch_messages must be a positive integer")
			}
			c.BatchMessages = n
		case "token":
			c.Token = v
		case "tls_trust_certs":
			c.TLSTrustCertsFile = v
		default:
			return bad("unknown parameter %q", k)
		}
	}
	return c, nil
}

// Sink publishes to one Pulsar topic with
// github.com/apache/pulsar-client-go. It is a core.SequencedSink.
type Sink struct {
	cfg       Config
	client    pc.Client
	main      pc.Producer // the ordered stream: sequence id = stream id
	unordered pc.Producer // everything else: sequence ids of its own
	mu        sync.Mutex
	closed    bool
	streaming bool // an engine holds the ordered stream

	// mainMu orders sends through main: ids must leave in increasing
	// order. startLasts are the broker's last sequences per partition when
	// the producer connected, startLast the highest of them (0 if none),
	// lastSent the highest id sent since.
	mainMu     sync.Mutex
	startLasts []int64
	startLast  int64
	lastSent   int64
	// The main producer never fails a message it was handed (no send
	// timeout, and a context that never ends), so the broker never holds
	// a later id without every earlier one: what deduplication drops is
	// always a true copy. mainQ is what the sender goroutine hands to it,
	// in order. sends are this process's sends of operations, through
	// either producer, by store seq (pending, and the last keepSends
	// delivered, oldest first in kept): a retry of one still pending or
	// delivered takes its outcome instead of sending a copy.
	mainQ       []*send
	mainCond    *sync.Cond
	log         *slog.Logger
	sends       map[int64]*send
	kept        []int64
	mainClosing bool
	senderDone  chan struct{}
	// sequenced: startLast is known, so the sink offers its ordered
	// stream.
	sequenced bool
}

// Open parses a pulsar URL (see ParseURL) and returns a sink, connected.
func Open(rawURL string) (*Sink, error) {
	c, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return New(c)
}

// New connects a sink for c: it creates the client and the producers.
func New(c Config) (*Sink, error) {
	if c.ServiceURL == "" || c.Topic == "" {
		return nil, &core.ConfigError{Field: "ServiceURL", Reason: "a service URL and a topic are required"}
	}
	if c.OperationTimeout == 0 {
		c.OperationTimeout = OpTimeoutDefault
	}
	if c.BatchDelay == 0 {
		c.BatchDelay = BatchDelayDefault
	}
	if c.BatchMessages == 0 {
		c.BatchMessages = BatchMessagesDefault
	}
	client, logger, err := newClient(c)
	if err != nil {
		return nil, err
	}
	s := &Sink{cfg: c, client: client, log: logger, sends: map[int64]*send{}, senderDone: make(chan struct{})}
	s.mainCond = sync.NewCond(&s.mainMu)
	producer := func(name string, sendTimeout time.Duration, noBatching bool) (pc.Producer, error) {
		return client.CreateProducer(pc.ProducerOptions{
			Topic: c.Topic, Name: name, SendTimeout: sendTimeout, DisableBatching: noBatching,
			BatchingMaxPublishDelay: c.BatchDelay, BatchingMaxMessages: uint(c.BatchMessages), MessageRouter: router,
		})
	}
	// The ordered stream (this producer, and a borrowed one) never batches,
	// whatever the URL says: pulsar-client-go sets no highest_sequence_id,
	// so a real broker judges a batch by its first sequence id alone. It
	// drops a batch that starts at or below the last id it holds whole
	// (new messages in it are lost), stores one that starts above it whole
	// (copies), and tells a reconnecting producer the first id of the last
	// batch, not the highest stored (RELIABILITY.md, "Real brokers").
	if s.main, err = producer(c.ProducerName, -1, true); err != nil {
		client.Close()
		return nil, fmt.Errorf("trustlog/pulsar: producer for %s: %s", c.Topic, redact.URL(err.Error()))
	}
	if lasts, ok := brokerLastSequences(s.main); ok {
		s.startLasts, s.sequenced = lasts, true
		s.startLast = max(slices.Max(lasts), 0)
	} else {
		logger.Warn("trustlog/pulsar: cannot read the broker's last sequence id from this pulsar-client-go; no ordered stream, so a crash's re-sends are not deduplicated",
			"topic", c.Topic)
	}
	s.lastSent = s.startLast
	unorderedName := ""
	if c.ProducerName != "" {
		unorderedName = c.ProducerName + "-unordered"
	}
	unorderedTimeout := c.SendTimeout
	if unorderedTimeout == 0 {
		unorderedTimeout = -1 // never give up (see SendTimeout)
	}
	if s.unordered, err = producer(unorderedName, unorderedTimeout, c.NoBatching); err != nil {
		s.main.Close()
		client.Close()
		return nil, fmt.Errorf("trustlog/pulsar: producer for %s: %s", c.Topic, redact.URL(err.Error()))
	}
	go s.sendMain()
	return s, nil
}

// newClient creates the pulsar-client-go client for c, its library logs
// going to c.Logger (warnings and errors only).
func newClient(c Config) (pc.Client, *slog.Logger, error) {
	logger := c.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if c.OperationTimeout == 0 {
		c.OperationTimeout = OpTimeoutDefault
	}
	opts := pc.ClientOptions{
		URL: c.ServiceURL, OperationTimeout: c.OperationTimeout, ConnectionTimeout: c.OperationTimeout,
		TLSTrustCertsFilePath: c.TLSTrustCertsFile, TLSAllowInsecureConnection: c.TLSAllowInsecure,
		Logger: plog.NewLoggerWithSlog(slog.New(warnOnly{logger.Handler()}).With("component", "pulsar-client")),
	}
	if c.Token != "" {
		opts.Authentication = pc.NewAuthenticationToken(c.Token)
	}
	client, err := pc.NewClient(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("trustlog/pulsar: client: %s", redact.URL(err.Error()))
	}
	return client, logger, nil
}

// Reader reads a topic back (core.Replayer) without producing: what
// `trustlog verify-sink` opens, so it can run beside relays that hold the
// producer names of the same URL.
type Reader struct {
	cfg    Config
	client pc.Client
}

// OpenReader parses a pulsar URL (see ParseURL) and returns a Reader; the
// URL's producer and batching parameters are ignored.
func OpenReader(rawURL string) (*Reader, error) {
	c, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return newReader(c)
}

func newReader(c Config) (*Reader, error) {
	client, _, err := newClient(c)
	if err != nil {
		return nil, err
	}
	return &Reader{cfg: c, client: client}, nil
}

// Replay implements core.Replayer (see Sink.Replay).
func (r *Reader) Replay(ctx context.Context, since time.Time, fn func(core.Delivered) error) error {
	return replay(ctx, r.client, r.cfg.Topic, since, fn)
}

// Close closes the client.
func (r *Reader) Close() error {
	r.client.Close()
	return nil
}

// OrderedStream implements core.SequencedSink: one engine at a time keeps
// the ordered stream, from the highest sequence id the broker holds from
// the main producer (what a restarted relay's producer learns when it
// connects) or sent since.
func (s *Sink) OrderedStream(context.Context) (int64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streaming || !s.sequenced {
		return 0, false, nil
	}
	s.streaming = true
	s.mainMu.Lock()
	defer s.mainMu.Unlock()
	return s.lastSent, true, nil
}

// Position implements core.PositionedSink: the broker's last sequences
// per partition when the main producer connected, comma-separated ("" if
// they could not be read).
func (s *Sink) Position() string {
	if !s.sequenced {
		return ""
	}
	parts := make([]string, len(s.startLasts))
	for i, l := range s.startLasts {
		parts[i] = strconv.FormatInt(l, 10)
	}
	return strings.Join(parts, ",")
}

// HeldAt implements core.PositionedSink: id is at or below the last
// sequence pos gives for key's partition. A pos for another number of
// partitions than the topic has now says nothing (keys moved).
func (s *Sink) HeldAt(pos, key string, id int64) bool {
	if pos == "" || !s.sequenced {
		return false
	}
	fields := strings.Split(pos, ",")
	if len(fields) != len(s.startLasts) {
		return false
	}
	last, err := strconv.ParseInt(fields[partitionOf(key, len(fields))], 10, 64)
	return err == nil && id <= last
}

// StreamName implements core.TakeoverSink: the main producer's name, if
// the configuration gives one and the broker's last sequence can be read.
func (s *Sink) StreamName() string {
	if !s.sequenced {
		return ""
	}
	return s.cfg.ProducerName
}

// Borrow implements core.TakeoverSink with a producer named name on the
// sink's topic, connected with the main producer's settings. The broker
// refuses a name while a producer holds it (ProducerBusy: the owner is
// alive, core.ErrStreamBusy); otherwise it tells the new producer the
// highest sequence id it holds from that name.
func (s *Sink) Borrow(ctx context.Context, name string) (core.BorrowedStream, error) {
	if name == "" || name == s.cfg.ProducerName {
		return nil, fmt.Errorf("trustlog/pulsar: cannot borrow the stream %q: it is this sink's own, or unnamed", name)
	}
	type result struct {
		p   pc.Producer
		err error
	}
	ch := make(chan result, 1)
	go func() {
		p, err := s.client.CreateProducer(pc.ProducerOptions{
			Topic: s.cfg.Topic, Name: name, SendTimeout: -1, DisableBatching: true, MessageRouter: router,
		})
		ch <- result{p, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		go func() { // the producer may still come: close it
			if r := <-ch; r.err == nil {
				r.p.Close()
			}
		}()
		return nil, core.Unavailable(fmt.Errorf("pulsar: borrow %s: %w", name, ctx.Err()))
	}
	if r.err != nil {
		if strings.Contains(r.err.Error(), "ProducerBusy") {
			return nil, fmt.Errorf("pulsar: borrow %s: %w", name, core.ErrStreamBusy)
		}
		return nil, classify(fmt.Errorf("pulsar: borrow %s: %s", name, redact.URL(r.err.Error())))
	}
	lasts, ok := brokerLastSequences(r.p)
	if !ok {
		r.p.Close()
		return nil, fmt.Errorf("pulsar: borrow %s: cannot read the broker's last sequence id", name)
	}
	return &borrowed{p: r.p, lasts: lasts}, nil
}

// borrowed is another node's ordered stream (core.BorrowedStream).
type borrowed struct {
	p     pc.Producer
	lasts []int64 // per partition
	once  sync.Once
}

// Holds implements core.BorrowedStream: id is at or below the last
// sequence of key's partition.
func (b *borrowed) Holds(key string, id int64) bool { return holds(b.lasts, key, id) }

// Release implements core.BorrowedStream: it closes the producer, which
// flushes it and frees the name at the broker.
func (b *borrowed) Release() { b.once.Do(func() { b.p.Close() }) }

// EndOrderedStream implements core.SequencedSink.
func (s *Sink) EndOrderedStream() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streaming = false
}

// Publish implements core.Sink with SendAsync, one result per message from
// its callback. Messages of the engine's ordered stream, and re-sends of
// them after a crash, go through the main producer with their stream id
// as sequence id, so a deduplicating broker drops a re-send of what it
// already holds; every other message goes through a second producer with
// sequence ids of its own, which the broker never mistakes for a
// duplicate. Properties carry the core.Message headers; the key is the
// DOID.
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
	var mu sync.Mutex
	pending := len(msgs)
	answered := make([]bool, len(msgs))
	done := make(chan struct{})
	finish := func(i int, err error) {
		mu.Lock()
		defer mu.Unlock()
		if pending == 0 || answered[i] {
			return // results already returned (ctx ended)
		}
		errs[i], answered[i] = classify(err), true
		if pending--; pending == 0 {
			close(done)
		}
	}
	var known []func()  // results of sends already finished, given after the lock
	var unordered []int // messages for the unordered producer, sent after the lock
	sendOf := make([]*send, len(msgs))
	s.mainMu.Lock()
	for i := range msgs {
		m := &msgs[i]
		isOp := m.Kind == core.KindOperation && m.Seq > 0
		if ms := s.sends[m.Seq]; ms != nil && isOp {
			// This process sent the operation and the broker has it, or
			// a producer still holds it: its outcome is this message's,
			// with no second copy on the topic.
			if ms.done {
				err := ms.err
				known = append(known, func() { finish(i, err) })
			} else {
				ms.waiters = append(ms.waiters, func(err error) { finish(i, err) })
			}
			continue
		}
		props := make(map[string]string, 8)
		for _, h := range m.Headers() {
			props[h[0]] = h[1]
		}
		pm := &pc.ProducerMessage{Payload: m.Payload, Key: m.Key, Properties: props}
		// Whatever the engines promise, an id goes out through main only
		// if the broker cannot mistake it for a duplicate of something
		// else: a re-send of what the broker held when main connected (at
		// or below the last sequence of the message's partition: the
		// broker keeps one per partition, and a re-send above it, behind a
		// higher id of another partition, would be dropped once a later
		// re-send raised it), or above every id main sent.
		id := int64(0)
		switch {
		case !s.sequenced || !isOp:
		case m.Redelivery && m.PrevStreamSeq > 0 && holds(s.startLasts, m.Key, m.PrevStreamSeq):
			id = m.PrevStreamSeq
		case m.Ordered && m.StreamSeq > s.lastSent:
			id = m.StreamSeq
		}
		if id > 0 {
			if s.mainClosing {
				known = append(known, func() { finish(i, core.Unavailable(core.ErrClosed)) })
				continue
			}
			pm.SequenceID = &id
			ms := &send{seq: m.Seq, pm: pm, waiters: []func(error){func(err error) { finish(i, err) }}}
			s.sends[m.Seq], s.mainQ = ms, append(s.mainQ, ms)
			s.lastSent = max(s.lastSent, id)
			continue
		}
		ms := &send{seq: m.Seq, pm: pm, waiters: []func(error){func(err error) { finish(i, err) }}}
		if isOp {
			s.sends[m.Seq] = ms
		}
		sendOf[i] = ms
		unordered = append(unordered, i)
	}
	s.mainCond.Signal()
	s.mainMu.Unlock()
	for _, f := range known {
		f()
	}
	for _, i := range unordered {
		ms := sendOf[i]
		s.unordered.SendAsync(ctx, ms.pm, func(_ pc.MessageID, _ *pc.ProducerMessage, err error) { s.finished(ms, err) })
	}
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		for i := range errs {
			if !answered[i] {
				errs[i] = core.Unavailable(fmt.Errorf("pulsar: no receipt: %w", ctx.Err()))
			}
		}
		pending = 0
		mu.Unlock()
	}
	mu.Lock()
	defer mu.Unlock()
	out := make([]error, len(errs))
	copy(out, errs)
	return out
}

// Sent implements core.SendingSink from this process's sends (pending,
// and the last keepSends delivered).
func (s *Sink) Sent(seq int64) (pending, delivered bool) {
	s.mainMu.Lock()
	defer s.mainMu.Unlock()
	ms := s.sends[seq]
	if ms == nil {
		return false, false
	}
	return !ms.done, ms.done && ms.err == nil
}

// keepSends is how many delivered sends a sink remembers, so that an
// engine's retry of one of them (its receipt came after the publish timed
// out) is answered without a second copy.
const keepSends = 1 << 16

// send is one message handed to a producer.
type send struct {
	seq     int64
	pm      *pc.ProducerMessage
	done    bool
	err     error
	waiters []func(error)
}

// sendMain hands main's queue to the producer, in order, with a context
// that never ends: pulsar-client-go fails a queued message whose context
// ended while sending later ones, which would leave a gap below ids the
// broker holds, and a re-send into that gap would be dropped as a copy.
func (s *Sink) sendMain() {
	defer close(s.senderDone)
	s.mainMu.Lock()
	for {
		for len(s.mainQ) == 0 && !s.mainClosing {
			s.mainCond.Wait()
		}
		if len(s.mainQ) == 0 {
			s.mainMu.Unlock()
			return
		}
		q := s.mainQ
		s.mainQ = nil
		s.mainMu.Unlock()
		for _, ms := range q {
			s.main.SendAsync(context.Background(), ms.pm, func(_ pc.MessageID, _ *pc.ProducerMessage, err error) {
				s.finished(ms, err)
			})
		}
		s.mainMu.Lock()
	}
}

// finished records a send's outcome (either producer) and tells whoever
// waits. A delivered operation is remembered (the last keepSends of them);
// a failed one is forgotten, so its retry is a new message.
func (s *Sink) finished(ms *send, err error) {
	if err != nil && ms.pm != nil && ms.pm.SequenceID != nil {
		// Against the main producer's promise (see mainQ): the broker may
		// hold the message, and the operation's retry goes out as a new
		// message, a possible copy.
		s.log.Warn("trustlog/pulsar: the ordered stream's producer gave up a message it was handed; its retry may be a copy",
			"op_id", ms.pm.Properties[core.HeaderOpID], "seq", ms.seq, "stream_id", *ms.pm.SequenceID, "err", err)
	}
	s.mainMu.Lock()
	ms.done, ms.err, ms.pm = true, err, nil
	waiters := ms.waiters
	ms.waiters = nil
	if s.sends[ms.seq] != ms {
		// not an operation's send (a checkpoint), or already forgotten
	} else if err != nil {
		delete(s.sends, ms.seq)
	} else {
		s.kept = append(s.kept, ms.seq)
		if len(s.kept) > keepSends {
			delete(s.sends, s.kept[0])
			s.kept = s.kept[1:]
		}
	}
	s.mainMu.Unlock()
	for _, w := range waiters {
		w(err)
	}
}

// classify marks conditions of the broker or the connection as
// core.Unavailable and refusals of the message itself as core.Permanent.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var pe *pc.Error
	if errors.As(err, &pe) {
		switch pe.Result() {
		case pc.MessageTooBig, pc.InvalidMessage:
			return core.Permanent(err)
		case pc.TimeoutError, pc.ProducerQueueIsFull, pc.ProducerClosed, pc.ConnectError, pc.TopicNotFound,
			pc.ProducerBlockedQuotaExceededException, pc.ClientMemoryBufferIsFull, pc.ServiceUnitNotReady,
			pc.TooManyLookupRequestException, pc.AuthenticationError, pc.AuthorizationError:
			return core.Unavailable(err)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return core.Unavailable(err)
	}
	return err
}

// Close flushes and closes the producers and the client; it is
// idempotent.
func (s *Sink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.mainMu.Lock()
	s.mainClosing = true
	s.mainCond.Signal()
	s.mainMu.Unlock()
	<-s.senderDone // everything queued is handed to main, which flushes on Close
	s.main.Close()
	s.unordered.Close()
	s.client.Close()
	return nil
}

// Replay implements core.Replayer with a non-durable consumer (every
// partition) from the earliest message, or from since, up to the end of
// the topic as of the call.
func (s *Sink) Replay(ctx context.Context, since time.Time, fn func(core.Delivered) error) error {
	return replay(ctx, s.client, s.cfg.Topic, since, fn)
}

func replay(ctx context.Context, client pc.Client, topic string, since time.Time, fn func(core.Delivered) error) error {
	parts, err := client.TopicPartitions(topic)
	if err != nil {
		return fmt.Errorf("pulsar: partitions of %s: %w", topic, err)
	}
	for _, part := range parts {
		if err := replayPartition(ctx, client, part, since, fn); err != nil {
			return err
		}
	}
	return nil
}

func replayPartition(ctx context.Context, client pc.Client, topic string, since time.Time, fn func(core.Delivered) error) error {
	r, err := client.CreateReader(pc.ReaderOptions{Topic: topic, StartMessageID: pc.EarliestMessageID()})
	if err != nil {
		return fmt.Errorf("pulsar: reader on %s: %w", topic, err)
	}
	defer r.Close()
	if !since.IsZero() {
		if err := r.SeekByTime(since); err != nil {
			return fmt.Errorf("pulsar: seek %s: %w", topic, err)
		}
	}
	for r.HasNext() {
		m, err := r.Next(ctx)
		if err != nil {
			return fmt.Errorf("pulsar: read %s: %w", topic, err)
		}
		props := m.Properties()
		h := make(map[string]string, len(props))
		for k, v := range props {
			h[k] = v
		}
		if err := fn(core.Delivered{Key: m.Key(), ID: h[core.HeaderOpID], Payload: m.Payload(), Headers: h,
			Position: m.ID().String(), Time: m.PublishTime()}); err != nil {
			return err
		}
	}
	return nil
}

// warnOnly passes on the client library's warnings and errors: its info
// lines (every connection, every producer) would drown a relay's log.
type warnOnly struct{ slog.Handler }

func (h warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}

func (h warnOnly) WithAttrs(as []slog.Attr) slog.Handler { return warnOnly{h.Handler.WithAttrs(as)} }

func (h warnOnly) WithGroup(name string) slog.Handler { return warnOnly{h.Handler.WithGroup(name)} }

var (
	_ core.TakeoverSink   = (*Sink)(nil)
	_ core.PositionedSink = (*Sink)(nil)
	_ core.SendingSink    = (*Sink)(nil)
)
