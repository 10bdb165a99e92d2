package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/benchkit"
	"github.com/go-trustlog/trustlog/internal/redact"
	"github.com/go-trustlog/trustlog/sinks/kafka/kafkatest"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
)

// benchWorkloads are the workloads in the order they run.
var benchWorkloads = []string{"write", "drain", "latency", "backlog", "sinks", "ledger"}

// benchOpts are the bench command's flags.
type benchOpts struct {
	n, sinkN, ledgerN, writeTxs, runs int
	kafka, pulsar, pulsarAdmin        string // real brokers of the sinks workload
	engines, batches, backlogs        []int
	rate                              int
	duration                          time.Duration
	asJSON                            bool
	from                              string
}

// benchReport is everything one run measured; --json prints it.
type benchReport struct {
	Store   string         `json:"store"`
	Started time.Time      `json:"started"`
	Go      string         `json:"go"`
	CPUs    int            `json:"cpus"`
	Write   []benchWrite   `json:"write,omitempty"`
	Drain   []benchDrain   `json:"drain,omitempty"`
	Latency []benchLatency `json:"latency,omitempty"`
	Backlog []benchBacklog `json:"backlog,omitempty"`
	Sinks   []benchSink    `json:"sinks,omitempty"`
	Ledger  *benchLedger   `json:"ledger,omitempty"`
	// Targets counts the rows that have a target, by whether this run
	// met it (see judgeBench).
	Targets *benchTally `json:"targets,omitempty"`
}

// benchTarget is one row's target and whether the run met it. The figure
// is judged at the precision the table prints it with, so a row reads
// "met" exactly when its printed figure is within the target.
type benchTarget struct {
	Metric   string  `json:"metric"`   // the row's JSON field it judges
	Op       string  `json:"op"`       // "<=", ">=" or "<"
	Value    float64 `json:"value"`    // the target
	Measured float64 `json:"measured"` // the row's figure, at the printed precision
	Met      bool    `json:"met"`
	digits   int     // decimals printed
}

// benchTally counts the rows with a target.
type benchTally struct {
	Met    int `json:"met"`
	NotMet int `json:"not_met"`
}

// The targets of the sequenced log (BENCHMARKS.md) that one run can
// judge. Drain against River's `river bench` needs River's CLI run on the
// same server (BENCHMARKS.md shows how); the relay over the bare loop is
// printed for what it is worth but judged against nothing: the bare loop
// reads a backlog already sequenced.
const (
	targetWriteOverhead = 1.1    // RecordTx time over the plain INSERT's, at most
	targetOverOne       = 1.0    // N engines' drain rate over one engine's (same batch), at least
	targetP99ms         = 25     // commit → ack p99 with wake-on-commit, below
	targetFlatRSS       = 1.1    // peak RSS over the smallest backlog's, at most
	targetSequencer     = 50_000 // positions a second on PostgreSQL, at least
)

// newTarget judges measured against value with op, at digits decimals.
func newTarget(metric, op string, value, measured float64, digits int) *benchTarget {
	p := math.Pow(10, float64(digits))
	m := math.Round(measured*p) / p
	var met bool
	switch op {
	case "<=":
		met = m <= value
	case ">=":
		met = m >= value
	case "<":
		met = m < value
	}
	return &benchTarget{Metric: metric, Op: op, Value: value, Measured: m, Met: met, digits: digits}
}

// String is the target column: "met (0.91 ≥ 0.70)", "NOT MET (1.26 > 1.20)".
func (t *benchTarget) String() string {
	if t == nil {
		return ""
	}
	cmp := map[string][2]string{"<=": {"≤", ">"}, ">=": {"≥", "<"}, "<": {"<", "≥"}}[t.Op]
	verdict, sign := "met", cmp[0]
	if !t.Met {
		verdict, sign = "NOT MET", cmp[1]
	}
	return fmt.Sprintf("%s (%.*f %s %.*f)", verdict, t.digits, t.Measured, sign, t.digits, t.Value)
}

