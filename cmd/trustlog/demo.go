package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/uptrace/bun"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/ledger"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

func (a *app) demoCmd() *cobra.Command {
	var n, perTx, rollbackEvery int
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Record, roll back and relay operations on SQLite and a memory sink (no setup)",
		Long: `A tour that needs no setup: a SQLite file in a temporary directory and an
in-memory sink. The demo records operations the way an application does, in
its own transactions, and rolls every --rollback-every-th transaction back. It
relays what committed, then shows that every committed operation was
published with a valid signature and that no rolled-back one was.`,
		Example: "  trustlog demo\n  trustlog demo -n 100000 --per-tx 100",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n < 1 || perTx < 1 || rollbackEvery < 0 {
				return usagef("-n and --per-tx must be positive, --rollback-every not negative")
			}
			return a.demo(cmd.Context(), n, perTx, rollbackEvery, keep)
		},
	}
	cmd.Flags().IntVarP(&n, "operations", "n", 1000, "operations to record")
	cmd.Flags().IntVar(&perTx, "per-tx", 10, "operations per application transaction")
	cmd.Flags().IntVar(&rollbackEvery, "rollback-every", 5, "roll back every Nth transaction (0: none)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the SQLite file and the log's public key, and print the trustlog serve command that shows them")
	return cmd
}

