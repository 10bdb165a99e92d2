package benchkit

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/postgres"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
	"github.com/go-trustlog/trustlog/ledger"
)

// The workloads below are what `trustlog bench` runs; each measures
// trustlog against a baseline in the same run and returns both.

// WriteResult compares RecordTx with a plain INSERT of the same rows.
type WriteResult struct {
	// PerTx is the operations per transaction; Txs the transactions of
	// each kind.
	PerTx, Txs int
	// Record is the time of the RecordTx transactions, Plain that of the
	// plain-INSERT transactions.
	Record, Plain time.Duration
}

// RecordRate and PlainRate are operations per second.
func (r WriteResult) RecordRate() float64 { return float64(r.PerTx*r.Txs) / r.Record.Seconds() }

// PlainRate is the plain INSERT's operations per second.
func (r WriteResult) PlainRate() float64 { return float64(r.PerTx*r.Txs) / r.Plain.Seconds() }

// Overhead is RecordTx's time over the plain INSERT's (1.2 = 20 % slower).
func (r WriteResult) Overhead() float64 { return r.Record.Seconds() / r.Plain.Seconds() }

// WriteTxs is how many transactions of perTx operations the write
// workload commits when asked for txs: all of them for single-operation
// transactions, half as many of 100.
func WriteTxs(perTx, txs int) int {
	if perTx > 1 {
		return max(1, txs/2)
	}
	return txs
}

// WritePath commits txs transactions of perTx operations through RecordTx
// and, interleaved with them, txs transactions inserting the same rows
// (same values, new op_ids) with one plain multi-row INSERT: what an
// application writing its own outbox row would do (an id, the bound
// values, the statement), without validation, hashing, a wake-up or, on
// PostgreSQL, the queue row (it writes a copy of the table, whose
// trigger would queue its rows).
func WritePath(ctx context.Context, st core.Store, perTx, txs int) (WriteResult, error) {
	h, ok := st.(sqlHandle)
	if !ok {
		return WriteResult{}, fmt.Errorf("benchkit: %T is not an SQL store", st)
	}
	c, err := core.NewClient(st, nil, core.Config{Strategy: core.StoreOnly})
	if err != nil {
		return WriteResult{}, err
	}
	db := h.DB()
	plainTable := h.Names().Op
	if h.Names().Position != "" {
		// PostgreSQL queues each operation for the sequencer (RecordTx's
		// INSERT itself, the table's trigger any other insert): part of
		// recording, not of an application's own insert. The plain
		// INSERT writes a copy of the table (columns, indexes, identity)
		// without the trigger.
		plainTable = strings.TrimSuffix(h.Names().Op, `"`) + `_plain"`
		if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+plainTable+" (LIKE "+h.Names().Op+" INCLUDING ALL)"); err != nil {
			return WriteResult{}, fmt.Errorf("benchkit: the plain insert's table: %w", err)
		}
	}
	plainSQL := plainInsert(st, plainTable, perTx)
	res := WriteResult{PerTx: perTx, Txs: txs}
	for i := 0; i < txs; i++ {
		ops := make([]*core.Operation, perTx)
		for j := range ops {
			ops[j] = Op(i*perTx+j, 5000)
		}
		start := time.Now()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return res, err
		}
		if err := c.RecordTx(ctx, tx, ops...); err != nil {
			tx.Rollback()
			return res, err
		}
		if err := tx.Commit(); err != nil {
			return res, err
		}
		res.Record += time.Since(start)

		// The plain INSERT's time includes what any application pays to
		// write its row: an id and the bound values.
		start = time.Now()
		args := make([]any, 0, perTx*19)
		now := time.Now().UTC()
		for _, op := range ops {
			args = append(args, uuid.Must(uuid.NewV7()).String(), string(op.Source), op.Type, op.DOID, op.DOPrefix,
				op.DORepository, op.Actor, op.ProducerID, string(op.HashAlg), op.RequestBodyHash, op.ResponseBodyHash,
				op.ClientIP, op.ServerIP, timeArg(st, op.CreatedAt), op.OpHash, op.Signer, hex.EncodeToString(op.Sign),
				timeArg(st, now), core.PartitionOf(op.DOID, core.PartitionsDefault))
		}
		tx, err = db.BeginTx(ctx, nil)
		if err != nil {
			return res, err
		}
		if _, err := tx.ExecContext(ctx, plainSQL, args...); err != nil {
			tx.Rollback()
			return res, fmt.Errorf("plain insert: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return res, err
		}
		res.Plain += time.Since(start)
	}
	return res, nil
}