// judgeBench sets the target of every row that has one, and the tally.
// It recomputes them from the figures, so a saved report (--from) is
// judged by this binary's targets.
func judgeBench(rep *benchReport) {
	var tally benchTally
	count := func(t *benchTarget) *benchTarget {
		if t.Met {
			tally.Met++
		} else {
			tally.NotMet++
		}
		return t
	}
	for i := range rep.Write {
		r := &rep.Write[i]
		r.Target = count(newTarget("record_tx_time_over_plain", "<=", targetWriteOverhead, r.Overhead, 2))
	}
	for i := range rep.Drain {
		r := &rep.Drain[i]
		r.OverOne, r.Target = 0, nil
		if one := oneEngine(rep.Drain, r.Batch); r.Engines > 1 && one > 0 {
			r.OverOne = r.Rate / one
			r.Target = count(newTarget("relay_over_one_engine", ">=", targetOverOne, r.OverOne, 2))
		}
	}
	for i := range rep.Latency {
		r := &rep.Latency[i]
		r.Target = nil
		if r.Mode == "notify" { // polling is bounded by --poll, not by a target
			r.Target = count(newTarget("p99_ms", "<", targetP99ms, r.P99, 1))
		}
	}
	for i := range rep.Backlog {
		r := &rep.Backlog[i]
		r.PeakOverFirst, r.Target = 0, nil
		if first := rep.Backlog[0].PeakMB; i > 0 && first > 0 {
			r.PeakOverFirst = r.PeakMB / first
			r.Target = count(newTarget("relay_peak_rss_over_smallest", "<=", targetFlatRSS, r.PeakOverFirst, 2))
		}
	}
	if l := rep.Ledger; l != nil {
		l.Target = nil
		if strings.HasPrefix(rep.Store, "postgres") {
			l.Target = count(newTarget("leaves_per_s", ">=", targetSequencer, l.Rate, 0))
		}
	}
	rep.Targets = nil
	if tally.Met+tally.NotMet > 0 {
		rep.Targets = &tally
	}
}

type benchWrite struct {
	PerTx      int     `json:"ops_per_tx"`
	Txs        int     `json:"txs"`
	PlainRate  float64 `json:"plain_insert_ops_per_s"`
	RecordRate float64 `json:"record_tx_ops_per_s"`
	Overhead   float64 `json:"record_tx_time_over_plain"`
	// Target is record_tx_time_over_plain ≤ 1.1.
	Target *benchTarget `json:"target,omitempty"`
}

type benchDrain struct {
	Batch    int       `json:"batch"`
	Engines  int       `json:"engines"`
	N        int       `json:"n"`
	RawRate  float64   `json:"bare_loop_ops_per_s"`
	Rate     float64   `json:"relay_ops_per_s"`
	Ratio    float64   `json:"relay_over_bare"`
	AllRatio []float64 `json:"ratio_per_run"`
	// OverOne is the rate over that of one engine at the same batch
	// (rows with more than one engine).
	OverOne float64 `json:"relay_over_one_engine,omitempty"`
	// Target is relay_over_one_engine ≥ 1.0.
	Target *benchTarget `json:"target,omitempty"`
}

