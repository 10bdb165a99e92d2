// Package chaos proves the guarantees the way production breaks, with the
// built trustlog binary: whole relay processes killed with SIGKILL and
// restarted, the database restarted, the broker gone for 30 seconds, while
// writers commit and roll back operations. TestChaos runs only with
// TRUSTLOG_CHAOS=1 (CI sets it): it starts private database servers and
// takes minutes. The crash-duplicate test runs always.
package chaos

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/internal/testenv"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	_ "github.com/go-trustlog/trustlog/drivers/mysql"
	_ "github.com/go-trustlog/trustlog/drivers/postgres"
	"github.com/go-trustlog/trustlog/internal/benchkit"
	"github.com/go-trustlog/trustlog/internal/dbserver"
	"github.com/go-trustlog/trustlog/ledger"
)

// binary is the trustlog command, built once for the whole run.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "trustlog-chaos-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "trustlog")
	out, err := exec.Command("go", "build", "-o", binary, "github.com/go-trustlog/trustlog/cmd/trustlog").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: build trustlog: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// settings of a run, from the environment.
type settings struct {
	ops       int           // TRUSTLOG_CHAOS_OPS (100000)
	objects   int           // DOIDs (3000)
	relays    int           // relay processes (4, each with --workers 2)
	batch     int           // relay --batch (200)
	killEvery time.Duration // ~2s
	outage    time.Duration // TRUSTLOG_CHAOS_OUTAGE (30s)
}

func load() settings {
	return settings{
		ops: benchkit.EnvInt("TRUSTLOG_CHAOS_OPS", 100_000), objects: 3000, relays: 4, batch: 200,
		killEvery: 2 * time.Second,
		outage:    time.Duration(benchkit.EnvInt("TRUSTLOG_CHAOS_OUTAGE_SECONDS", 30)) * time.Second,
	}
}

// broker is a message broker the test can take down and read back.
type broker interface {
	// sinkURL is the sink URL relay node uses.
	sinkURL(node string) string
	stop()
	restart()
	// read returns everything on the topic, through the broker's consumer.
	read(ctx context.Context) ([]core.Delivered, error)
	// maxDuplicates is what the run may duplicate, given the kills.
	maxDuplicates(batch, kills, relays int) int
}

// Result is one run's figures, as RELIABILITY.md reports them.
type Result struct {
	Database    string        `json:"database"`
	Broker      string        `json:"broker"`
	Operations  int           `json:"operations"`
	Committed   int           `json:"committed"`
	RolledBack  int           `json:"rolled_back"`
	Kills       int           `json:"kills"`
	DBRestarts  int           `json:"db_restarts"`
	Outage      time.Duration `json:"broker_outage"`
	Lost        int           `json:"lost"`
	Phantom     int           `json:"phantom"`
	Duplicates  int           `json:"duplicates"`
	OrderBroken int           `json:"order_broken"`
	DrainAfter  time.Duration `json:"drain_after_recovery"`
	Total       time.Duration `json:"total"`
	Ledger      int64         `json:"ledger_leaves"`
}

func TestChaos(t *testing.T) {
	if os.Getenv("TRUSTLOG_CHAOS") != "1" {
		t.Skip("set TRUSTLOG_CHAOS=1 to run the chaos test (it starts private database servers, kills relay processes and takes minutes)")
	}
	for _, db := range []string{"postgres", "mariadb"} {
		for _, b := range brokers {
			t.Run(db+"/"+b.name, func(t *testing.T) {
				require.NoError(t, dbserver.Available(db))
				run(t, load(), db, b.name, b.start(t))
			})
		}
	}
}

// replayAll reads everything on a sink's topic through its consumer.
func replayAll(ctx context.Context, r core.Replayer) ([]core.Delivered, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var out []core.Delivered
	err := r.Replay(ctx, time.Time{}, func(d core.Delivered) error { out = append(out, d); return nil })
	return out, err
}

// brokers are the brokers the chaos test runs against.
var brokers []struct {
	name  string
	start func(t *testing.T) broker
}

type relay struct {
	node    string
	args    []string
	log     *os.File
	cmd     *exec.Cmd
	done    chan error
	running bool
}

