package core_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

// TestTelemetryHistogramBuckets: the duration histograms, recorded in
// seconds, have buckets from half a millisecond up, not OpenTelemetry's
// default bounds (0, 5, 10, 25 … 10000) that put every batch in the first.
func TestTelemetryHistogramBuckets(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	store := sqlitetest.Open(t, sqlitetest.URL(t))
	sink := memory.New(memory.Faults{})
	c, err := core.NewClient(store, sink, core.Config{Telemetry: core.Telemetry{MeterProvider: mp},
		Engine: core.EngineConfig{BatchSize: 2, PollInterval: 10 * time.Millisecond}})
	require.NoError(t, err)
	ops := make([]*core.Operation, 6)
	for i := range ops {
		ops[i] = conformance.NewOp(fmt.Sprintf("buckets-%d", i), i)
	}
	require.NoError(t, c.Record(ctx, ops...))
	e, err := c.Engine()
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	defer e.Stop(ctx)
	require.Eventually(t, func() bool { return e.Stats().Published == int64(len(ops)) }, testenv.Patience(t), 10*time.Millisecond)

	stage := []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	want := map[string][]float64{
		"trustlog.read.duration":    stage,
		"trustlog.publish.duration": stage,
		"trustlog.advance.duration": stage,
		"trustlog.commit_to_ack":    append(append([]float64(nil), stage...), 60, 300, 900, 3600),
	}
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	seen := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			h, ok := m.Data.(metricdata.Histogram[float64])
			if !ok {
				continue
			}
			require.Contains(t, want, m.Name, "a duration histogram this test does not know")
			assert.Equal(t, "s", m.Unit, m.Name)
			for _, p := range h.DataPoints {
				seen[m.Name] = true
				assert.Equal(t, want[m.Name], p.Bounds, m.Name)
			}
		}
	}
	for name := range want {
		assert.True(t, seen[name], "%s recorded", name)
	}
}

// TestEngineSinkDown: the engine reports an outage of its sink (for
// /readyz) from the first batch refused as unavailable until the sink
// accepts one again.
func TestEngineSinkDown(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store := sqlitetest.Open(t, sqlitetest.URL(t))
	sink := memory.New(memory.Faults{FailUntil: time.Now().Add(time.Hour)})
	c, err := core.NewClient(store, sink, core.Config{Engine: core.EngineConfig{
		PollInterval: 10 * time.Millisecond, ProbeInterval: 50 * time.Millisecond}})
	require.NoError(t, err)
	e, err := c.Engine()
	require.NoError(t, err)
	_, down := e.SinkDown()
	assert.False(t, down, "no outage before the first publish")
	require.NoError(t, c.Record(ctx, conformance.NewOp("sinkdown", 1)))
	before := time.Now()
	require.NoError(t, e.Start(ctx))
	defer e.Stop(ctx)
	require.Eventually(t, func() bool { _, down := e.SinkDown(); return down }, testenv.Patience(t), 5*time.Millisecond)
	since, _ := e.SinkDown()
	assert.False(t, since.Before(before), "the outage began after the engine started")
	sink.SetFaults(memory.Faults{})
	require.Eventually(t, func() bool { _, down := e.SinkDown(); return !down && e.Stats().Published == 1 },
		30*time.Second, 5*time.Millisecond)
}