type benchLatency struct {
	Mode     string  `json:"mode"`
	N        int     `json:"n"`
	Rate     int     `json:"target_ops_per_s"`
	Achieved float64 `json:"achieved_ops_per_s"`
	P50      float64 `json:"p50_ms"`
	P90      float64 `json:"p90_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
	// Target is p99_ms < 25 with wake-on-commit (mode notify); polling
	// has none.
	Target *benchTarget `json:"target,omitempty"`
}

type benchBacklog struct {
	Pending int     `json:"pending"`
	RawRate float64 `json:"bare_loop_ops_per_s"`
	Rate    float64 `json:"relay_ops_per_s"`
	Ratio   float64 `json:"relay_over_bare"`
	PeakMB  float64 `json:"relay_peak_rss_mb"`
	// PeakOverFirst is PeakMB over the first (smallest) backlog's.
	PeakOverFirst float64 `json:"relay_peak_rss_over_smallest,omitempty"`
	// Target is relay_peak_rss_over_smallest ≤ 1.1 (rows after the first).
	Target *benchTarget `json:"target,omitempty"`
}

type benchSink struct {
	Sink  string  `json:"sink"`
	N     int     `json:"n"`
	Rate  float64 `json:"ops_per_s"`
	Ratio float64 `json:"over_memory"`
}

type benchLedger struct {
	N    int     `json:"n"`
	Rate float64 `json:"leaves_per_s"`
	// Target is leaves_per_s ≥ 50,000 on PostgreSQL.
	Target *benchTarget `json:"target,omitempty"`
}

// oneEngine is the drain rate of the one-engine row at batch, or 0.
func oneEngine(rows []benchDrain, batch int) float64 {
	for _, r := range rows {
		if r.Engines == 1 && r.Batch == batch {
			return r.Rate
		}
	}
	return 0
}

func (a *app) benchCmd() *cobra.Command {
	var o benchOpts
	var quick bool
	cmd := &cobra.Command{
		Use:   "bench [workload...]",
		Short: "Measure the relay against the bare SQL it is built on, in the same run",
		Long: `Run benchmark workloads against --store (default: a SQLite file in a
temporary directory) and print one table per workload; every figure has a
baseline measured in the same run, so the ratios hold on any machine.

Workloads (all when none is named):
  write    RecordTx of 1 and of 100 operations per transaction vs a plain
           multi-row INSERT of the same rows
  drain    --n pending operations drained from scratch (sequencing
           included) by 1/2/4 engines at batch 100/1000 to the memory
           sink, and by as many bare read+advance SQL loops over the
           backlog sequenced beforehand
  latency  a steady --rate of single-operation commits for --duration, from
           8 connections sharing the rate: commit → sink ack
           p50/p90/p99/max, woken by NOTIFY (PostgreSQL) and by polling
  backlog  drain rate and peak resident memory at 10k, 100k and 1M pending
  sinks    the same drain to an in-process Kafka broker (kfake) and to the
           Pulsar test broker, vs the memory sink; with --kafka and
           --pulsar also to those real brokers (a new topic of 3
           partitions each, deleted afterwards)
  ledger   Merkle log sequencing rate (leaves/s) and one signed checkpoint

Each workload works in a scratch place it drops afterwards (a new schema on
PostgreSQL, a new table prefix on MySQL/MariaDB and SQLite), so it can run
against a server that holds real data. Progress goes to the log (stderr).

A row with a target (BENCHMARKS.md) ends with whether this run met it: "met"
or "NOT MET" with the row's figure against the target, e.g. "NOT MET (1.24 >
1.10)"; the last line counts them. The targets: RecordTx time at most 1.1 ×
the plain INSERT's; 2 and 4 engines drain at least as fast as one; p99
commit → ack below 25 ms with NOTIFY; the relay's peak RSS at most 1.1 × the
smallest backlog's; on PostgreSQL at least 50,000 leaves/s sequenced. In
--json each such row has a "target" object (metric, op, value, measured,
met) and "targets" the counts.

To draw the latency and backlog workloads as a PNG, save the run with
--json and, in a clone of the repository, run
'go run ./internal/tools/benchplot FILE.json' (trustlog itself does not
link the plotting library).`,
		Example: `  trustlog bench --quick
  trustlog bench drain --n 200000 --runs 3
  trustlog --store postgres://postgres@127.0.0.1/test bench latency --json > latency.json
  trustlog --store mysql://root@127.0.0.1/test bench --json > mariadb.json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if quick {
				o.quick(cmd.Flags().Changed)
			}
			for _, w := range args {
				if !slices.Contains(benchWorkloads, w) {
					return usagef("unknown workload %q: want %s", w, strings.Join(benchWorkloads, ", "))
				}
			}
			if err := o.validate(); err != nil {
				return err
			}
			if len(args) == 0 {
				args = benchWorkloads
			}
			if o.from != "" {
				return a.benchFrom(o)
			}
			return a.bench(cmd.Context(), o, args)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.n, "n", 200_000, "pending operations per drain")
	f.IntSliceVar(&o.engines, "engines", []int{1, 2, 4}, "engine counts of the drain workload")
	f.IntSliceVar(&o.batches, "batches", []int{100, 1000}, "batch sizes of the drain workload")
	f.IntVar(&o.runs, "runs", 1, "drain runs per configuration (the median ratio is reported)")
	f.IntVar(&o.writeTxs, "write-txs", 2000, "transactions of each kind in the write workload (half as many at 100 operations)")
	f.IntVar(&o.rate, "rate", 1000, "operations per second in the latency workload")
	f.DurationVar(&o.duration, "duration", 30*time.Second, "how long the latency workload records")
	f.IntSliceVar(&o.backlogs, "backlogs", []int{10_000, 100_000, 1_000_000}, "backlog sizes of the backlog workload")
	f.IntVar(&o.sinkN, "sink-n", 50_000, "pending operations per drain in the sinks workload")
	f.StringVar(&o.kafka, "kafka", "", "sinks workload: also drain to the real Kafka broker at this host:port")
	f.StringVar(&o.pulsar, "pulsar", "", "sinks workload: also drain to the real Pulsar broker at this service URL (pulsar://host:6650)")
	f.StringVar(&o.pulsarAdmin, "pulsar-admin", "http://127.0.0.1:8080", "the admin REST API of the --pulsar broker (it creates the topic)")
	f.IntVar(&o.ledgerN, "ledger-n", 50_000, "operations sequenced in the ledger workload")
	f.BoolVar(&o.asJSON, "json", false, "print the results as one JSON document instead of tables")
	f.StringVar(&o.from, "from", "", "run nothing: print the results a --json run saved in this file")
	f.BoolVar(&quick, "quick", false, "smaller defaults (n 20k, 5 s latency, backlogs 1k/10k/100k): a run of a few minutes")
	return cmd
}