func (a *app) demo(ctx context.Context, n, perTx, rollbackEvery int, keep bool) error {
	dir, err := os.MkdirTemp("", "trustlog-demo-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	skey, vkey, err := core.GenerateEd25519("demo.trustlog.example/log")
	if err != nil {
		return err
	}
	signer, _ := core.NewEd25519Signer(skey)
	verifier, _ := core.NewEd25519Verifier(vkey)
	storeURL := "sqlite:" + filepath.Join(dir, "demo.db")
	c, err := core.Open(ctx, core.Config{Store: storeURL, Sink: "memory://", Signer: signer, Migrate: true, Logger: a.log,
		Engine: core.EngineConfig{Logger: a.log, BatchSize: 1000}})
	if err != nil {
		return err
	}
	defer c.Close()
	db := c.Store().(interface{ Bun() *bun.DB }).Bun()
	sink := c.Sink().(*memory.Sink)
	out := a.stdout
	fmt.Fprintf(out, "store  %s\nsink   memory://\nsigner %s\n\n", storeURL, verifier.KeyName())

	// The application: each transaction changes its own data and records
	// the operations in the same transaction.
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS demo_object (doid TEXT PRIMARY KEY, version INTEGER NOT NULL)`); err != nil {
		return err
	}
	var committed, rolledBack []*core.Operation
	pr := a.newProgress()
	start := time.Now()
	for tx, i := 0, 0; i < n; tx++ {
		ops := make([]*core.Operation, 0, perTx)
		for ; len(ops) < perTx && i < n; i++ {
			ops = append(ops, demoOp(i))
		}
		err := db.RunInTx(ctx, nil, func(ctx context.Context, btx bun.Tx) error {
			for _, op := range ops {
				if _, err := btx.ExecContext(ctx, `INSERT INTO demo_object (doid, version) VALUES (?, 1)
					ON CONFLICT (doid) DO UPDATE SET version = version + 1`, op.DOID); err != nil {
					return err
				}
			}
			if err := c.RecordTx(ctx, btx, ops...); err != nil {
				return err
			}
			if rollbackEvery > 0 && (tx+1)%rollbackEvery == 0 {
				return errRollback
			}
			return nil
		})
		switch {
		case err == errRollback:
			rolledBack = append(rolledBack, ops...)
		case err != nil:
			return err
		default:
			committed = append(committed, ops...)
		}
		pr.set("recorded", len(committed))
	}
	recordTime := time.Since(start)
	pr.done(map[string]int{"recorded": len(committed)})
	fmt.Fprintf(out, "recorded   %7d operations in %d-operation transactions: %s (%.0f ops/s)\n",
		len(committed), perTx, recordTime.Round(time.Millisecond), float64(len(committed))/recordTime.Seconds())
	fmt.Fprintf(out, "rolled back %6d operations (every %dth transaction)\n", len(rolledBack), rollbackEvery)

	e, err := c.Engine()
	if err != nil {
		return err
	}
	start = time.Now()
	if err := e.Start(ctx); err != nil {
		return err
	}
	pr = a.newProgress()
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for range t.C {
			n := sink.Len()
			pr.set("relayed", n)
			if n >= len(committed) || ctx.Err() != nil {
				return
			}
		}
	}()
	waitErr := sink.WaitFor(ctx, len(committed))
	relayTime := time.Since(start)
	<-watching
	pr.done(map[string]int{"relayed": sink.Len()})
	if err := e.Stop(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	if waitErr != nil {
		return waitErr
	}
	fmt.Fprintf(out, "relayed    %7d operations to the sink: %s (%.0f ops/s)\n",
		len(committed), relayTime.Round(time.Millisecond), float64(len(committed))/relayTime.Seconds())
	// Sign a checkpoint of the Merkle log, so that the kept store can be
	// served (trustlog serve) and its proofs checked.
	logSkey, logVkey, err := core.GenerateEd25519("demo.trustlog.example/log")
	if err != nil {
		return err
	}
	seq, err := ledger.NewSequencer(ledger.Config{Key: logSkey, Logger: a.log})
	if err != nil {
		return err
	}
	cp, err := seq.Checkpoint(ctx, c.Store().(ledger.Storage))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "signed a checkpoint of the Merkle log: %d operations\n\n", cp.Size)

	published := map[string]int{}
	bad := 0
	for _, m := range sink.Messages() {
		published[m.ID]++
		op, err := core.DecodeSealed(m.Payload)
		if err != nil || core.VerifyOperation(op, true, verifier) != nil {
			bad++
		}
	}
	missing := 0
	for _, op := range committed {
		if published[op.OpID] == 0 {
			missing++
		}
	}
	phantoms := 0
	for _, op := range rolledBack {
		if published[op.OpID] > 0 {
			phantoms++
		}
	}
	fmt.Fprintf(out, "committed and published:             %d of %d\n", len(committed)-missing, len(committed))
	fmt.Fprintf(out, "rolled back and never published:     %d of %d\n", len(rolledBack)-phantoms, len(rolledBack))
	fmt.Fprintf(out, "messages with a valid hash and signature: %d of %d\n\n", len(sink.Messages())-bad, len(sink.Messages()))
	fmt.Fprintln(out, "first published messages:")
	for i, m := range sink.Messages() {
		if i == 3 {
			break
		}
		fmt.Fprintf(out, "  op_id %s  doid %-22s op_hash %s…\n", m.ID, m.Key, m.OpHash[:16])
	}
	if len(rolledBack) > 0 {
		fmt.Fprintf(out, "a rolled-back operation, never published: op_id %s doid %s\n", rolledBack[0].OpID, rolledBack[0].DOID)
	}
	fmt.Fprintln(out)
	st, err := c.Store().Stats(ctx)
	if err != nil {
		return err
	}
	if err := a.printStats(st, false, nil); err != nil {
		return err
	}
	if keep {
		pub := filepath.Join(dir, "log.pub")
		if err := os.WriteFile(pub, []byte(logVkey+"\n"), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "\nkept %s and the log's public key %s\n", filepath.Join(dir, "demo.db"), pub)
		fmt.Fprintf(out, "open the console and the public log: trustlog --store %s serve --log-key %s\n", storeURL, pub)
	}
	if missing > 0 || phantoms > 0 || bad > 0 {
		return verifyError{fmt.Errorf("demo found %d missing, %d phantom and %d invalid messages", missing, phantoms, bad)}
	}
	return nil
}

var errRollback = fmt.Errorf("demo: roll this transaction back")

func demoOp(i int) *core.Operation {
	return &core.Operation{
		Source:           core.SourceDOIP,
		Type:             []string{core.OpCreate, core.OpUpdate, core.OpRetrieve}[i%3],
		DOID:             fmt.Sprintf("10.1000/demo/object-%03d", i%200),
		DOPrefix:         "10.1000",
		DORepository:     "demo",
		Actor:            fmt.Sprintf("user-%d", i%13),
		ProducerID:       "trustlog-demo",
		RequestBodyHash:  fmt.Sprintf("%064x", i*7919),
		ResponseBodyHash: fmt.Sprintf("%064x", i*104729),
		ClientIP:         "192.0.2.1",
	}
}
