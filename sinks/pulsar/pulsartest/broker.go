package pulsartest

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Broker is a running test broker on 127.0.0.1. It is safe for concurrent use.
// Its zero value is not usable: create one with New or Start.
type Broker struct {
	addr string // fixed at New; Restart listens on it again

	life sync.Mutex     // serialises New/Stop/Restart/Close
	wg   sync.WaitGroup // accept loop and connection goroutines

	mu          sync.Mutex // guards everything below
	cfg         config
	ln          net.Listener
	running     bool
	closed      bool
	conns       map[*conn]struct{}
	topics      map[string]*topic
	partitioned map[string]int
	dedup       bool
	delay       time.Duration
	withhold    bool
	reject      bool
	refuse      bool
	nextLedger  uint64
	nextName    uint64
	nextConn    uint64
}

// config is what the Options set.
type config struct {
	dedup          bool
	partitioned    map[string]int
	maxMessageSize int
	logf           func(format string, args ...any)
}

// Option configures a Broker created by New or Start.
type Option func(*config)

// WithDedup switches broker-side message deduplication on or off (default
// on). See SetDedup.
func WithDedup(on bool) Option {
	return func(c *config) { c.dedup = on }
}

// WithPartitionedTopic creates the partitioned topic name with n partitions
// when the broker starts, as CreatePartitionedTopic does.
func WithPartitionedTopic(name string, n int) Option {
	return func(c *config) { c.partitioned[name] = n }
}

// WithMaxMessageSize sets the max_message_size the broker advertises in
// CONNECTED (default 5 MiB, Pulsar's default). Larger frames are refused.
func WithMaxMessageSize(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxMessageSize = n
		}
	}
}

// WithLogf makes the broker log what it does (connections, errors, refused
// commands) with logf, for example testing.T.Logf. By default it is silent.
func WithLogf(logf func(format string, args ...any)) Option {
	return func(c *config) { c.logf = logf }
}

// New starts a broker listening on 127.0.0.1 on a free port.
func New(opts ...Option) (*Broker, error) {
	cfg := config{dedup: true, partitioned: map[string]int{}, maxMessageSize: defaultMaxMessageSize}
	for _, o := range opts {
		o(&cfg)
	}
	b := &Broker{
		cfg:         cfg,
		conns:       map[*conn]struct{}{},
		topics:      map[string]*topic{},
		partitioned: map[string]int{},
		dedup:       cfg.dedup,
		nextLedger:  1,
	}
	for name, n := range cfg.partitioned {
		if err := b.createPartitioned(name, n); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("pulsartest: listen: %w", err)
	}
	b.addr = ln.Addr().String()
	b.serve(ln)
	return b, nil
}