// quick shrinks the defaults of the flags not given to a run of a few
// minutes.
func (o *benchOpts) quick(given func(string) bool) {
	set := func(flag string, p *int, v int) {
		if !given(flag) {
			*p = v
		}
	}
	set("n", &o.n, 20_000)
	set("sink-n", &o.sinkN, 10_000)
	set("ledger-n", &o.ledgerN, 10_000)
	set("write-txs", &o.writeTxs, 200)
	if !given("duration") {
		o.duration = 5 * time.Second
	}
	if !given("backlogs") {
		o.backlogs = []int{1_000, 10_000, 100_000}
	}
}

func (o benchOpts) validate() error {
	positive := map[string]int{"--n": o.n, "--runs": o.runs, "--write-txs": o.writeTxs, "--rate": o.rate,
		"--sink-n": o.sinkN, "--ledger-n": o.ledgerN}
	for _, name := range []string{"--n", "--runs", "--write-txs", "--rate", "--sink-n", "--ledger-n"} {
		if positive[name] < 1 {
			return usagef("%s %d: want 1 or more", name, positive[name])
		}
	}
	for name, list := range map[string][]int{"--engines": o.engines, "--batches": o.batches, "--backlogs": o.backlogs} {
		for _, v := range list {
			if v < 1 {
				return usagef("%s: %d: want 1 or more", name, v)
			}
		}
	}
	for _, b := range o.batches {
		if b > core.MaxBatch {
			return usagef("--batches: %d: the most is %d", b, core.MaxBatch)
		}
	}
	if o.duration <= 0 {
		return usagef("--duration %s: want a positive duration", o.duration)
	}
	return nil
}

// benchFrom reports the results of an earlier --json run.
func (a *app) benchFrom(o benchOpts) error {
	b, err := os.ReadFile(o.from)
	if err != nil {
		return usagef("--from: %v", err)
	}
	var rep benchReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return usagef("--from %s: not the JSON of trustlog bench --json: %v", o.from, err)
	}
	return a.report(&rep, o)
}

// bench runs the workloads in order, then prints or encodes the report.
func (a *app) bench(ctx context.Context, o benchOpts, workloads []string) error {
	rep := &benchReport{Store: "sqlite (temporary file)", Started: time.Now().UTC(), Go: runtime.Version(), CPUs: runtime.NumCPU()}
	if a.storeURL != "" {
		rep.Store = redact.URL(a.storeURL)
	}
	base := a.storeURL
	a.benchProgress, a.benchSteps = a.newProgress(), map[string]int{}
	defer func() { a.benchProgress.done(a.benchSteps) }()
	for _, w := range benchWorkloads {
		if !slices.Contains(workloads, w) {
			continue
		}
		a.log.Info("bench: workload starts", "workload", w)
		var err error
		switch w {
		case "write":
			err = a.benchWrite(ctx, base, o, rep)
		case "drain":
			err = a.benchDrain(ctx, base, o, rep)
		case "latency":
			err = a.benchLatency(ctx, base, o, rep)
		case "backlog":
			err = a.benchBacklog(ctx, base, o, rep)
		case "sinks":
			err = a.benchSinks(ctx, base, o, rep)
		case "ledger":
			var r benchkit.DrainResult
			r, err = benchkit.LedgerRate(ctx, base, o.ledgerN)
			rep.Ledger = &benchLedger{N: o.ledgerN, Rate: r.Rate()}
		}
		if err != nil {
			return fmt.Errorf("bench %s: %w", w, err)
		}
		if w != "drain" && w != "backlog" { // those count each measurement
			a.benchStep(w)
		}
	}
	return a.report(rep, o)
}