func (r *relay) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(binary, r.args...)
	cmd.Stdout, cmd.Stderr = r.log, r.log
	// Killed with the test process: a test killed hard (a CI timeout)
	// leaves no relay retrying against its private servers.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	r.cmd, r.done, r.running = cmd, make(chan error, 1), true
	go func() { r.done <- cmd.Wait() }()
}

func (r *relay) kill() {
	if !r.running {
		return
	}
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
	r.running = false
}

// term stops the relay with SIGTERM and returns its exit code (-1 if it
// did not exit within the limit).
func (r *relay) term(limit time.Duration) int {
	r.cmd.Process.Signal(syscall.SIGTERM)
	defer func() { r.running = false }()
	select {
	case <-r.done:
		return r.cmd.ProcessState.ExitCode()
	case <-time.After(limit):
		r.cmd.Process.Kill()
		<-r.done
		return -1
	}
}

func run(t *testing.T, s settings, dbKind, brokerName string, b broker) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	began := time.Now()
	res := Result{Database: dbKind, Broker: brokerName, Operations: s.ops, Outage: s.outage}
	srv := dbserver.Start(t, dbKind)
	store, err := core.OpenStore(ctx, srv.URL)
	require.NoError(t, err)
	defer store.Close()
	require.NoError(t, store.Migrate(ctx))
	db := store.(interface{ Bun() *bun.DB }).Bun()

	dir := t.TempDir()
	if keep := os.Getenv("TRUSTLOG_CHAOS_KEEP_LOGS"); keep != "" {
		t.Cleanup(func() { // the relays' logs, for a failed run's post-mortem
			dst := filepath.Join(keep, dbKind+"-"+brokerName)
			os.MkdirAll(dst, 0o755)
			logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
			for _, l := range logs {
				if b, err := os.ReadFile(l); err == nil {
					os.WriteFile(filepath.Join(dst, filepath.Base(l)), b, 0o644)
				}
			}
		})
	}
	lskey, lvkey, err := core.GenerateEd25519("chaos.trustlog.test/log")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "log.key"), []byte(lskey), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "log.pub"), []byte(lvkey), 0o644))
	signKey, _, err := core.GenerateEd25519("chaos.trustlog.test/signer")
	require.NoError(t, err)
	signer, err := core.NewEd25519Signer(signKey)
	require.NoError(t, err)

	relays := make([]*relay, s.relays)
	for i := range relays {
		node := fmt.Sprintf("relay-%d", i)
		f, err := os.Create(filepath.Join(dir, node+".log"))
		require.NoError(t, err)
		defer f.Close()
		relays[i] = &relay{node: node, log: f, args: []string{
			"--log-format", "json", "--log-level", cmp.Or(os.Getenv("TRUSTLOG_CHAOS_LOG_LEVEL"), "debug"),
			"--store", srv.URL, "--sink", b.sinkURL(node), "relay",
			"--node", node, "--workers", "2", "--strict", "--batch", strconv.Itoa(s.batch), "--lease", "4s", "--publish-timeout", "2s",
			"--poll", "50ms", "--backoff", "50ms", "--backoff-max", "2s", "--max-attempts", "1000",
			"--shutdown-timeout", "5s", "--ledger-key-file", filepath.Join(dir, "log.key"),
		}}
		relays[i].start(t)
	}
	defer func() {
		for _, r := range relays {
			r.kill()
		}
	}()

	// The application's own objects: a writer locks the rows of the objects
	// it changes, as an application updating them does, so two transactions
	// on one object commit in the order they record. (Without it, two
	// concurrent transactions on one DOID have no order the relay could
	// follow: the later record may commit first, and is published before
	// the earlier one exists.)
	_, err = db.ExecContext(ctx, "CREATE TABLE chaos_object (doid VARCHAR(100) PRIMARY KEY, version BIGINT NOT NULL)")
	require.NoError(t, err)
	for i := 0; i < s.objects; i += 500 {
		var objs []chaosObject
		for j := i; j < min(i+500, s.objects); j++ {
			objs = append(objs, chaosObject{DOID: objectDOID(j)})
		}
		_, err = db.NewInsert().Model(&objs).Exec(ctx)
		require.NoError(t, err)
	}

	// Writers: transactions of 10 operations over s.objects DOIDs, every
	// 10th rolled back. A commit that fails may still have committed; such
	// operations are looked up once the database is back.
	client, err := core.NewClient(store, nil, core.Config{Strategy: core.StoreOnly, Signer: signer})
	require.NoError(t, err)
	var mu sync.Mutex
	var committed, rolled, unsure []string
	var wg sync.WaitGroup
	const writers, perTx = 4, 10
	next := make(chan int, 64)
	go func() {
		for i := 0; i < s.ops; i += perTx {
			next <- i
		}
		close(next)
	}()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for base := range next {
				ops := make([]*core.Operation, perTx)
				doids := map[string]bool{}
				for j := range ops {
					ops[j] = conformance.NewOp(fmt.Sprintf("chaos-%d", rand.IntN(s.objects)), base+j)
					doids[ops[j].DOID] = true
				}
				locked := slices.Sorted(maps.Keys(doids))
				rollback := (base/perTx)%10 == 9
				var commitErr error
				for attempt := 0; ; attempt++ {
					tx, err := db.BeginTx(ctx, nil)
					if err == nil {
						_, err = tx.NewUpdate().Model((*chaosObject)(nil)).Set("version = version + 1").
							Where("doid IN (?)", bun.List(locked)).Exec(ctx)
						if err == nil {
							err = client.RecordTx(ctx, tx, ops...)
						}
						if err == nil {
							if rollback {
								tx.Rollback() // a failed rollback commits nothing either
								break
							}
							commitErr = tx.Commit()
							break
						}
						tx.Rollback()
					}
					for _, op := range ops { // a fresh attempt records new operations
						op.OpID, op.OpHash, op.Sign, op.Signer = "", "", nil, ""
					}
					if ctx.Err() != nil {
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
				mu.Lock()
				for _, op := range ops {
					switch {
					case rollback:
						rolled = append(rolled, op.OpID)
					case commitErr != nil:
						unsure = append(unsure, op.OpID)
					default:
						committed = append(committed, op.OpID)
					}
				}
				mu.Unlock()
			}
		}()
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()

	// Chaos: a relay killed and restarted every ~2s, the database restarted
	// once, the broker gone for s.outage once.
	outageStart := 12 * time.Second
	stopAt := outageStart + s.outage + 5*time.Second
	dbRestarted, brokerDown, brokerBack := false, false, false
	tick := time.NewTicker(s.killEvery)
	for start := time.Now(); ; {
		select {
		case <-ctx.Done():
			t.Fatal("chaos phase timed out")
		case <-tick.C:
		}
		el := time.Since(start)
		r := relays[rand.IntN(len(relays))]
		r.kill()
		res.Kills++
		r.start(t)
		if !dbRestarted && el > 6*time.Second {
			require.NoError(t, srv.Restart())
			dbRestarted = true
			res.DBRestarts++
		}
		if !brokerDown && el > outageStart {
			b.stop()
			brokerDown = true
		}
		if brokerDown && !brokerBack && el > outageStart+s.outage {
			b.restart()
			brokerBack = true
		}
		if brokerBack && el > stopAt {
			select {
			case <-writersDone:
				tick.Stop()
				goto settle
			default:
			}
		}
	}
settle:
	recovered := time.Now()
	// Everything committed reaches published; nothing goes dead.
	// A database server that died (a crash, not the restart) fails the
	// run at once, with the end of its log, rather than at the deadline.
	var st core.Stats
	var dbDead error
	require.Eventually(t, func() bool {
		if dbDead = srv.Alive(); dbDead != nil {
			return true
		}
		st, err = store.Stats(ctx)
		return err == nil && st.Counts[core.StatePending]+st.Counts[core.StateRetrying] == 0
	}, testenv.Patience(t), 200*time.Millisecond, "the relays drain everything after the chaos")
	require.NoError(t, dbDead, "the database server died during the run")
	res.DrainAfter = time.Since(recovered)
	assert.Zero(t, st.Counts[core.StateDead], "nothing went dead")

	// The signer (the relay holding the ledger's lease, once a killed
	// holder's lease ran out) checkpoints the whole tree. A relay that
	// stops cleanly signs too (ledger.Sequencer.Finish), but not while a
	// killed relay's lease still names it the signer.
	ls := store.(ledger.Storage)
	require.Eventually(t, func() bool {
		cs, err := ls.Checkpoints(ctx, ledger.CheckpointQuery{Latest: true})
		if err != nil || len(cs) == 0 {
			return false
		}
		n, err := ls.TreeSize(ctx)
		return err == nil && cs[0].Size == n
	}, testenv.Patience(t), 200*time.Millisecond, "a checkpoint covers the tree")

	// SIGTERM: every relay exits 0 in time and gives its partitions back.
	for _, r := range relays {
		assert.Equal(t, 0, r.term(15*time.Second), "%s exits cleanly on SIGTERM", r.node)
	}
	st, err = store.Stats(ctx)
	require.NoError(t, err)
	for _, p := range st.Partitions {
		assert.Empty(t, p.Owner, "partition %d owned after every relay stopped", p.Part)
	}

	for _, id := range unsure {
		if _, err := store.Get(ctx, id); err == nil {
			committed = append(committed, id)
		} else {
			rolled = append(rolled, id)
		}
	}
	res.Committed, res.RolledBack = len(committed), len(rolled)
	assert.Equal(t, int64(len(committed)), st.Counts[core.StatePublished], "every committed operation is published")

	// What a consumer reads.
	got, err := b.read(ctx)
	require.NoError(t, err)
	count := map[string]int{}
	var firsts []core.Delivered
	for _, d := range got {
		if d.Headers[core.HeaderKind] == string(core.KindCheckpoint) {
			continue
		}
		if count[d.ID] == 0 {
			firsts = append(firsts, d)
		}
		count[d.ID]++
	}
	var lostIDs []string
	for _, id := range committed {
		if count[id] == 0 {
			res.Lost++
			lostIDs = append(lostIDs, id)
		}
	}
	for _, id := range lostIDs[:min(len(lostIDs), 5)] {
		r, err := store.Get(ctx, id)
		t.Logf("lost: %s seq %d position %d partition %d state %v attempts %d (err %v)",
			id, r.Seq, r.LeafIndex, r.Part, r.State, r.Attempts, err)
	}
	relayLines(t, dir, lostIDs)
	if e, ok := b.(interface{ explainLost(*testing.T, []string) }); ok && len(lostIDs) > 0 {
		e.explainLost(t, lostIDs)
	}
	for _, id := range rolled {
		if count[id] > 0 {
			res.Phantom++
		}
	}
	for _, n := range count {
		res.Duplicates += n - 1
	}
	var dupIDs []string
	for _, id := range committed {
		if count[id] > 1 && len(dupIDs) < 5 {
			dupIDs = append(dupIDs, id)
			r, err := store.Get(ctx, id)
			t.Logf("duplicated: %s seq %d position %d partition %d state %v attempts %d (err %v)", id, r.Seq, r.LeafIndex, r.Part, r.State, r.Attempts, err)
		}
	}
	relayLines(t, dir, dupIDs)
	if e, ok := b.(interface{ explain(*testing.T) }); ok && res.Duplicates > 0 {
		e.explain(t)
	}
	// Strict order: per DOID, first deliveries in record (seq) order.
	seqOf := map[string]int64{}
	for after := int64(0); ; {
		page, err := store.Scan(ctx, core.ScanParams{AfterSeq: after, Limit: 5000})
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			seqOf[r.Op.OpID] = r.Seq
		}
		after = page[len(page)-1].Seq
	}
	last, lastID := map[string]int64{}, map[string]string{}
	for _, d := range firsts {
		if sq := seqOf[d.ID]; sq < last[d.Key] {
			res.OrderBroken++
			if res.OrderBroken <= 5 {
				early, _ := store.Get(ctx, d.ID)
				late, _ := store.Get(ctx, lastID[d.Key])
				t.Logf("order: %s seq %d (position %d, attempts %d) delivered first after seq %d (position %d, attempts %d)",
					d.Key, sq, early.LeafIndex, early.Attempts, last[d.Key], late.LeafIndex, late.Attempts)
			}
		} else {
			last[d.Key], lastID[d.Key] = sq, d.ID
		}
	}

	// The ledger holds every committed operation and verifies.
	require.Eventually(t, func() bool {
		n, err := ls.TreeSize(ctx)
		res.Ledger = n
		return err == nil && n == int64(len(committed))
	}, testenv.Patience(t), 200*time.Millisecond, "the ledger catches up")
	out, err := exec.CommandContext(ctx, binary, "--store", srv.URL, "verify", "--key", filepath.Join(dir, "log.pub")).CombinedOutput()
	assert.NoError(t, err, "trustlog verify passes on the ledger: %s", out)

	res.Total = time.Since(began)
	t.Logf("chaos %s/%s: ops %d committed %d rolled back %d kills %d db restarts %d outage %s | lost %d phantom %d duplicates %d order broken %d | drained %s after recovery, total %s",
		dbKind, brokerName, res.Operations, res.Committed, res.RolledBack, res.Kills, res.DBRestarts, res.Outage,
		res.Lost, res.Phantom, res.Duplicates, res.OrderBroken, res.DrainAfter.Round(time.Millisecond), res.Total.Round(time.Second))
	report(t, res)
	assert.Zero(t, res.Lost, "lost")
	assert.Zero(t, res.Phantom, "phantom")
	assert.Zero(t, res.OrderBroken, "per-DOID order in strict mode")
	assert.LessOrEqual(t, res.Duplicates, b.maxDuplicates(s.batch, res.Kills, s.relays), "duplicates")
	n, samples := refusals(dir)
	assert.Zero(t, n, "nothing refuses a message here, so every sink failure must be an outage (core.Unavailable: "+
		"the partition pauses without spending attempts); these went to the retry table or dead instead: %q", samples)
}

