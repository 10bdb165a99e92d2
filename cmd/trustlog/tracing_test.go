package main

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// otelEnv are the OpenTelemetry variables the tests set: each test clears
// them first, so that the environment it runs in does not leak in.
var otelEnv = []string{
	"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
	"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
	"OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
	"OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
	"OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
	"OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
	"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
	"OTEL_EXPORTER_OTLP_CLIENT_KEY", "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
}

// clearOTelEnv unsets (empties: the same to OpenTelemetry) every variable
// of otelEnv for the test, then sets the given name=value pairs.
func clearOTelEnv(t *testing.T, set ...string) {
	t.Helper()
	for _, name := range otelEnv {
		t.Setenv(name, "")
	}
	for _, kv := range set {
		name, value, _ := strings.Cut(kv, "=")
		t.Setenv(name, value)
	}
}

// gotSpan is a span an OTLP receiver got, with its resource's attributes.
type gotSpan struct {
	name                    string
	traceID, spanID, parent string
	attrs                   map[string]*commonpb.AnyValue
	resource                map[string]string
}

// otlpReceiver is an in-process OTLP receiver (HTTP, protobuf or JSON; or
// gRPC) that keeps the spans and the request headers it gets.
type otlpReceiver struct {
	url string
	mu  sync.Mutex
	// requests counts the export requests.
	requests int
	spans    []gotSpan
	headers  []map[string]string // lower-case names
	types    []string            // content types (HTTP)
}

func (r *otlpReceiver) add(req *coltracepb.ExportTraceServiceRequest, headers map[string]string, ctype string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	r.headers = append(r.headers, headers)
	r.types = append(r.types, ctype)
	for _, rs := range req.ResourceSpans {
		res := map[string]string{}
		for _, kv := range rs.GetResource().GetAttributes() {
			res[kv.Key] = kv.Value.GetStringValue()
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				g := gotSpan{name: s.Name, traceID: hex.EncodeToString(s.TraceId), spanID: hex.EncodeToString(s.SpanId),
					parent: hex.EncodeToString(s.ParentSpanId), attrs: map[string]*commonpb.AnyValue{}, resource: res}
				for _, kv := range s.Attributes {
					g.attrs[kv.Key] = kv.Value
				}
				r.spans = append(r.spans, g)
			}
		}
	}
}

// got returns the number of requests and the spans so far.
func (r *otlpReceiver) got() (int, []gotSpan) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, append([]gotSpan(nil), r.spans...)
}

// named returns the spans called name.
func named(spans []gotSpan, name string) []gotSpan {
	var out []gotSpan
	for _, s := range spans {
		if s.name == name {
			out = append(out, s)
		}
	}
	return out
}

// stringsOf returns a string-array attribute's values.
func stringsOf(v *commonpb.AnyValue) []string {
	var out []string
	for _, e := range v.GetArrayValue().GetValues() {
		out = append(out, e.GetStringValue())
	}
	return out
}

// newHTTPReceiver starts an OTLP/HTTP receiver at /v1/traces.
func newHTTPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
			http.Error(w, "not an OTLP traces request", http.StatusNotFound)
			return
		}
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var msg coltracepb.ExportTraceServiceRequest
		ctype := req.Header.Get("Content-Type")
		if ctype == "application/json" {
			err = protojson.Unmarshal(b, &msg)
		} else {
			err = proto.Unmarshal(b, &msg)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		headers := map[string]string{}
		for k, v := range req.Header {
			headers[strings.ToLower(k)] = strings.Join(v, ",")
		}
		r.add(&msg, headers, ctype)
		w.Header().Set("Content-Type", ctype)
		if ctype == "application/json" {
			fmt.Fprint(w, "{}")
			return
		}
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

// grpcTraceService is the gRPC side of an otlpReceiver.
type grpcTraceService struct {
	coltracepb.UnimplementedTraceServiceServer
	r *otlpReceiver
}

func (s grpcTraceService) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	headers := map[string]string{}
	for k, v := range md {
		headers[k] = strings.Join(v, ",")
	}
	s.r.add(req, headers, "grpc")
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// newGRPCReceiver starts an OTLP/gRPC receiver.
func newGRPCReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, grpcTraceService{r: r})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	r.url = "http://" + ln.Addr().String()
	return r
}

