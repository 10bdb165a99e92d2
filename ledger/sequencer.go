package ledger

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/backoff"
)

// LeaseName is the named lease the checkpointing Sequencer holds: one
// signer per store. (Positions are given by the relay engine's own
// sequencer, under core.SequencerLease.)
const LeaseName = "trustlog.checkpoints"

// Sequencer defaults.
const (
	BatchSizeDefault       = 4000
	IntervalDefault        = 200 * time.Millisecond
	CheckpointEveryDefault = time.Second
	LeaseTTLDefault        = 15 * time.Second
)

// Config configures a Sequencer.
type Config struct {
	// Key is the note-format Ed25519 private key that signs checkpoints
	// (`trustlog keygen`). Its name is the log's origin.
	Key string
	// BatchSize is the most operations sequenced per transaction (default
	// 4000: each transaction has a fixed cost of a few round trips and a
	// commit, and on PostgreSQL 4000 per transaction sequences about 60%
	// faster than 1000; see BENCHMARKS.md).
	BatchSize int
	// Interval is how long an idle sequencer waits before looking again
	// (default 200ms).
	Interval time.Duration
	// CheckpointEvery bounds how often a growing log is checkpointed
	// (default 1s); a log that stops growing is checkpointed at once.
	CheckpointEvery time.Duration
	// LeaseTTL is the leader lease's TTL (default 15s).
	LeaseTTL time.Duration
	// Logger receives the sequencer's logs (default slog.Default()).
	Logger *slog.Logger
	// Telemetry: the sequencer reports trustlog.ledger.tree_size (gauge)
	// and trustlog.ledger.sequenced (counter). Default: OpenTelemetry's
	// global providers.
	Telemetry core.Telemetry
}

// Sequencer signs checkpoints of the store's Merkle log, which the relay
// engine builds (every operation gets its position there whether or not
// a key is configured), and publishes them through the sink. Run it in
// every relay process (core.EngineConfig.Ledger): a named lease makes one
// of them the signer at a time. It implements core.LedgerRunner, and
// core.LedgerFinisher: a relay that stops cleanly signs what it sequenced.
type Sequencer struct {
	cfg       Config
	signer    note.Signer
	verifier  note.Verifier
	log       *slog.Logger
	sequenced metric.Int64Counter
	treeSize  atomic.Int64
	// last is the last checkpoint this sequencer signed: a store whose
	// checkpoints no longer reach it had them deleted or rolled back.
	lastMu sync.Mutex
	last   *Checkpoint
}

// NewSequencer returns a sequencer signing with cfg.Key.
func NewSequencer(cfg Config) (*Sequencer, error) {
	signer, verifier, err := ParseKey(cfg.Key)
	if err != nil {
		return nil, err
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = BatchSizeDefault
	}
	if cfg.Interval <= 0 {
		cfg.Interval = IntervalDefault
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = CheckpointEveryDefault
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = LeaseTTLDefault
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Sequencer{cfg: cfg, signer: signer, verifier: verifier, log: cfg.Logger}
	mp := cfg.Telemetry.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter("github.com/go-trustlog/trustlog/ledger")
	s.sequenced, _ = m.Int64Counter("trustlog.ledger.sequenced", metric.WithDescription("Operations appended to the Merkle log."))
	_, _ = m.Int64ObservableGauge("trustlog.ledger.tree_size", metric.WithDescription("Leaves in the Merkle log, as this sequencer last saw it."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(s.treeSize.Load())
			return nil
		}))
	return s, nil
}