// report judges the rows against their targets and prints the report as
// tables or JSON.
func (a *app) report(rep *benchReport, o benchOpts) error {
	judgeBench(rep)
	if o.asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printBench(a.stdout, rep)
	return nil
}

func (a *app) benchWrite(ctx context.Context, base string, o benchOpts, rep *benchReport) error {
	sc, err := benchkit.NewScratch(base)
	if err != nil {
		return err
	}
	defer sc.Drop(context.WithoutCancel(ctx))
	st, err := sc.Open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, per := range []int{1, 100} {
		txs := benchkit.WriteTxs(per, o.writeTxs)
		r, err := benchkit.WritePath(ctx, st, per, txs)
		if err != nil {
			return err
		}
		rep.Write = append(rep.Write, benchWrite{PerTx: per, Txs: txs, PlainRate: r.PlainRate(), RecordRate: r.RecordRate(), Overhead: r.Overhead()})
	}
	return nil
}

func (a *app) benchDrain(ctx context.Context, base string, o benchOpts, rep *benchReport) error {
	for _, batch := range o.batches {
		for _, e := range o.engines {
			d := benchDrain{Batch: batch, Engines: e, N: o.n}
			var raws, rates []float64
			for run := 0; run < o.runs; run++ {
				a.log.Info("bench: drain", "batch", batch, "engines", e, "n", o.n, "run", run+1)
				raw, eng, err := benchkit.DrainCompare(ctx, base, o.n, e, batch)
				if err != nil {
					return err
				}
				raws, rates = append(raws, raw.Rate()), append(rates, eng.Rate())
				d.AllRatio = append(d.AllRatio, eng.Rate()/raw.Rate())
				a.benchStep("drain")
			}
			d.RawRate, d.Rate, d.Ratio = median(raws), median(rates), median(d.AllRatio)
			rep.Drain = append(rep.Drain, d)
		}
	}
	return nil
}

func (a *app) benchLatency(ctx context.Context, base string, o benchOpts, rep *benchReport) error {
	for _, mode := range []string{"notify", "poll"} {
		sc, err := benchkit.NewScratch(base)
		if err != nil {
			return err
		}
		url := sc.URL
		if mode == "poll" && strings.HasPrefix(url, "postgres") {
			url += "&notify=false"
		}
		st, err := core.OpenStore(ctx, url)
		if err == nil {
			err = st.Migrate(ctx)
		}
		if err == nil && mode == "notify" && !st.Capabilities().ListenNotify {
			a.log.Info("bench: no cross-process wake-up on this database; latency measured with polling only")
			st.Close()
			sc.Drop(context.WithoutCancel(ctx))
			continue
		}
		if err == nil {
			a.log.Info("bench: latency", "mode", mode, "rate", o.rate, "duration", o.duration)
			var r benchkit.LatencyResult
			r, err = benchkit.Latency(ctx, st, o.rate, o.duration, core.EngineConfig{})
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			rep.Latency = append(rep.Latency, benchLatency{Mode: mode, N: r.N, Rate: o.rate, Achieved: float64(r.N) / o.duration.Seconds(), P50: ms(r.P50), P90: ms(r.P90), P99: ms(r.P99), Max: ms(r.Max)})
		}
		if st != nil {
			st.Close()
		}
		sc.Drop(context.WithoutCancel(ctx))
		if err != nil {
			return err
		}
	}
	return nil
}

func (a *app) benchBacklog(ctx context.Context, base string, o benchOpts, rep *benchReport) error {
	for _, n := range o.backlogs {
		a.log.Info("bench: backlog", "pending", n)
		r, err := benchkit.Backlog(ctx, base, n, relayProcess)
		if err != nil {
			return err
		}
		a.benchStep("backlog")
		rep.Backlog = append(rep.Backlog, benchBacklog{Pending: n, RawRate: r.Raw.Rate(), Rate: r.Rate(), Ratio: r.Rate() / r.Raw.Rate(), PeakMB: mb(r.PeakRSS)})
	}
	return nil
}