// traceTestStore returns a migrated SQLite store URL.
func traceTestStore(t *testing.T) string {
	t.Helper()
	store := "sqlite:" + filepath.Join(t.TempDir(), "traces.db")
	code, _, errOut := cli(t, context.Background(), "", "--store", store, "migrate", "up")
	require.Equal(t, 0, code, errOut)
	return store
}

// recordedIDs returns the op_ids `record` printed.
func recordedIDs(t *testing.T, out string) []string {
	t.Helper()
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r struct {
			OpID string `json:"op_id"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &r), line)
		ids = append(ids, r.OpID)
	}
	return ids
}

// TestTracesOTLPRecordRelay: with OTEL_EXPORTER_OTLP_ENDPOINT pointing at
// an in-process OTLP/HTTP receiver, `record` exports a trustlog.record
// span per statement naming its operations, and `relay` (until drained
// and stopped) a trustlog.batch span per batch naming them too, with
// its read, publish and advance children; all with service.name trustlog
// and OTEL_RESOURCE_ATTRIBUTES, sent with OTEL_EXPORTER_OTLP_HEADERS,
// whose token no log line shows.
func TestTracesOTLPRecordRelay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	recv := newHTTPReceiver(t)
	const token = "s3cret-trace-token-42"
	clearOTelEnv(t, "OTEL_EXPORTER_OTLP_ENDPOINT="+recv.url,
		"OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20"+token+",x-tenant=trustlog-test",
		"OTEL_RESOURCE_ATTRIBUTES=deployment.environment=trace-test")
	store := traceTestStore(t)
	requests, _ := recv.got()
	assert.Zero(t, requests, "migrate opens no client: no spans")

	in := opLine(1, "traced-a") + "\n" + opLine(2, "traced-a") + "\n" + opLine(3, "traced-b") + "\n"
	code, out, errOut := cli(t, ctx, in, "--store", store, "record", "--batch", "2")
	require.Equal(t, 0, code, errOut)
	ids := recordedIDs(t, out)
	require.Len(t, ids, 3)
	assert.Contains(t, errOut, `"msg":"exporting traces by OTLP","protocol":"http/protobuf"`)
	assert.NotContains(t, errOut, token)

	// record has exported its spans by the time it exits.
	_, spans := recv.got()
	records := named(spans, "trustlog.record")
	require.Len(t, records, 2, "one span per RecordTx (--batch 2: two statements)")
	assert.Equal(t, ids[:2], stringsOf(records[0].attrs["trustlog.op_ids"]))
	assert.Equal(t, int64(2), records[0].attrs["trustlog.operations"].GetIntValue())
	assert.True(t, records[0].attrs["trustlog.tx"].GetBoolValue())
	assert.Equal(t, "store-only", records[0].attrs["trustlog.strategy"].GetStringValue())
	assert.Equal(t, []string{ids[2]}, stringsOf(records[1].attrs["trustlog.op_ids"]))
	assert.Equal(t, ids[2], records[1].attrs["trustlog.op_id"].GetStringValue())
	assert.Equal(t, "10.1000/traced-b", records[1].attrs["trustlog.doid"].GetStringValue())
	for _, s := range records {
		assert.Equal(t, "trustlog", s.resource["service.name"])
		assert.Equal(t, "trace-test", s.resource["deployment.environment"])
		assert.Equal(t, "go", s.resource["telemetry.sdk.language"])
	}
	recv.mu.Lock()
	assert.Equal(t, "Bearer "+token, recv.headers[0]["authorization"], "OTEL_EXPORTER_OTLP_HEADERS")
	assert.Equal(t, "trustlog-test", recv.headers[0]["x-tenant"])
	assert.Equal(t, "application/x-protobuf", recv.types[0], "http/protobuf by default")
	recv.mu.Unlock()

	// The relay, until the three are published; its spans go out as it stops.
	code, errOut = relayUntilPublished(t, ctx, store, 3, "--sink", "memory://", "relay", "--batch", "10", "--poll", "10ms")
	require.Equal(t, 0, code, errOut)
	assert.NotContains(t, errOut, token)

	_, spans = recv.got()
	batches := named(spans, "trustlog.batch")
	require.NotEmpty(t, batches)
	byID := map[string]gotSpan{}
	for _, b := range batches {
		byID[b.spanID] = b
	}
	carried := map[string]string{} // op_id → the span id of the batch that carried it
	for _, b := range batches {
		assert.Equal(t, "trustlog", b.resource["service.name"])
		assert.Equal(t, "trace-test", b.resource["deployment.environment"])
		assert.Equal(t, "memory", b.attrs["trustlog.sink"].GetStringValue())
		for _, id := range stringsOf(b.attrs["trustlog.op_ids"]) {
			carried[id] = b.spanID
		}
	}
	children := map[string][]string{}
	for _, s := range spans {
		if b, ok := byID[s.parent]; ok {
			assert.Equal(t, b.traceID, s.traceID)
			children[s.parent] = append(children[s.parent], s.name)
		}
	}
	for _, id := range ids {
		b, ok := carried[id]
		if assert.True(t, ok, "a batch span names %s", id) {
			assert.ElementsMatch(t, []string{"read", "publish", "advance"}, children[b], "the batch that published %s", id)
		}
	}
}

// TestTracesOTLPOff: with no endpoint no exporter is made (core gets no
// TracerProvider); OTEL_TRACES_EXPORTER=none and OTEL_SDK_DISABLED=true
// keep traces off with an endpoint set (the receiver gets no request from
// record or relay); OTEL_TRACES_EXPORTER=otlp without an endpoint warns.
func TestTracesOTLPOff(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("no endpoint", func(t *testing.T) {
		clearOTelEnv(t, "OTEL_EXPORTER_OTLP_HEADERS=authorization=x", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc")
		a := &app{}
		tp, err := a.tracerProvider(ctx)
		require.NoError(t, err)
		assert.Nil(t, tp, "core gets no TracerProvider")
		require.NotNil(t, a.tracing)
		assert.Nil(t, a.tracing.tp, "no exporter")
		a.stopTracing()

		store := traceTestStore(t)
		code, _, errOut := cli(t, ctx, opLine(1, "untraced")+"\n", "--store", store, "record")
		require.Equal(t, 0, code, errOut)
		assert.NotContains(t, errOut, "traces")
	})

	t.Run("otlp without an endpoint", func(t *testing.T) {
		clearOTelEnv(t, "OTEL_TRACES_EXPORTER=otlp")
		store := traceTestStore(t)
		code, _, errOut := cli(t, ctx, opLine(1, "untraced")+"\n", "--store", store, "record")
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, errOut, "no OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: traces are off")
		assert.NotContains(t, errOut, "exporting traces")
	})

	for _, off := range []string{"OTEL_TRACES_EXPORTER=none", "OTEL_SDK_DISABLED=true"} {
		t.Run(off, func(t *testing.T) {
			recv := newHTTPReceiver(t)
			clearOTelEnv(t, "OTEL_EXPORTER_OTLP_ENDPOINT="+recv.url, off)
			store := traceTestStore(t)
			code, _, errOut := cli(t, ctx, opLine(1, "untraced")+"\n", "--store", store, "record")
			require.Equal(t, 0, code, errOut)
			assert.NotContains(t, errOut, "exporting traces")

			code, errOut = relayUntilPublished(t, ctx, store, 1, "--sink", "memory://", "relay", "--poll", "10ms")
			require.Equal(t, 0, code, errOut)
			// Both commands have exited, so anything exported has arrived.
			requests, spans := recv.got()
			assert.Zero(t, requests)
			assert.Empty(t, spans)
		})
	}
}

// TestTracesOTLPProtocols: OTEL_EXPORTER_OTLP_PROTOCOL=grpc exports to an
// OTLP/gRPC receiver (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, with headers as
// gRPC metadata); http/json posts JSON; OTEL_SERVICE_NAME names the
// service.
func TestTracesOTLPProtocols(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("grpc", func(t *testing.T) {
		recv := newGRPCReceiver(t)
		clearOTelEnv(t, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="+recv.url, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
			"OTEL_EXPORTER_OTLP_TRACES_HEADERS=x-team=audit", "OTEL_SERVICE_NAME=trustlog-grpc")
		store := traceTestStore(t)
		code, out, errOut := cli(t, ctx, opLine(1, "grpc")+"\n", "--store", store, "record")
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, errOut, `"protocol":"grpc"`)
		_, spans := recv.got()
		records := named(spans, "trustlog.record")
		require.Len(t, records, 1)
		assert.Equal(t, recordedIDs(t, out)[0], records[0].attrs["trustlog.op_id"].GetStringValue())
		assert.Equal(t, "trustlog-grpc", records[0].resource["service.name"], "OTEL_SERVICE_NAME wins")
		recv.mu.Lock()
		assert.Equal(t, "audit", recv.headers[0]["x-team"])
		recv.mu.Unlock()
	})

	t.Run("http/json", func(t *testing.T) {
		recv := newHTTPReceiver(t)
		clearOTelEnv(t, "OTEL_EXPORTER_OTLP_ENDPOINT="+recv.url, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json",
			"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_COMPRESSION=gzip")
		store := traceTestStore(t)
		code, out, errOut := cli(t, ctx, opLine(1, "json")+"\n", "--store", store, "record")
		require.Equal(t, 0, code, errOut)
		_, spans := recv.got()
		records := named(spans, "trustlog.record")
		require.Len(t, records, 1, "the per-signal protocol wins")
		assert.Equal(t, recordedIDs(t, out)[0], records[0].attrs["trustlog.op_id"].GetStringValue())
		assert.Equal(t, "trustlog", records[0].resource["service.name"])
		recv.mu.Lock()
		assert.Equal(t, "application/json", recv.types[0])
		assert.Equal(t, "gzip", recv.headers[0]["content-encoding"])
		recv.mu.Unlock()
	})
}

// TestTracesOTLPEnvErrors: an OpenTelemetry variable trustlog or the
// exporter cannot use is a usage error (exit 2) naming it, before
// anything is recorded or relayed; a header's or URL's secret is never
// shown.
func TestTracesOTLPEnvErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const secret = "s3cret-in-env"
	cases := []struct {
		name string
		env  []string
		want string
	}{
		{"protocol", []string{"OTEL_EXPORTER_OTLP_PROTOCOL=thrift"}, "OTEL_EXPORTER_OTLP_PROTOCOL=thrift: want http/protobuf, http/json or grpc"},
		{"traces protocol", []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=HTTP"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=HTTP: want"},
		{"exporter", []string{"OTEL_TRACES_EXPORTER=zipkin"}, "OTEL_TRACES_EXPORTER=zipkin: trustlog exports traces by OTLP only: want otlp or none"},
		{"header without =", []string{"OTEL_EXPORTER_OTLP_HEADERS=Authorization: Bearer " + secret}, "OTEL_EXPORTER_OTLP_HEADERS: entry 1 has no '='"},
		{"header key", []string{"OTEL_EXPORTER_OTLP_TRACES_HEADERS=x-ok=1,bad key=" + secret}, "OTEL_EXPORTER_OTLP_TRACES_HEADERS: entry 2: the key is not a valid HTTP header name"},
		{"header escape", []string{"OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%zz" + secret}, "OTEL_EXPORTER_OTLP_HEADERS: entry 1 (authorization): the value is not percent-encoded correctly"},
		{"endpoint without scheme", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=localhost:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT: want an http:// or https:// URL with a host"},
		{"endpoint unparsable", []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://user:" + secret + "@[::1"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: want an http:// or https:// URL"},
		{"timeout", []string{"OTEL_EXPORTER_OTLP_TIMEOUT=10s"}, "OTEL_EXPORTER_OTLP_TIMEOUT=10s: want milliseconds"},
		{"compression", []string{"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION=zstd"}, "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION=zstd: want gzip or none"},
		{"certificate", []string{"OTEL_EXPORTER_OTLP_CERTIFICATE=/nonexistent/ca.pem"}, "OTEL_EXPORTER_OTLP_CERTIFICATE: open /nonexistent/ca.pem"},
	}
	store := traceTestStore(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := c.env
			if !strings.Contains(strings.Join(env, " "), "ENDPOINT=") {
				env = append(env, "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318")
			}
			clearOTelEnv(t, env...)
			code, out, errOut := cli(t, ctx, opLine(1, "env")+"\n", "--store", store, "record")
			assert.Equal(t, exitUsage, code, errOut)
			assert.Contains(t, errOut, c.want)
			assert.NotContains(t, out+errOut, secret)
			code, _, errOut = cli(t, ctx, "", "--store", store, "--sink", "memory://", "relay")
			assert.Equal(t, exitUsage, code, errOut)
			assert.Contains(t, errOut, c.want)
			assert.NotContains(t, errOut, secret)
		})
	}
	clearOTelEnv(t)
	code, out, errOut := cli(t, ctx, "", "--store", store, "status", "--json")
	require.Equal(t, 0, code, errOut)
	var st struct{ Counts map[string]int64 }
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	assert.Zero(t, st.Counts["pending"], "nothing was recorded")
}