// ParseKey parses a note-format Ed25519 private key and derives the
// verifier of its public half. The error never contains the key.
func ParseKey(skey string) (note.Signer, note.Verifier, error) {
	skey = strings.TrimSpace(skey)
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, nil, errors.New("ledger: not a note-format Ed25519 private key (PRIVATE+KEY+name+hash+key)")
	}
	// PRIVATE+KEY+name+hash+key: names have no "+", the base64 key may.
	parts := strings.SplitN(strings.TrimPrefix(skey, "PRIVATE+KEY+"), "+", 3)
	if len(parts) != 3 {
		return nil, nil, errors.New("ledger: not a note-format Ed25519 private key (PRIVATE+KEY+name+hash+key)")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, nil, errors.New("ledger: the private key is not an Ed25519 note key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(signer.Name(), pub)
	if err != nil {
		return nil, nil, err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, err
	}
	return signer, verifier, nil
}

// Origin is the log's identity: the signing key's name.
func (s *Sequencer) Origin() string { return s.signer.Name() }

// Run implements core.LedgerRunner: until ctx ends it tries to become the
// signer and, while it is, checkpoints the tree as it grows and publishes
// checkpoints through sink (if not nil).
func (s *Sequencer) Run(ctx context.Context, store core.Store, sink core.Sink) error {
	st, err := storageOf(store)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		lease, err := store.Locker().TryAcquire(ctx, LeaseName, s.cfg.LeaseTTL)
		switch {
		case errors.Is(err, core.ErrLeaseHeld):
			sleep(ctx, s.cfg.LeaseTTL/3, nil)
			continue
		case err != nil:
			if ctx.Err() == nil {
				s.log.Warn("trustlog/ledger: cannot take the sequencer lease", "err", err)
			}
			sleep(ctx, time.Second, nil)
			continue
		}
		s.lead(ctx, st, sink, lease)
		lease.Release(context.WithoutCancel(ctx))
	}
	return nil
}

func (s *Sequencer) lead(ctx context.Context, st Storage, sink core.Sink, lease core.Lease) {
	s.log.Info("trustlog/ledger: signing checkpoints", "origin", s.Origin())
	var lastCheckpoint time.Time
	// While rounds fail (the database or the sink is down), the next one
	// waits retry.Delay(failures+1): 100 ms, doubling, at most 5 s.
	retry := backoff.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second}
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-lease.Lost():
			s.log.Warn("trustlog/ledger: lost the sequencer lease")
			return
		default:
		}
		failed, grew := false, false
		if time.Since(lastCheckpoint) >= s.cfg.CheckpointEvery {
			cp, err := s.Checkpoint(ctx, st)
			switch {
			case err != nil && ctx.Err() == nil:
				failed = true
				s.log.Error("trustlog/ledger: checkpoint failed", "err", err, "retry_in", retry.Delay(failures+1))
			case cp != nil:
				lastCheckpoint, grew = time.Now(), true
			}
		}
		if sink != nil {
			if err := s.PublishCheckpoints(ctx, st, sink); err != nil && ctx.Err() == nil {
				failed = true
				s.log.Warn("trustlog/ledger: publishing checkpoints failed; will retry", "err", err, "retry_in", retry.Delay(failures+1))
			}
		}
		switch {
		case failed:
			// The database or the sink is down: wait instead of spinning
			// (and logging) as fast as the errors come back.
			failures++
			sleep(ctx, retry.Delay(failures), lease.Lost())
		case grew:
			failures = 0
			sleep(ctx, s.cfg.CheckpointEvery, lease.Lost())
		default:
			failures = 0
			sleep(ctx, s.cfg.Interval, lease.Lost())
		}
	}
}

var _ core.LedgerFinisher = (*Sequencer)(nil)

// Finish implements core.LedgerFinisher: when the engine stops cleanly,
// after its sequencer stopped, it signs a checkpoint of the tree as the
// engine left it and publishes the checkpoints sink does not have yet.
// If another relay holds the signer's lease, that one signs and Finish
// does nothing.
func (s *Sequencer) Finish(ctx context.Context, store core.Store, sink core.Sink) error {
	st, err := storageOf(store)
	if err != nil {
		return err
	}
	lease, err := store.Locker().TryAcquire(ctx, LeaseName, s.cfg.LeaseTTL)
	if errors.Is(err, core.ErrLeaseHeld) {
		return nil
	}
	if err != nil {
		return err
	}
	defer lease.Release(context.WithoutCancel(ctx))
	if _, err := s.Checkpoint(ctx, st); err != nil {
		return err
	}
	if sink != nil {
		return s.PublishCheckpoints(ctx, st, sink)
	}
	return nil
}

// Sequence gives every operation that has no position one (see
// core.SequenceAll) and returns how many. A relay's engine does this
// itself, always; Sequence is for tools and tests that have no engine.
func (s *Sequencer) Sequence(ctx context.Context, st Storage) (int, error) {
	n, err := core.SequenceAll(ctx, st, s.cfg.BatchSize)
	if n > 0 {
		s.sequenced.Add(ctx, int64(n))
		if size, err := st.TreeSize(ctx); err == nil {
			s.treeSize.Store(size)
		}
	}
	return n, err
}