func (a *app) benchSinks(ctx context.Context, base string, o benchOpts, rep *benchReport) error {
	a.log.Info("bench: sinks", "sink", "memory", "n", o.sinkN)
	mem, err := benchkit.SinkDrain(ctx, base, o.sinkN, nil)
	if err != nil {
		return err
	}
	rep.Sinks = append(rep.Sinks, benchSink{Sink: "memory", N: o.sinkN, Rate: mem.Rate(), Ratio: 1})

	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "trustlog-bench"))
	if err != nil {
		return err
	}
	err = a.benchSink(ctx, base, o, rep, mem, "kafka (kfake)", "kafka://"+kc.ListenAddrs()[0]+"/trustlog-bench")
	kc.Close()
	if err != nil {
		return err
	}

	const topic = "persistent://public/default/trustlog-bench"
	pb, err := pulsartest.New(pulsartest.WithPartitionedTopic(topic, 3))
	if err != nil {
		return err
	}
	defer pb.Close()
	if err := a.benchSink(ctx, base, o, rep, mem, "pulsar (test broker)", pb.SinkURL(topic, "producer_name=trustlog-bench")); err != nil {
		return err
	}

	if o.kafka != "" {
		topic := kafkatest.Topic()
		if err := kafkatest.CreateTopic(ctx, o.kafka, topic, 3); err != nil {
			return fmt.Errorf("--kafka: %w", err)
		}
		defer kafkatest.DeleteTopic(context.WithoutCancel(ctx), o.kafka, topic)
		if err := a.benchSink(ctx, base, o, rep, mem, "kafka (real broker)", "kafka://"+o.kafka+"/"+topic); err != nil {
			return err
		}
	}
	if o.pulsar != "" {
		topic := pulsartest.Topic()
		if err := pulsartest.CreatePartitionedTopic(ctx, o.pulsarAdmin, topic, 3); err != nil {
			return fmt.Errorf("--pulsar: %w", err)
		}
		defer pulsartest.DeletePartitionedTopic(context.WithoutCancel(ctx), o.pulsarAdmin, topic)
		dedup := "pulsar (real broker, deduplication off)"
		if on, err := (&pulsartest.Real{Admin: o.pulsarAdmin}).Deduplication(ctx, topic); err == nil && on {
			dedup = "pulsar (real broker, deduplication on)"
		}
		url := strings.TrimSuffix(o.pulsar, "/") + "/" + topic + "?producer_name=trustlog-bench-" + topic[len(topic)-8:]
		if err := a.benchSink(ctx, base, o, rep, mem, dedup, url); err != nil {
			return err
		}
	}
	return nil
}

// benchSink drains o.sinkN operations to the sink at url and adds the row
// to rep, with its rate over the memory sink's.
func (a *app) benchSink(ctx context.Context, base string, o benchOpts, rep *benchReport, mem benchkit.DrainResult, name, url string) error {
	a.log.Info("bench: sinks", "sink", name, "n", o.sinkN)
	s, err := core.OpenSink(ctx, url)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	r, err := benchkit.SinkDrain(ctx, base, o.sinkN, s)
	s.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	rep.Sinks = append(rep.Sinks, benchSink{Sink: name, N: o.sinkN, Rate: r.Rate(), Ratio: r.Rate() / mem.Rate()})
	return nil
}

// benchStep counts one finished measurement of a workload on the
// progress display.
func (a *app) benchStep(workload string) {
	a.benchSteps[workload]++
	a.benchProgress.set(workload, a.benchSteps[workload])
}

