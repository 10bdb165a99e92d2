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
	// MaxStreamsDefault bounds the streams a sink keeps a producer open
	// for (a relay owns a few partitions, ~16 at most).
	MaxStreamsDefault = 64
	// StreamIdleDefault is how long a stream's producer stays open
	// unused.
	StreamIdleDefault = 30 * time.Second
)

// Config configures a Pulsar sink. Open parses it from a URL; New takes it
// directly.
type Config struct {
	// ServiceURL is the broker, pulsar://host:6650 or pulsar+ssl://host:6651.
	ServiceURL string
	// Topic is the full topic name, persistent://tenant/namespace/topic.
	Topic string
	// ProducerName names the plain producer: the one for retries and
	// messages outside any stream (each stream's producer is named after
	// the stream). Empty, the default: the broker names it. If set, it
	// must differ from every other relay's and from every stream name:
	// the broker lets one connected producer hold a name.
	ProducerName string
	// NoBatching makes the plain producer send one message per request
	// (default: batching on). Stream producers never batch (see the
	// package documentation).
	NoBatching bool
	// BatchDelay and BatchMessages bound a plain producer's batch
	// (defaults 1ms, 1000; the engine hands over whole batches already).
	BatchDelay    time.Duration
	BatchMessages int
	// SendTimeout, if set, makes the plain producer give up on a message
	// after this long. By default no producer gives up: each keeps what it
	// holds until the broker has it, and the engine's publish timeout
	// bounds how long a batch waits; a retry of a message the plain
	// producer still holds then waits for that send instead of sending a
	// copy. A message the client gave up on may still reach the broker,
	// so with SendTimeout set its retry can duplicate it. Stream producers
	// never give up, whatever is set (see the package documentation).
	SendTimeout time.Duration
	// OperationTimeout bounds lookups and producer creation (default 10s),
	// and how long closing a producer waits for what it still holds.
	OperationTimeout time.Duration
	// MaxStreams bounds how many stream producers the sink keeps open
	// (default 64): opening one more closes the least recently used idle
	// one.
	MaxStreams int
	// StreamIdle is how long a stream's producer stays open unused
	// (default 30s). Closing it frees its name at the broker, so the
	// partition's next owner can open it: until then, that owner gets
	// core.Unavailable (ProducerBusy). CloseStream frees it at once.
	StreamIdle time.Duration
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
// max_streams, stream_idle, token, tls_trust_certs and
// tls_allow_insecure. Unknown parameters are an error.
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
		case "batch_delay", "send_timeout", "operation_timeout", "stream_idle":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return bad("%s must be a duration like 1ms", k)
			}
			switch k {
			case "batch_delay":
				c.BatchDelay = d
			case "send_timeout":
				c.SendTimeout = d
			case "stream_idle":
				c.StreamIdle = d
			default:
				c.OperationTimeout = d
			}
		case "max_streams":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return bad("max_streams must be a positive integer")
			}
			c.MaxStreams = n
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
// github.com/apache/pulsar-client-go: each stream through a producer
// named after it, with positions as sequence ids, and everything else
// through one plain producer (see the package documentation).
type Sink struct {
	cfg    Config
	client pc.Client
	log    *slog.Logger

	// mu guards the lanes, and the fields of each lane below its ready.
	mu     sync.Mutex
	closed bool
	// lanes are the open producers: streams by name, the plain one
	// under "".
	lanes map[string]*lane
	// byID are the plain lane's sends of operations by op_id, pending,
	// and the last keepIDs delivered (oldest first in kept): a retry of
	// one of them takes its outcome instead of sending a copy.
	byID map[string]*send
	kept []string

	stop chan struct{} // closed by Close: the idle reaper ends
	wg   sync.WaitGroup
}

// Open parses a pulsar URL (see ParseURL) and returns a sink, connected.
func Open(rawURL string) (*Sink, error) {
	c, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return New(c)
}

// New connects a sink for c: it creates the client and the plain
// producer, so a broker that cannot be reached or a topic that cannot be
// written fails here. Stream producers are created on first use.
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
	if c.MaxStreams == 0 {
		c.MaxStreams = MaxStreamsDefault
	}
	if c.StreamIdle == 0 {
		c.StreamIdle = StreamIdleDefault
	}
	client, logger, err := newClient(c)
	if err != nil {
		return nil, err
	}
	s := &Sink{cfg: c, client: client, log: logger, lanes: map[string]*lane{}, byID: map[string]*send{},
		stop: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 2*c.OperationTimeout)
	defer cancel()
	if _, err := s.laneFor(ctx, ""); err != nil {
		s.Close()
		return nil, fmt.Errorf("trustlog/pulsar: %w", err)
	}
	s.wg.Add(1)
	go s.reapIdle()
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
		Logger: plog.NewLoggerWithSlog(slog.New(warnOnly{Handler: logger.Handler()}).With("component", "pulsar-client")),
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

