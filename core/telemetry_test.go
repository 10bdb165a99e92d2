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
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/internal/testenv"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

// TestTelemetry asserts the engine's metrics and spans with OpenTelemetry's
// in-memory reader and exporter.
func TestTelemetry(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	tel := core.Telemetry{MeterProvider: mp, TracerProvider: tp}

	store := sqlitetest.Open(t, sqlitetest.URL(t))
	ops := make([]*core.Operation, 30)
	for i := range ops {
		ops[i] = conformance.NewOp(fmt.Sprintf("tel-%d", i%3), i)
	}
	sink := memory.New(memory.Faults{})
	c, err := core.NewClient(store, sink, core.Config{Telemetry: tel, Engine: core.EngineConfig{
		BatchSize: 10, PollInterval: 10 * time.Millisecond, RetryPoll: 10 * time.Millisecond,
		// A lease and a publish timeout no loaded machine runs past: a
		// send that times out ends its batch without an advance.
		MaxAttempts: 1, Lease: 20 * time.Second, PublishTimeout: 10 * time.Second}})
	require.NoError(t, err)
	require.NoError(t, c.Record(ctx, ops...))
	sink.SetFaults(memory.Faults{FailOpIDs: []string{ops[4].OpID}})
	e, err := c.Engine()
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	require.Eventually(t, func() bool { s := e.Stats(); return s.Published == 29 && s.Dead == 1 }, testenv.Patience(t), 10*time.Millisecond)

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	sums := map[string]int64{}
	hists := map[string]uint64{}
	gauges := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					sums[m.Name] += p.Value
					if m.Name == "trustlog.operations.published" {
						v, _ := p.Attributes.Value("sink")
						assert.Equal(t, "memory", v.AsString())
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					hists[m.Name] += p.Count
				}
			case metricdata.Gauge[int64], metricdata.Gauge[float64]:
				gauges[m.Name] = true
			}
		}
	}
	assert.Equal(t, int64(30), sums["trustlog.operations.recorded"])
	assert.Equal(t, int64(29), sums["trustlog.operations.published"])
	assert.Equal(t, int64(1), sums["trustlog.operations.dead"])
	for _, h := range []string{"trustlog.read.duration", "trustlog.publish.duration", "trustlog.advance.duration"} {
		assert.Positive(t, hists[h], h)
	}
	assert.Equal(t, uint64(29), hists["trustlog.commit_to_ack"])
	assert.True(t, gauges["trustlog.operations.unsettled"])
	assert.True(t, gauges["trustlog.oldest_unsettled_age"])

	require.NoError(t, e.Stop(ctx))
	byParent := map[string][]string{}
	batches := 0
	for _, s := range spans.GetSpans() {
		if s.Name == "trustlog.batch" {
			batches++
			continue
		}
		byParent[s.Parent.SpanID().String()] = append(byParent[s.Parent.SpanID().String()], s.Name)
	}
	assert.GreaterOrEqual(t, batches, 3, "a span per batch")
	for _, s := range spans.GetSpans() {
		if s.Name == "trustlog.batch" {
			assert.ElementsMatch(t, []string{"read", "publish", "advance"}, byParent[s.SpanContext.SpanID().String()],
				"each batch links its read, publish and advance")
		}
	}
}