// Start is New for tests: it fails t when the broker cannot start and closes
// the broker when the test ends (t.Cleanup).
func Start(t testing.TB, opts ...Option) *Broker {
	t.Helper()
	b, err := New(opts...)
	if err != nil {
		t.Fatalf("pulsartest: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// URL returns the service URL clients use: "pulsar://127.0.0.1:PORT".
func (b *Broker) URL() string { return "pulsar://" + b.addr }

// Addr returns the broker's listening address, "127.0.0.1:PORT".
func (b *Broker) Addr() string { return b.addr }

// serve starts the accept loop on ln. b.life must be held (or b be new).
func (b *Broker) serve(ln net.Listener) {
	b.mu.Lock()
	b.ln = ln
	b.running = true
	b.mu.Unlock()
	b.wg.Add(1)
	go b.acceptLoop(ln)
}

func (b *Broker) acceptLoop(ln net.Listener) {
	defer b.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			b.mu.Lock()
			current := b.running && b.ln == ln
			b.mu.Unlock()
			if !current {
				return
			}
			time.Sleep(5 * time.Millisecond) // e.g. too many open files
			continue
		}
		b.mu.Lock()
		if !b.running || b.ln != ln {
			b.mu.Unlock()
			_ = nc.Close()
			continue
		}
		b.nextConn++
		c := newConn(b, nc, b.nextConn)
		b.conns[c] = struct{}{}
		b.wg.Add(2)
		b.mu.Unlock()
		b.logf("connection %d from %s", c.id, nc.RemoteAddr())
		go c.readLoop()
		go c.writeLoop()
	}
}

// Stop shuts the broker down like a crash of the broker process: it closes
// the listener and every connection and waits for the connection goroutines,
// but keeps everything stored (topics, messages, subscription cursors and
// deduplication state) so that Restart can bring it back.
func (b *Broker) Stop() {
	b.life.Lock()
	defer b.life.Unlock()
	b.stop()
}

func (b *Broker) stop() {
	b.mu.Lock()
	ln := b.ln
	b.running = false
	b.ln = nil
	for c := range b.conns {
		b.closeConnLocked(c, "broker stopped")
	}
	b.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	b.wg.Wait()
}

// Restart brings a stopped broker back on the same address with the same
// data (if it is running, it is stopped first: a broker restart). Clients
// reconnect by themselves. It fails after Close, or when the port has been
// taken in the meantime.
func (b *Broker) Restart() error {
	b.life.Lock()
	defer b.life.Unlock()
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return errors.New("pulsartest: broker is closed")
	}
	b.stop()
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		return fmt.Errorf("pulsartest: listen again on %s: %w", b.addr, err)
	}
	b.serve(ln)
	return nil
}

// Close stops the broker for good and drops its data. It is idempotent and
// always returns nil; it waits for every goroutine of the broker to end.
func (b *Broker) Close() error {
	b.life.Lock()
	defer b.life.Unlock()
	b.stop()
	b.mu.Lock()
	b.closed = true
	b.topics = map[string]*topic{}
	b.mu.Unlock()
	return nil
}

// CreatePartitionedTopic makes name a partitioned topic with n partitions,
// name-partition-0 .. name-partition-(n-1); PARTITIONED_METADATA answers n
// for it. Short names ("t", "tenant/ns/t") are expanded like the client does.
// It panics when the name is not a valid persistent topic name or n < 1.
func (b *Broker) CreatePartitionedTopic(name string, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.createPartitioned(name, n); err != nil {
		panic(err)
	}
}

func (b *Broker) createPartitioned(name string, n int) error {
	full, err := normalizeTopic(name)
	if err != nil {
		return err
	}
	if n < 1 {
		return fmt.Errorf("pulsartest: partitioned topic %s needs at least one partition, got %d", full, n)
	}
	b.partitioned[full] = n
	for i := 0; i < n; i++ {
		b.topicLocked(partitionName(full, i), true)
	}
	return nil
}

// SetDedup switches broker-side deduplication on or off. With it on, a SEND
// whose sequence id is not above the highest one already stored for that
// producer name on that topic is not stored again, but it is still answered
// with a SEND_RECEIPT (with message id -1:-1, like Pulsar). With it off,
// every send is stored and PRODUCER_SUCCESS reports last_sequence_id -1.
func (b *Broker) SetDedup(on bool) {
	b.mu.Lock()
	b.dedup = on
	b.mu.Unlock()
}

// DropConnections closes every client connection now, as a network failure
// would. Clients reconnect, producers resend what has not been acknowledged.
func (b *Broker) DropConnections() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.conns {
		b.closeConnLocked(c, "DropConnections")
	}
}

// DelayReceipts makes the broker wait d before sending each SEND_RECEIPT
// (0: no delay). Messages are stored at once; receipts keep their order,
// and other traffic on the same connection queues behind a delayed receipt.
func (b *Broker) DelayReceipts(d time.Duration) {
	b.mu.Lock()
	b.delay = max(d, 0)
	b.mu.Unlock()
}