// Publish implements core.Sink with SendAsync, one result per message from
// its callback. An operation of a stream that is not a retry goes through
// the stream's producer with its position as sequence id, so a
// deduplicating broker drops a re-send of a position it holds; a
// re-send of a position this sink still has in flight waits for that
// send, and one the broker acknowledged lately is answered at once.
// Everything else goes through the plain producer, with sequence ids of
// its own; a retry of an operation the plain producer holds or delivered
// lately takes that send's outcome. A stream message whose position is
// not above the highest this sink handed to the stream's producer, and
// that is not one of those re-sends, is out of the stream's order (see
// core.Message.Position): it goes through the plain producer too, as a
// copy at worst, never a loss. Properties carry the core.Message headers;
// the key is the DOID, so messages of one key keep their order within a
// producer.
func (s *Sink) Publish(ctx context.Context, msgs []core.Message) []error {
	if len(msgs) == 0 {
		return []error{}
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return core.FailAll(len(msgs), core.Unavailable(core.ErrClosed))
	}
	r := newResults(len(msgs))
	var streams []string
	byStream := map[string][]int{}
	var plain []int
	for i := range msgs {
		if m := &msgs[i]; streamed(m) {
			if byStream[m.Stream] == nil {
				streams = append(streams, m.Stream)
			}
			byStream[m.Stream] = append(byStream[m.Stream], i)
		} else {
			plain = append(plain, i)
		}
	}
	for _, name := range streams {
		plain = append(plain, s.toStream(ctx, name, msgs, byStream[name], r)...)
	}
	if len(plain) > 0 {
		slices.Sort(plain) // keep the slice order within the plain producer
		s.toPlain(ctx, msgs, plain, r)
	}
	return r.wait(ctx)
}

// toStream hands msgs[idx] of stream to its lane and returns the indexes
// that are out of the stream's order, for the plain lane.
func (s *Sink) toStream(ctx context.Context, stream string, msgs []core.Message, idx []int, r *results) (outOfOrder []int) {
	l, err := s.laneFor(ctx, stream)
	if err != nil {
		for _, i := range idx {
			r.finish(i, err)
		}
		return nil
	}
	s.mu.Lock()
	if l.dead { // closed between laneFor and here
		s.mu.Unlock()
		err := core.Unavailable(fmt.Errorf("pulsar: producer %s closed: %w", l.label(), core.ErrClosed))
		for _, i := range idx {
			r.finish(i, err)
		}
		return nil
	}
	l.lastUse = time.Now()
	var acked []int
	for _, i := range idx {
		m := &msgs[i]
		pos := m.Position
		switch {
		case l.pending[pos] != nil:
			l.pending[pos].waiters = append(l.pending[pos].waiters, r.waiter(i))
		case l.acked[pos]:
			acked = append(acked, i)
		case pos > l.highest:
			sd := &send{lane: l, pos: pos, pm: producerMessage(m, &pos), waiters: []func(error){r.waiter(i)}}
			l.pending[pos], l.highest = sd, pos
			l.queue = append(l.queue, sd)
			l.inflight++
		default:
			outOfOrder = append(outOfOrder, i)
		}
	}
	warn := len(outOfOrder) > 0 && !l.warned
	l.warned = l.warned || warn
	l.wake.Signal()
	s.mu.Unlock()
	if warn {
		s.log.Warn("trustlog/pulsar: a stream's first send below a position already sent; sent outside the stream, where the broker cannot drop it (a copy at worst)",
			"stream", stream, "position", msgs[outOfOrder[0]].Position, "op_id", msgs[outOfOrder[0]].ID)
	}
	for _, i := range acked {
		r.finish(i, nil)
	}
	return outOfOrder
}

// toPlain hands msgs[idx] to the plain lane.
func (s *Sink) toPlain(ctx context.Context, msgs []core.Message, idx []int, r *results) {
	l, err := s.laneFor(ctx, "")
	if err != nil {
		for _, i := range idx {
			r.finish(i, err)
		}
		return
	}
	s.mu.Lock()
	if l.dead {
		s.mu.Unlock()
		err := core.Unavailable(fmt.Errorf("pulsar: producer %s closed: %w", l.label(), core.ErrClosed))
		for _, i := range idx {
			r.finish(i, err)
		}
		return
	}
	var delivered []int
	for _, i := range idx {
		m := &msgs[i]
		opID := ""
		if m.Kind == core.KindOperation && m.ID != "" {
			opID = m.ID
			if sd := s.byID[opID]; sd != nil {
				// This process sent the operation and the broker has it,
				// or the producer still holds it: its outcome is this
				// message's, with no second copy on the topic.
				if sd.done {
					delivered = append(delivered, i)
				} else {
					sd.waiters = append(sd.waiters, r.waiter(i))
				}
				continue
			}
		}
		sd := &send{lane: l, pos: -1, opID: opID, pm: producerMessage(m, nil), waiters: []func(error){r.waiter(i)}}
		if opID != "" {
			s.byID[opID] = sd
		}
		l.queue = append(l.queue, sd)
		l.inflight++
	}
	l.wake.Signal()
	s.mu.Unlock()
	for _, i := range delivered {
		r.finish(i, nil)
	}
}