// plainInsert is the multi-row INSERT of the same columns trustlog writes.
func plainInsert(st core.Store, table string, rows int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + table + " (" + sqlstore.InsertColumns + ") VALUES ")
	cols := strings.Count(sqlstore.InsertColumns, ",") + 1
	p := 1
	_, dollar := st.(*postgres.Store)
	for r := 0; r < rows; r++ {
		if r > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := 0; c < cols; c++ {
			if c > 0 {
				b.WriteByte(',')
			}
			if dollar {
				b.WriteString("$" + strconv.Itoa(p))
			} else {
				b.WriteByte('?')
			}
			p++
		}
		b.WriteByte(')')
	}
	return b.String()
}

// timeArg binds a time as the store's schema keeps it (SQLite: Unix
// microseconds).
func timeArg(st core.Store, t time.Time) any {
	if _, ok := st.(*sqlite.Store); ok {
		return t.UnixMicro()
	}
	return t.UTC()
}

// DrainCompare drains n pending operations with engines engines at batch
// size batch to the memory sink and, on an identically seeded scratch
// place of the same database, with as many bare read+advance loops
// (RawFor, on a backlog sequenced untimed). The bare loops run first.
func DrainCompare(ctx context.Context, base string, n, engines, batch int) (raw, eng DrainResult, err error) {
	err = withSeeded(ctx, base, n, engines, func(_ *Scratch, stores []core.Store) error {
		if err := sequence(stores[0]); err != nil {
			return err
		}
		loops := make([]RawLoop, len(stores))
		for i, s := range stores {
			if loops[i], err = RawFor(s, i, len(stores)); err != nil {
				return err
			}
		}
		raw, err = RawDrain(ctx, loops, batch)
		if err == nil && raw.N != n {
			err = fmt.Errorf("benchkit: the bare loop drained %d of %d", raw.N, n)
		}
		return err
	})
	if err != nil {
		return raw, eng, err
	}
	err = withSeeded(ctx, base, n, engines, func(_ *Scratch, stores []core.Store) error {
		eng, err = EngineDrain(ctx, stores, nil, n, batch)
		return err
	})
	return raw, eng, err
}

// SinkDrain drains n pending operations with one engine at batch 1000 to
// sink (nil: the memory sink).
func SinkDrain(ctx context.Context, base string, n int, sink core.Sink) (DrainResult, error) {
	var r DrainResult
	err := withSeeded(ctx, base, n, 1, func(_ *Scratch, stores []core.Store) (err error) {
		r, err = EngineDrain(ctx, stores, sink, n, 1000)
		return err
	})
	return r, err
}

// BacklogResult is one drain of a backlog by a relay process.
type BacklogResult struct {
	DrainResult
	// PeakRSS is the relay process's peak resident set (bytes; 0 where the
	// system does not report it).
	PeakRSS int64
	// Raw is the bare read+advance loop draining the same backlog: how
	// much of a change with size is the database's own.
	Raw DrainResult
}

// RelayProcess returns the command that runs a relay process draining
// storeURL to sinkURL until it receives SIGTERM (`trustlog relay`).
type RelayProcess func(ctx context.Context, storeURL, sinkURL string) *exec.Cmd

// Backlog seeds a backlog of n operations, then drains it with one relay
// process at batch 1000 to an in-process Kafka-protocol broker, and
// returns the drain rate (from the first published operation to the last,
// so the process's start does not count) and the process's peak resident
// set: the relay's memory alone, not the seeding's or the broker's. Then
// one bare loop drains an identical backlog.
func Backlog(ctx context.Context, base string, n int, relay RelayProcess) (BacklogResult, error) {
	r, err := backlogRelay(ctx, base, n, relay)
	if err != nil {
		return r, err
	}
	err = withSeeded(ctx, base, n, 1, func(_ *Scratch, stores []core.Store) error {
		if err := sequence(stores[0]); err != nil {
			return err
		}
		loop, err := RawFor(stores[0], 0, 1)
		if err != nil {
			return err
		}
		r.Raw, err = RawDrain(ctx, []RawLoop{loop}, 1000)
		return err
	})
	return r, err
}

