package core

import (
	"context"
	"path"
	"reflect"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry says where metrics and traces go. The zero value uses
// OpenTelemetry's global providers, which do nothing until the application
// installs an SDK: trustlog depends on the OpenTelemetry API only.
//
// Record and RecordTx make a span "trustlog.record", a child of the span
// in the caller's context, naming the operations by op_id; the engine
// makes a span "trustlog.batch" per batch it reads (children "read",
// "publish", "advance" or "settle"), naming them too. The two are not
// linked: a batch is read long after, often in another process. docs/operating.md
// lists the attributes.
type Telemetry struct {
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
}

// instrumentationName scopes every trustlog instrument and span.
const instrumentationName = "github.com/go-trustlog/trustlog"

// stageBuckets are the bucket bounds, in seconds, of the read, publish
// and advance histograms: from half a millisecond to half a minute.
// OpenTelemetry's default bounds (0, 5, 10, 25, … 10000) suit milliseconds
// and would put every batch in the first bucket. An SDK view may still
// override them.
var stageBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// ackBuckets are the bucket bounds, in seconds, of trustlog.commit_to_ack:
// stageBuckets, then up to an hour, as a backlog (a relay down, a sink
// outage) delays acks by minutes.
var ackBuckets = append(append([]float64(nil), stageBuckets...), 60, 300, 900, 3600)

// The instruments, by name:
//
//	trustlog.operations.recorded   counter    operations stored by Record/RecordTx
//	                                          (RecordTx counts when its insert succeeds,
//	                                          before the caller commits)
//	trustlog.operations.published  counter    {sink}
//	trustlog.operations.retried    counter    {sink}
//	trustlog.operations.dead       counter    {sink}
//	trustlog.read.duration         histogram  seconds to read a partition's batch
//	trustlog.publish.duration      histogram  seconds, {sink}
//	trustlog.advance.duration      histogram  seconds to advance a cursor
//	trustlog.commit_to_ack         histogram  seconds from created_at to the sink's ack, {sink}
//	trustlog.operations.unsettled  gauge      pending + retrying
//	trustlog.oldest_unsettled_age  gauge      seconds
//
// The spans:
//
//	trustlog.record  one per Record/RecordTx call, a child of the span in
//	                 the caller's context: trustlog.strategy, trustlog.tx,
//	                 trustlog.operations and the operations' names (opAttrs)
//	trustlog.batch   one per batch, a root: trustlog.source ("partition"
//	                 or "retry"), trustlog.batch.size, trustlog.sink and
//	                 the operations' names, with children "read",
//	                 "publish" and "advance" (a retry batch: "settle")
//
// The histograms' buckets run from 0.5ms to 30s (commit_to_ack's on to an
// hour).
type telemetry struct {
	tracer                   trace.Tracer
	sink                     string // sinkName
	recorded                 metric.Int64Counter
	published, retried, dead metric.Int64Counter
	readDur, publishDur      metric.Float64Histogram
	advanceDur, ackLatency   metric.Float64Histogram
	sinkAttr                 metric.MeasurementOption
	unsettled                metric.Int64ObservableGauge
	oldestAge                metric.Float64ObservableGauge
	registration             metric.Registration
}

func newTelemetry(t Telemetry, sink Sink) *telemetry {
	mp, tp := t.MeterProvider, t.TracerProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	m := mp.Meter(instrumentationName)
	tel := &telemetry{tracer: tp.Tracer(instrumentationName)}
	// Instrument creation only fails on invalid names; ours are constant.
	tel.recorded, _ = m.Int64Counter("trustlog.operations.recorded", metric.WithDescription("Operations stored by Record and RecordTx."))
	tel.published, _ = m.Int64Counter("trustlog.operations.published", metric.WithDescription("Operations the sink accepted and the store recorded."))
	tel.retried, _ = m.Int64Counter("trustlog.operations.retried", metric.WithDescription("Publishing attempts that failed and will be retried."))
	tel.dead, _ = m.Int64Counter("trustlog.operations.dead", metric.WithDescription("Operations sent to dead."))
	sec := metric.WithUnit("s")
	stage := metric.WithExplicitBucketBoundaries(stageBuckets...)
	tel.readDur, _ = m.Float64Histogram("trustlog.read.duration", sec, stage, metric.WithDescription("Time to read a partition's batch."))
	tel.publishDur, _ = m.Float64Histogram("trustlog.publish.duration", sec, stage, metric.WithDescription("Time to publish a batch."))
	tel.advanceDur, _ = m.Float64Histogram("trustlog.advance.duration", sec, stage, metric.WithDescription("Time to advance a partition's cursor."))
	tel.ackLatency, _ = m.Float64Histogram("trustlog.commit_to_ack", sec, metric.WithExplicitBucketBoundaries(ackBuckets...),
		metric.WithDescription("Time from an operation's created_at to the sink's ack."))
	tel.sink = sinkName(sink)
	tel.sinkAttr = metric.WithAttributes(attribute.String("sink", tel.sink))
	return tel
}

// observeStore registers the store gauges; stop unregisters them.
func (tel *telemetry) observeStore(t Telemetry, store Store) {
	mp := t.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(instrumentationName)
	tel.unsettled, _ = m.Int64ObservableGauge("trustlog.operations.unsettled", metric.WithDescription("Operations pending or retrying."))
	tel.oldestAge, _ = m.Float64ObservableGauge("trustlog.oldest_unsettled_age", metric.WithUnit("s"), metric.WithDescription("Age of the oldest unsettled operation."))
	tel.registration, _ = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		st, err := store.Stats(ctx)
		if err != nil {
			return err
		}
		o.ObserveInt64(tel.unsettled, st.Counts[StatePending]+st.Counts[StateRetrying])
		age := 0.0
		if !st.OldestUnsettled.IsZero() {
			age = time.Since(st.OldestUnsettled).Seconds()
		}
		o.ObserveFloat64(tel.oldestAge, age)
		return nil
	}, tel.unsettled, tel.oldestAge)
}

