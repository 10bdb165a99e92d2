package core_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/internal/testenv"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

// spanAttrs maps a span's attributes by key.
func spanAttrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

// TestTracesRecordAndBatchSpans: Record and RecordTx make a span
// "trustlog.record" under the caller's span that names the operations
// (op_ids; op_id and doid for a single one; the op_ids capped at 128 for a
// large call), marked as failed when the call fails; the engine's
// "trustlog.batch" spans name the operations they carry and the sink.
func TestTracesRecordAndBatchSpans(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	store := sqlitetest.Open(t, sqlitetest.URL(t))
	c, err := core.NewClient(store, memory.New(memory.Faults{}), core.Config{Telemetry: core.Telemetry{TracerProvider: tp},
		Engine: core.EngineConfig{BatchSize: 500, PollInterval: 10 * time.Millisecond}})
	require.NoError(t, err)

	// Record, under the application's span.
	appCtx, appSpan := tp.Tracer("app").Start(ctx, "app.request")
	one := conformance.NewOp("trace-one", 1)
	require.NoError(t, c.Record(appCtx, one))
	appSpan.End()

	// RecordTx, two operations.
	tx, err := store.Bun().BeginTx(ctx, nil)
	require.NoError(t, err)
	two := []*core.Operation{conformance.NewOp("trace-two", 2), conformance.NewOp("trace-two", 3)}
	require.NoError(t, c.RecordTx(ctx, &tx, two...))
	require.NoError(t, tx.Commit())

	// A large call, and one that fails.
	many := make([]*core.Operation, 150)
	for i := range many {
		many[i] = conformance.NewOp("trace-many", 10+i)
	}
	require.NoError(t, c.Record(ctx, many...))
	bad := conformance.NewOp("trace-bad", 4)
	bad.DOPrefix = "10.9999" // not the DOID's prefix
	require.Error(t, c.Record(ctx, bad))

	var records []tracetest.SpanStub
	for _, s := range spans.GetSpans() {
		if s.Name == "trustlog.record" {
			records = append(records, s)
		}
	}
	require.Len(t, records, 4, "one span per call")

	r := records[0]
	a := spanAttrs(r)
	assert.Equal(t, appSpan.SpanContext().SpanID(), r.Parent.SpanID(), "a child of the caller's span")
	assert.Equal(t, appSpan.SpanContext().TraceID(), r.SpanContext.TraceID())
	assert.Equal(t, []string{one.OpID}, a["trustlog.op_ids"].AsStringSlice())
	assert.Equal(t, one.OpID, a["trustlog.op_id"].AsString())
	assert.Equal(t, one.DOID, a["trustlog.doid"].AsString())
	assert.Equal(t, int64(1), a["trustlog.operations"].AsInt64())
	assert.False(t, a["trustlog.tx"].AsBool())
	assert.Equal(t, "store-and-publish", a["trustlog.strategy"].AsString())
	assert.Equal(t, codes.Unset, r.Status.Code)

	a = spanAttrs(records[1])
	assert.False(t, records[1].Parent.IsValid(), "no caller's span: a root")
	assert.True(t, a["trustlog.tx"].AsBool())
	assert.Equal(t, []string{two[0].OpID, two[1].OpID}, a["trustlog.op_ids"].AsStringSlice())
	assert.Equal(t, int64(2), a["trustlog.operations"].AsInt64())
	_, single := a["trustlog.op_id"]
	assert.False(t, single, "op_id only for a single operation")

	a = spanAttrs(records[2])
	assert.Equal(t, int64(150), a["trustlog.operations"].AsInt64())
	ids := a["trustlog.op_ids"].AsStringSlice()
	require.Len(t, ids, 128, "capped")
	assert.Equal(t, many[0].OpID, ids[0])
	assert.Equal(t, many[127].OpID, ids[127])

	assert.Equal(t, codes.Error, records[3].Status.Code)
	assert.Contains(t, records[3].Status.Description, "do_prefix")

	// The engine: every operation is named by the batch that carried it.
	e, err := c.Engine()
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	require.Eventually(t, func() bool { return e.Stats().Published == 153 }, testenv.Patience(t), 10*time.Millisecond)
	require.NoError(t, e.Stop(ctx))
	named := map[string]bool{}
	children := map[string][]string{}
	var batches []tracetest.SpanStub
	for _, s := range spans.GetSpans() {
		switch s.Name {
		case "trustlog.batch":
			batches = append(batches, s)
		case "read", "publish", "advance":
			children[s.Parent.SpanID().String()] = append(children[s.Parent.SpanID().String()], s.Name)
		}
	}
	require.NotEmpty(t, batches)
	total := int64(0)
	for _, b := range batches {
		a := spanAttrs(b)
		n := a["trustlog.batch.size"].AsInt64()
		total += n
		assert.Equal(t, "memory", a["trustlog.sink"].AsString())
		assert.Equal(t, "partition", a["trustlog.source"].AsString())
		ids := a["trustlog.op_ids"].AsStringSlice()
		assert.Len(t, ids, int(min(n, 128)))
		for _, id := range ids {
			named[id] = true
		}
		if n == 1 {
			assert.Equal(t, ids[0], a["trustlog.op_id"].AsString())
		}
		assert.ElementsMatch(t, []string{"read", "publish", "advance"}, children[b.SpanContext.SpanID().String()])
	}
	assert.Equal(t, int64(153), total, "every operation in a batch")
	for _, op := range append([]*core.Operation{one}, two...) {
		assert.True(t, named[op.OpID], "a batch span names %s", op.OpID)
	}
}