func backlogRelay(ctx context.Context, base string, n int, relay RelayProcess) (BacklogResult, error) {
	var r BacklogResult
	err := withSeeded(ctx, base, n, 1, func(sc *Scratch, stores []core.Store) error {
		const topic = "trustlog-backlog"
		kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic))
		if err != nil {
			return err
		}
		defer kc.Close()
		var stderr bytes.Buffer
		cmd := relay(ctx, sc.URL, "kafka://"+kc.ListenAddrs()[0]+"/"+topic)
		cmd.Stderr = &stderr
		started := time.Now()
		if err := cmd.Start(); err != nil {
			return err
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		fail := func(err error) error {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("%w; relay stderr: %s", err, lastLines(stderr.String(), 5))
		}
		// Count what the broker holds (its partitions' end offsets): asking
		// the database instead would load it while it is being measured.
		kcl := &kafkago.Client{Addr: kafkago.TCP(kc.ListenAddrs()[0]), Timeout: 5 * time.Second}
		req := &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{
			topic: {kafkago.LastOffsetOf(0), kafkago.LastOffsetOf(1), kafkago.LastOffsetOf(2)}}}
		var first time.Time
		var atFirst int64
		for {
			res, err := kcl.ListOffsets(ctx, req)
			if err != nil {
				return fail(err)
			}
			var done int64
			for _, p := range res.Topics[topic] {
				if p.Error != nil {
					return fail(p.Error)
				}
				done += p.LastOffset
			}
			if first.IsZero() && done > 0 {
				first, atFirst = time.Now(), done
			}
			if done >= int64(n) {
				r.DrainResult = DrainResult{N: n - int(atFirst), Elapsed: time.Since(first)}
				break
			}
			select {
			case err := <-exited:
				return fmt.Errorf("benchkit: the relay exited (%v) after publishing %d of %d; stderr: %s", err, done, n, lastLines(stderr.String(), 5))
			case <-ctx.Done():
				return fail(ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
		r.PeakRSS = peakRSS(cmd.Process.Pid)
		cmd.Process.Signal(syscall.SIGTERM)
		if err := <-exited; err != nil {
			return fmt.Errorf("benchkit: the relay did not stop cleanly: %v; stderr: %s", err, lastLines(stderr.String(), 5))
		}
		if r.N == 0 {
			// Everything went out between two looks: count from the
			// process's start instead (a backlog this small measures
			// start-up more than draining).
			r.DrainResult = DrainResult{N: n, Elapsed: time.Since(started)}
		}
		return nil
	})
	return r, err
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// LedgerRate sequences n stored operations into the Merkle log and signs a
// checkpoint; it returns the leaves per second.
func LedgerRate(ctx context.Context, base string, n int) (DrainResult, error) {
	var r DrainResult
	err := withSeeded(ctx, base, n, 1, func(_ *Scratch, stores []core.Store) error {
		st, ok := stores[0].(ledger.Storage)
		if !ok {
			return fmt.Errorf("benchkit: %T keeps no Merkle log", stores[0])
		}
		skey, _, err := core.GenerateEd25519("bench.trustlog.example/log")
		if err != nil {
			return err
		}
		seq, err := ledger.NewSequencer(ledger.Config{Key: skey})
		if err != nil {
			return err
		}
		start := time.Now()
		m, err := seq.Sequence(ctx, st)
		if err != nil {
			return err
		}
		if m != n {
			return fmt.Errorf("benchkit: sequenced %d of %d", m, n)
		}
		if _, err := seq.Checkpoint(ctx, st); err != nil {
			return err
		}
		r = DrainResult{N: n, Elapsed: time.Since(start)}
		return nil
	})
	return r, err
}

// withSeeded runs fn on w handles of a fresh scratch place holding n
// pending operations, and drops the place afterwards.
func withSeeded(ctx context.Context, base string, n, w int, fn func(*Scratch, []core.Store) error) error {
	sc, err := NewScratch(base)
	if err != nil {
		return err
	}
	defer sc.Drop(context.WithoutCancel(ctx))
	var stores []core.Store
	defer func() {
		for _, s := range stores {
			s.Close()
		}
	}()
	for range w {
		s, err := sc.Open(ctx)
		if err != nil {
			return err
		}
		stores = append(stores, s)
	}
	if err := Seed(ctx, stores[0], n, 2000); err != nil {
		return err
	}
	return fn(sc, stores)
}