// producerMessage is m for pulsar-client-go, with sequence id seq (nil:
// the producer numbers it).
func producerMessage(m *core.Message, seq *int64) *pc.ProducerMessage {
	hs := m.Headers()
	props := make(map[string]string, len(hs))
	for _, h := range hs {
		props[h[0]] = h[1]
	}
	return &pc.ProducerMessage{Payload: m.Payload, Key: m.Key, Properties: props, SequenceID: seq}
}

// results collects one Publish call's outcomes.
type results struct {
	mu       sync.Mutex
	errs     []error
	answered []bool
	pending  int
	done     chan struct{}
}

func newResults(n int) *results {
	return &results{errs: make([]error, n), answered: make([]bool, n), pending: n, done: make(chan struct{})}
}

// finish records message i's outcome, unless it has one or the call
// returned.
func (r *results) finish(i int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == 0 || r.answered[i] {
		return
	}
	r.errs[i], r.answered[i] = err, true
	if r.pending--; r.pending == 0 {
		close(r.done)
	}
}

// waiter returns finish for message i.
func (r *results) waiter(i int) func(error) { return func(err error) { r.finish(i, err) } }

// wait returns the outcomes once every message has one, or when ctx ends
// (those without one are then core.Unavailable: their sends go on, and a
// re-send waits for them).
func (r *results) wait(ctx context.Context) []error {
	select {
	case <-r.done:
	case <-ctx.Done():
		r.mu.Lock()
		for i := range r.errs {
			if !r.answered[i] {
				r.errs[i] = core.Unavailable(fmt.Errorf("pulsar: no receipt: %w", ctx.Err()))
			}
		}
		r.pending = 0
		r.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

// classify marks conditions of the broker or the connection as
// core.Unavailable and refusals of the message itself as core.Permanent;
// an error already marked either way is kept.
func classify(err error) error {
	if err == nil || core.IsUnavailable(err) || core.IsPermanent(err) {
		return err
	}
	var pe *pc.Error
	if errors.As(err, &pe) {
		switch pe.Result() {
		case pc.MessageTooBig, pc.InvalidMessage:
			return core.Permanent(err)
		case pc.TimeoutError, pc.ProducerQueueIsFull, pc.ProducerClosed, pc.ConnectError, pc.TopicNotFound,
			pc.ProducerBlockedQuotaExceededException, pc.ClientMemoryBufferIsFull, pc.ServiceUnitNotReady,
			pc.TooManyLookupRequestException, pc.AuthenticationError, pc.AuthorizationError,
			pc.TopicTerminated, pc.ProducerFenced, pc.LookupError, pc.NotConnectedError:
			return core.Unavailable(err)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return core.Unavailable(err)
	}
	return err
}

// Close delivers what the producers hold (for at most the operation
// timeout), closes them and the client; it is idempotent.
func (s *Sink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	var open []*lane
	for _, l := range s.lanes {
		s.dropLocked(l)
		open = append(open, l)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, l := range open {
		wg.Go(func() { s.closeLane(l, true) })
	}
	wg.Wait()
	s.wg.Wait()
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
// lines (every connection, every producer) would drown a relay's log. It
// also drops the library's errors about a producer the broker refused as
// ProducerBusy: the sink returns that as core.Unavailable, the engine
// logs it, and the partition tries again until the previous owner lets
// go, which would log two more lines per try.
type warnOnly struct {
	slog.Handler
	// busy: an attribute (the library adds the error with With) says
	// ProducerBusy.
	busy bool
}

func (h warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}

func (h warnOnly) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "Failed to create producer") {
		busy := h.busy
		r.Attrs(func(a slog.Attr) bool {
			busy = busy || strings.Contains(a.Value.String(), "ProducerBusy")
			return !busy
		})
		if busy {
			return nil
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h warnOnly) WithAttrs(as []slog.Attr) slog.Handler {
	busy := h.busy
	for _, a := range as {
		busy = busy || strings.Contains(a.Value.String(), "ProducerBusy")
	}
	return warnOnly{Handler: h.Handler.WithAttrs(as), busy: busy}
}

func (h warnOnly) WithGroup(name string) slog.Handler {
	return warnOnly{Handler: h.Handler.WithGroup(name), busy: h.busy}
}