func (tel *telemetry) stop() {
	if tel.registration != nil {
		tel.registration.Unregister()
	}
}

// batchSpan starts a batch's span and its read child, both back-dated to
// when the read began; source is "partition" or "retry".
func (tel *telemetry) batchSpan(source string, start time.Time, recs []Record) trace.Span {
	ctx, span := tel.tracer.Start(context.Background(), "trustlog.batch", trace.WithTimestamp(start),
		trace.WithAttributes(attribute.String("trustlog.source", source), attribute.Int("trustlog.batch.size", len(recs)),
			attribute.String("trustlog.sink", tel.sink)))
	if span.IsRecording() {
		span.SetAttributes(opAttrs(len(recs), func(i int) *Operation { return &recs[i].Op })...)
	}
	_, read := tel.tracer.Start(ctx, "read", trace.WithTimestamp(start))
	read.End()
	return span
}

// recordSpan starts the span of a Record (tx false) or RecordTx call in
// ctx; endRecordSpan ends it.
func (tel *telemetry) recordSpan(ctx context.Context, strategy Strategy, tx bool) (context.Context, trace.Span) {
	return tel.tracer.Start(ctx, "trustlog.record", trace.WithAttributes(
		attribute.String("trustlog.strategy", strategy.String()), attribute.Bool("trustlog.tx", tx)))
}

// endRecordSpan ends a recordSpan, naming ops (sealed by then, unless err
// says they could not be) and err.
func endRecordSpan(span trace.Span, ops []*Operation, err error) {
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("trustlog.operations", len(ops)))
		span.SetAttributes(opAttrs(len(ops), func(i int) *Operation { return ops[i] })...)
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}

// maxSpanOpIDs bounds trustlog.op_ids: a batch of thousands of operations
// would otherwise make a span of a hundred kilobytes.
const maxSpanOpIDs = 128

// opAttrs names n operations in a span: trustlog.op_ids, the op_ids (the
// first maxSpanOpIDs; the count is another attribute), and for a single
// operation trustlog.op_id and trustlog.doid as well, which a trace
// backend can search for. Operations not sealed (no op_id) are left out.
func opAttrs(n int, op func(i int) *Operation) []attribute.KeyValue {
	ids := make([]string, 0, min(n, maxSpanOpIDs))
	for i := 0; i < n && len(ids) < maxSpanOpIDs; i++ {
		if o := op(i); o != nil && o.OpID != "" {
			ids = append(ids, o.OpID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	attrs := []attribute.KeyValue{attribute.StringSlice("trustlog.op_ids", ids)}
	if o := op(0); n == 1 {
		attrs = append(attrs, attribute.String("trustlog.op_id", o.OpID), attribute.String("trustlog.doid", o.DOID))
	}
	return attrs
}

// child records a finished stage of a batch.
func (tel *telemetry) child(parent trace.Span, name string, start time.Time, err error) {
	if parent == nil {
		return
	}
	ctx := trace.ContextWithSpan(context.Background(), parent)
	_, s := tel.tracer.Start(ctx, name, trace.WithTimestamp(start))
	if err != nil {
		s.SetStatus(codes.Error, err.Error())
	}
	s.End()
}

// sinkName is the short name of a sink's package ("memory", "kafka").
func sinkName(s Sink) string {
	if s == nil {
		return "none"
	}
	t := reflect.TypeOf(s)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if p := t.PkgPath(); p != "" {
		return path.Base(p)
	}
	return t.String()
}