// Checkpoint signs and stores a checkpoint of the current tree if it grew
// since the last one, and returns it (nil if there was nothing to sign).
// It never signs two inconsistent checkpoints: before signing it proves
// that the tree extends the last signed checkpoint (a consistency proof
// over the stored hashes, checked against the signed root), and it refuses
// a tree smaller than a signed one. It also refuses a store that no longer
// holds the last checkpoint this Sequencer signed (deleted, or the store
// rolled back): signing anew over those leaves would hide the deletion.
// (A new Sequencer, after a restart or a change of leader, cannot know;
// only a checkpoint held outside the store shows it then: see Audit.)
func (s *Sequencer) Checkpoint(ctx context.Context, st Storage) (*StoredCheckpoint, error) {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	size, err := st.TreeSize(ctx)
	if err != nil {
		return nil, err
	}
	prev, err := latest(ctx, st)
	if err != nil {
		return nil, err
	}
	if last := s.last; last != nil {
		switch {
		case prev == nil || prev.Size < last.Size:
			return nil, fmt.Errorf("%w: the checkpoint of size %d this sequencer signed is no longer in the store (deleted or rolled back); not signing over it", ErrTampered, last.Size)
		case prev.Size == last.Size && prev.Root != last.Root:
			return nil, fmt.Errorf("%w: the store's checkpoint of size %d is not the one this sequencer signed", ErrTampered, last.Size)
		}
	}
	if prev != nil && prev.Size > size {
		return nil, fmt.Errorf("%w: tree size %d is below the signed checkpoint %d: the tree was rolled back", ErrTampered, size, prev.Size)
	}
	if size == 0 || prev != nil && prev.Size == size {
		return nil, nil
	}
	r := newHashReader(ctx, st)
	root, err := tlog.TreeHash(size, r)
	if err != nil {
		return nil, err
	}
	if prev != nil {
		pc, err := OpenCheckpoint(prev.Note, s.verifier)
		if err != nil {
			return nil, fmt.Errorf("the last checkpoint does not verify with this key: %w", err)
		}
		if pc.Size != prev.Size || pc.Root != prev.Root {
			return nil, fmt.Errorf("%w: checkpoint %d's stored root differs from its signed one", ErrTampered, prev.Size)
		}
		proof, err := tlog.ProveTree(size, pc.Size, r)
		if err != nil {
			return nil, err
		}
		if err := tlog.CheckTree(proof, size, root, pc.Size, pc.Root); err != nil {
			return nil, fmt.Errorf("%w: tree %d does not extend the signed checkpoint %d: %v", ErrTampered, size, pc.Size, err)
		}
	}
	msg, err := SignCheckpoint(Checkpoint{Origin: s.Origin(), Size: size, Root: root}, s.signer)
	if err != nil {
		return nil, err
	}
	c := StoredCheckpoint{Size: size, Root: root, Note: msg, CreatedAt: time.Now()}
	if err := st.SaveCheckpoint(ctx, c); err != nil {
		return nil, err
	}
	s.last = &Checkpoint{Origin: s.Origin(), Size: size, Root: root}
	return &c, nil
}

// PublishCheckpoints sends stored checkpoints the sink does not have yet
// (a copy outside the database), oldest first.
func (s *Sequencer) PublishCheckpoints(ctx context.Context, st Storage, sink core.Sink) error {
	cs, err := st.Checkpoints(ctx, CheckpointQuery{Unpublished: true, Limit: 100})
	if err != nil || len(cs) == 0 {
		return err
	}
	msgs := make([]core.Message, len(cs))
	for i, c := range cs {
		msgs[i] = CheckpointMessage(s.Origin(), c)
	}
	for i, err := range sink.Publish(ctx, msgs) {
		if err != nil {
			return fmt.Errorf("checkpoint %d: %w", cs[i].Size, err)
		}
		if err := st.MarkCheckpointPublished(ctx, cs[i].Size); err != nil {
			return err
		}
	}
	return nil
}

// CheckpointMessage is the message that carries a signed checkpoint: kind
// checkpoint, keyed by the origin, its id "checkpoint/<size>".
func CheckpointMessage(origin string, c StoredCheckpoint) core.Message {
	return core.Message{Kind: core.KindCheckpoint, Key: origin, ID: fmt.Sprintf("checkpoint/%d", c.Size), Payload: c.Note}
}

func sleep(ctx context.Context, d time.Duration, lost <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-lost:
	case <-t.C:
	}
}