// relayProcess runs this very binary as `trustlog relay` (tests re-execute
// their binary as the CLI: see TestMain).
func relayProcess(ctx context.Context, storeURL, sinkURL string) *exec.Cmd {
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	cmd := exec.CommandContext(ctx, self, "--store", storeURL, "--sink", sinkURL, "--log-format", "json", "--log-level", "warn",
		"relay", "--batch", "1000", "--node", "bench")
	cmd.Env = append(os.Environ(), cliChildEnv+"=1")
	return cmd
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func printBench(w io.Writer, rep *benchReport) {
	fmt.Fprintf(w, "store: %s   go: %s   cpus: %d   started: %s\n", rep.Store, rep.Go, rep.CPUs, rep.Started.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	section := func(title, header string) {
		tw.Flush()
		fmt.Fprintf(w, "\n%s\n", title)
		fmt.Fprintln(tw, header)
	}
	if len(rep.Write) > 0 {
		section(fmt.Sprintf("write path: RecordTx vs a plain INSERT of the same rows (target: time ≤ %.1f × plain)", targetWriteOverhead),
			"ops/tx\ttxs\tplain ops/s\tRecordTx ops/s\tRecordTx time / plain\tvs target\t")
		for _, r := range rep.Write {
			fmt.Fprintf(tw, "%d\t%d\t%.0f\t%.0f\t%.2f\t%s\t\n", r.PerTx, r.Txs, r.PlainRate, r.RecordRate, r.Overhead, r.Target)
		}
	}
	if len(rep.Drain) > 0 {
		section(fmt.Sprintf("drain: relays from scratch (sequencing included) to the memory sink, and the bare read+advance SQL loop over the backlog sequenced (target: N engines ≥ %.1f × one)", targetOverOne),
			"batch\tengines\tpending\tbare ops/s\trelay ops/s\trelay / bare\tover one engine\tvs target\t")
		for _, r := range rep.Drain {
			over := "-"
			if r.OverOne > 0 {
				over = fmt.Sprintf("%.2f", r.OverOne)
			}
			fmt.Fprintf(tw, "%d\t%d\t%d\t%.0f\t%.0f\t%.2f\t%s\t%s\t\n", r.Batch, r.Engines, r.N, r.RawRate, r.Rate, r.Ratio, over, orNone(r.Target))
		}
	}
	if len(rep.Latency) > 0 {
		section(fmt.Sprintf("latency: commit → sink ack at a steady rate (target with wake-on-commit: p99 < %d ms; polling is bounded by --poll)", targetP99ms),
			"wake-up\ttarget ops/s\tachieved ops/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\tvs target\t")
		for _, r := range rep.Latency {
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t\n", r.Mode, r.Rate, r.Achieved, r.P50, r.P90, r.P99, r.Max, orNone(r.Target))
		}
	}
	if len(rep.Backlog) > 0 {
		section(fmt.Sprintf("backlog: one relay process, batch 1000, to Kafka (target: peak RSS flat, ≤ %.1f × the smallest backlog's)", targetFlatRSS),
			"pending\tbare ops/s\trelay ops/s\trelay / bare\trelay peak RSS MB\tover smallest\tvs target\t")
		for _, r := range rep.Backlog {
			over := "-"
			if r.PeakOverFirst > 0 {
				over = fmt.Sprintf("%.2f", r.PeakOverFirst)
			}
			fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.2f\t%.0f\t%s\t%s\t\n", r.Pending, r.RawRate, r.Rate, r.Ratio, r.PeakMB, over, orNone(r.Target))
		}
	}
	if len(rep.Sinks) > 0 {
		section("sinks: one engine, batch 1000",
			"sink\tpending\tops/s\tover memory\t")
		for _, r := range rep.Sinks {
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.2f\t\n", r.Sink, r.N, r.Rate, r.Ratio)
		}
	}
	if rep.Ledger != nil {
		section(fmt.Sprintf("ledger: sequencing into the Merkle log, one signed checkpoint (target on PostgreSQL: ≥ %d leaves/s)", targetSequencer),
			"leaves\tleaves/s\tvs target\t")
		fmt.Fprintf(tw, "%d\t%.0f\t%s\t\n", rep.Ledger.N, rep.Ledger.Rate, orNone(rep.Ledger.Target))
	}
	tw.Flush()
	if t := rep.Targets; t != nil {
		verdict := "all met"
		if t.NotMet > 0 {
			verdict = fmt.Sprintf("%d NOT MET", t.NotMet)
		}
		fmt.Fprintf(w, "\ntargets: %d of %d rows with a target met; %s\n", t.Met, t.Met+t.NotMet, verdict)
	}
}

// orNone is the target column of a row without a target.
func orNone(t *benchTarget) string {
	if t == nil {
		return "none"
	}
	return t.String()
}