// refusals counts the relays' log lines in dir that report a message the
// sink refused as a message (retried from the retry table, or dead), and
// returns the errors of the first few (a retry is a debug line: the
// relays log at debug unless TRUSTLOG_CHAOS_LOG_LEVEL says otherwise). A
// chaos run refuses no message: a
// killed relay, a database restart and a broker outage are all outages,
// and a re-send from the retry table goes out of a Pulsar partition's
// deduplicated stream (a copy of what an earlier owner stored).
func refusals(dir string) (n int, samples []string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(b)) {
			if !strings.Contains(line, `"msg":"trustlog: publish failed, will retry"`) &&
				!strings.Contains(line, `"msg":"trustlog: operation is dead"`) {
				continue
			}
			n++
			var rec struct {
				Err string `json:"err"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && len(samples) < 3 && !slices.Contains(samples, rec.Err) {
				samples = append(samples, rec.Err)
			}
		}
	}
	return n, samples
}

// relayLines logs what the relays' logs in dir say about the first three
// of ids (at debug level, the default here, a relay names each operation
// it sends as a new message although an earlier ordered claim carried
// it), at most ten lines each: a failed CI run's only trace.
func relayLines(t *testing.T, dir string, ids []string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, id := range ids[:min(len(ids), 3)] {
		n := 0
		for _, l := range logs {
			b, err := os.ReadFile(l)
			if err != nil {
				continue
			}
			for line := range strings.Lines(string(b)) {
				if strings.Contains(line, id) && n < 10 {
					n++
					line = strings.TrimSpace(line)
					if len(line) > 400 { // lists of op_ids
						line = line[:400] + "…"
					}
					t.Logf("%s: %s", filepath.Base(l), line)
				}
			}
		}
		if n == 0 {
			t.Logf("no relay log line names %s", id)
		}
	}
}

// chaosObject is a row of the application's own object table.
type chaosObject struct {
	bun.BaseModel `bun:"table:chaos_object"`
	DOID          string `bun:"doid,pk"`
	Version       int64  `bun:"version"`
}

func objectDOID(i int) string { return conformance.NewOp(fmt.Sprintf("chaos-%d", i), 0).DOID }

// report appends a run's figures to $TRUSTLOG_CHAOS_REPORT (JSON lines).
func report(t *testing.T, r Result) {
	path := os.Getenv("TRUSTLOG_CHAOS_REPORT")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Errorf("report: %v", err)
		return
	}
	defer f.Close()
	json.NewEncoder(f).Encode(r)
}