// WithholdReceipts, while on, makes the broker store what it is sent but
// never acknowledge it: no SEND_RECEIPT is ever sent for those sends, as if
// the broker crashed right after persisting them. Producers see send timeouts.
func (b *Broker) WithholdReceipts(on bool) {
	b.mu.Lock()
	b.withhold = on
	b.mu.Unlock()
}

// RejectSends, while on, answers every SEND with a SEND_ERROR
// (PersistenceError) and stores nothing. pulsar-client-go reacts to that
// error by closing the connection, reconnecting and resending, so its Send
// fails only when the producer's SendTimeout expires.
func (b *Broker) RejectSends(on bool) {
	b.mu.Lock()
	b.reject = on
	b.mu.Unlock()
}

// RefuseProducers, while on, answers every PRODUCER request with an ERROR
// (MetadataError), as a broker that is starting or whose metadata store is
// unreachable does: the client's CreateProducer fails with a plain error
// that carries no pulsar.Result. Producers already connected go on.
func (b *Broker) RefuseProducers(on bool) {
	b.mu.Lock()
	b.refuse = on
	b.mu.Unlock()
}

// Message is one message the broker stored, as Messages returns it.
type Message struct {
	Topic       string            // topic (partition) name, persistent://tenant/ns/topic[-partition-N]
	Producer    string            // producer name from the message metadata
	SequenceID  uint64            // producer sequence id
	Key         string            // partition key, "" when none
	Properties  map[string]string // nil when the message had none
	Payload     []byte            // message body
	PublishTime time.Time         // publish time set by the producer (millisecond precision)
	LedgerID    uint64            // message id: ledger (one per topic or partition)
	EntryID     uint64            // message id: entry (one entry per stored SEND)
	Partition   int32             // message id: partition index, -1 for a non-partitioned topic (pulsar-client-go says 0)
	BatchIndex  int32             // message id: index in the batch, -1 for a message sent without batching (pulsar-client-go says 0)
}

// Messages returns what the broker stored on topic, in order, as copies. For
// a partitioned topic's name it returns every partition, partition 0 first.
// Short names are expanded like the client does. Unknown topics give nil.
func (b *Broker) Messages(topicName string) []Message {
	full, err := normalizeTopic(topicName)
	if err != nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	names := []string{full}
	if n, ok := b.partitioned[full]; ok {
		names = names[:0]
		for i := 0; i < n; i++ {
			names = append(names, partitionName(full, i))
		}
	}
	var out []Message
	for _, name := range names {
		t := b.topics[name]
		if t == nil {
			continue
		}
		for _, e := range t.entries {
			for _, m := range e.msgs {
				m.Payload = slices.Clone(m.Payload)
				m.Properties = maps.Clone(m.Properties)
				out = append(out, m)
			}
		}
	}
	return out
}

// Topics returns the names of the topics (partitions) the broker holds, sorted.
func (b *Broker) Topics() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	names := slices.Collect(maps.Keys(b.topics))
	sort.Strings(names)
	return names
}

func (b *Broker) logf(format string, args ...any) {
	if b.cfg.logf != nil {
		b.cfg.logf("pulsartest: "+format, args...)
	}
}

// normalizeTopic expands a topic name the way pulsar-client-go does and
// checks that it is a persistent topic.
func normalizeTopic(name string) (string, error) {
	if !strings.Contains(name, "://") {
		parts := strings.Split(name, "/")
		switch len(parts) {
		case 1:
			name = "persistent://public/default/" + name
		case 3, 4:
			name = "persistent://" + name
		default:
			return "", fmt.Errorf("pulsartest: invalid topic name %q", name)
		}
	}
	domain, rest, _ := strings.Cut(name, "://")
	if domain != "persistent" {
		return "", fmt.Errorf("pulsartest: only persistent topics are supported, not %q", name)
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", fmt.Errorf("pulsartest: invalid topic name %q", name)
	}
	return name, nil
}

func partitionName(base string, i int) string {
	return fmt.Sprintf("%s-partition-%d", base, i)
}
