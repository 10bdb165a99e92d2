// Cluster: several relay processes share one database. The parent records
// operations, starts -workers copies of itself as relays (each its own
// process with its own node name, as separate pods would be), waits until
// every operation is published, stops them with SIGTERM and reads the
// topic back: every operation arrives, and each object's operations in
// the order they were recorded (strict order, held across processes by
// the database's row locks, not by any coordination between the relays).
//
//	go run ./examples/cluster -workers 3 \
//	  -store 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	  -sink  kafka://127.0.0.1:9092/cluster-example
//
// A store URL left empty uses a SQLite file in a temporary directory (its
// processes share the file through SQLite's locking).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/go-trustlog/trustlog/core"
	_ "github.com/go-trustlog/trustlog/drivers/mysql"    // registers mysql://
	_ "github.com/go-trustlog/trustlog/drivers/postgres" // registers postgres://
	_ "github.com/go-trustlog/trustlog/drivers/sqlite"   // registers sqlite:
	_ "github.com/go-trustlog/trustlog/sinks/kafka"      // registers kafka://
	_ "github.com/go-trustlog/trustlog/sinks/pulsar"     // registers pulsar://
)

func main() {
	store := flag.String("store", "", "store URL shared by every relay (default: a SQLite file in a temporary directory)")
	sink := flag.String("sink", "", "sink URL (kafka:// or pulsar://; a memory sink cannot be shared by processes)")
	workers := flag.Int("workers", 3, "relay processes to start")
	ops := flag.Int("ops", 600, "operations to record")
	worker := flag.String("worker", "", "run as the relay named this (the parent starts these)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if *worker != "" {
		err = relay(ctx, *store, *sink, *worker)
	} else {
		err = run(ctx, *store, *sink, *workers, *ops, os.Stdout)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// engineConfig is every relay's: strict per-object order, small batches so
// the relays interleave.
var engineConfig = core.EngineConfig{StrictOrder: true, BatchSize: 50, Workers: 2}

// relay is a worker process: a relay until SIGTERM.
func relay(ctx context.Context, store, sink, node string) error {
	cfg := engineConfig
	cfg.Node = node
	client, err := core.Open(ctx, core.Config{Store: store, Sink: sink, Engine: cfg})
	if err != nil {
		return err
	}
	defer client.Close()
	engine, err := client.Engine()
	if err != nil {
		return err
	}
	if err := engine.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	if err := engine.Stop(context.Background()); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%s published %d\n", node, engine.Stats().Published)
	return nil
}

// run is the parent.
func run(ctx context.Context, store, sink string, workers, n int, out io.Writer) error {
	if sink == "" {
		return fmt.Errorf("give -sink: a kafka:// or pulsar:// URL every relay process can reach")
	}
	if store == "" {
		dir, err := os.MkdirTemp("", "cluster-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		store = "sqlite:" + filepath.Join(dir, "cluster.db")
	}
	client, err := core.Open(ctx, core.Config{Store: store, Sink: sink, Migrate: true, Engine: engineConfig})
	if err != nil {
		return err
	}
	defer client.Close()

	// The application records; objects get several operations each.
	const objects = 20
	want := map[string][]string{}
	for i := 0; i < n; i += 100 {
		var batch []*core.Operation
		for j := i; j < min(n, i+100); j++ {
			doid := fmt.Sprintf("10.1000/cluster/object-%02d", j%objects)
			batch = append(batch, &core.Operation{Source: core.SourceDOIP, Type: core.OpUpdate, DOID: doid,
				DOPrefix: "10.1000", DORepository: "cluster", Actor: "alice", ProducerID: "cluster-example",
				RequestBodyHash: fmt.Sprintf("%064x", j)})
		}
		if err := client.Record(ctx, batch...); err != nil {
			return err
		}
		for _, op := range batch {
			want[op.DOID] = append(want[op.DOID], op.OpID)
		}
	}

	// The relays: this program again, once per worker.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			p.Process.Kill()
			p.Wait()
		}
	}()
	for w := 1; w <= workers; w++ {
		cmd := exec.CommandContext(ctx, self, "-worker", "relay-"+strconv.Itoa(w), "-store", store, "-sink", sink)
		cmd.Env = append(os.Environ(), workerEnv+"=1")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		procs = append(procs, cmd)
	}

	// Wait until the database says everything is published.
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := client.Store().Stats(ctx)
		if err != nil {
			return err
		}
		if st.Counts[core.StatePublished] == int64(n) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d published after a minute", st.Counts[core.StatePublished], n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, p := range procs {
		p.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range procs {
		if err := p.Wait(); err != nil {
			return fmt.Errorf("relay %s: %w", p.Args[2], err)
		}
	}
	procs = nil

	// Read the topic back: the first arrival of each op_id, per object.
	have := map[string][]string{}
	seen := map[string]bool{}
	dups := 0
	if err := client.Sink().(core.Replayer).Replay(ctx, time.Time{}, func(d core.Delivered) error {
		if seen[d.ID] {
			dups++
			return nil
		}
		seen[d.ID] = true
		have[d.Key] = append(have[d.Key], d.ID)
		return nil
	}); err != nil {
		return err
	}
	inOrder := 0
	for doid, ids := range want {
		if fmt.Sprint(have[doid]) == fmt.Sprint(ids) {
			inOrder++
		}
	}
	fmt.Fprintf(out, "relays: %d\npublished: %d of %d\nduplicates: %d\nobjects in recorded order: %d of %d\n",
		workers, len(seen), n, dups, inOrder, len(want))
	return nil
}

// workerEnv marks a relay started by the parent (its test binary runs
// main when it sees it; see main_test.go).
const workerEnv = "CLUSTER_EXAMPLE_WORKER"
