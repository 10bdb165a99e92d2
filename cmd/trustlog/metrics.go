package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	promexp "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/go-trustlog/trustlog/core"
)

// serveMetrics serves, on addr until ctx ends, the engine's OpenTelemetry
// metrics with the Go runtime's and the process's in the Prometheus format
// (/metrics), and the relay's liveness (/healthz) and readiness (/readyz,
// see relayHealth). It returns the telemetry to give the engine and the
// readiness to attach the relay's store and engine to once they are open.
// The listener is open when it returns.
func (a *app) serveMetrics(ctx context.Context, addr string) (core.Telemetry, *relayHealth, error) {
	reg, err := processRegistry()
	if err != nil {
		return core.Telemetry{}, nil, err
	}
	exp, err := promexp.New(promexp.WithRegisterer(reg))
	if err != nil {
		return core.Telemetry{}, nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(a.telemetryResource(ctx)))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return core.Telemetry{}, nil, usagef("--metrics-addr %s: %v", addr, err)
	}
	health := &relayHealth{}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", health.healthz)
	mux.HandleFunc("/readyz", health.readyz)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("metrics server stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		mp.Shutdown(sctx)
	}()
	a.log.Info("serving metrics", "url", fmt.Sprintf("http://%s/metrics", ln.Addr()),
		"health", fmt.Sprintf("http://%s/healthz", ln.Addr()), "ready", fmt.Sprintf("http://%s/readyz", ln.Addr()))
	return core.Telemetry{MeterProvider: mp}, health, nil
}

// processRegistry is a Prometheus registry holding the Go runtime's and
// the process's metrics.
func processRegistry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	return reg, nil
}

// telemetryResource describes this process to the metrics' readers
// (target_info in Prometheus) and in the traces it exports (tracing.go):
// service.name "trustlog", service.version the module version it was
// built at, and the SDK's own attributes. OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES win.
func (a *app) telemetryResource(ctx context.Context) *resource.Resource {
	attrs := []attribute.KeyValue{attribute.String("service.name", "trustlog")}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		attrs = append(attrs, attribute.String("service.version", bi.Main.Version))
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(attrs...), resource.WithFromEnv())
	if err != nil {
		a.logger().Warn("telemetry resource", "err", err) // a malformed OTEL_RESOURCE_ATTRIBUTES: what parsed is kept
	}
	if res == nil {
		res = resource.NewSchemaless(attrs...)
	}
	return res
}

// The states of a readiness check: the relay is ready when every check is
// ok or none.
const (
	readyOK      = "ok"      // passed
	readyFail    = "fail"    // failed: see its error
	readyUnknown = "unknown" // not checked: the relay is not running yet, or a check it needs failed
	readyNone    = "none"    // does not apply (no sink: the relay only sequences the ledger)
)

// readyProbeOpID is the op_id /readyz looks up: no operation has it (it is
// not a valid op_id), so the lookup only shows the operation table
// answers.
const readyProbeOpID = "00000000-0000-0000-0000-000000000000"

// readyTimeout bounds the checks of one /readyz request.
const readyTimeout = 5 * time.Second

// relayHealth answers /healthz and /readyz for a relay. The relay
// attaches its store, sink and engine once they are open; until then it
// is not ready.
type relayHealth struct {
	mu     sync.Mutex
	store  core.Store
	sink   core.Sink
	engine *core.Engine
	// schemaOK is when every migration was last seen applied: they are
	// listed again only schemaRecheck later (the operation table is
	// queried every time).
	schemaOK time.Time
}

// schemaRecheck is how long /readyz trusts having seen every migration
// applied (listing them takes several statements; a probe comes every few
// seconds).
const schemaRecheck = time.Minute

// attach gives h what the relay opened. It does nothing on a nil h (no
// --metrics-addr).
func (h *relayHealth) attach(store core.Store, sink core.Sink, e *core.Engine) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.store, h.sink, h.engine = store, sink, e
}

// healthz answers 200 "ok" while the process runs.
func (h *relayHealth) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "ok")
}

// readyCheck is one readiness check's outcome.
type readyCheck struct {
	State string `json:"state"`
	Error string `json:"error,omitempty"`
	// Since is when the sink's outage began.
	Since *time.Time `json:"since,omitempty"`
}

// readiness is /readyz's body.
type readiness struct {
	Ready  bool                  `json:"ready"`
	Checks map[string]readyCheck `json:"checks"`
}

// readyz answers 200 when the relay is ready: its store answers (a
// ping), its schema is current (the operation table answers a lookup and
// every migration is applied) and its sink is not in an outage (the
// engine has not seen it refuse a batch as unavailable since it last
// accepted one); 503 otherwise. The JSON body names each check and its
// state.
func (h *relayHealth) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	body := h.checkReady(ctx)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !body.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(body)
}

// checkReady runs the readiness checks.
func (h *relayHealth) checkReady(ctx context.Context) readiness {
	h.mu.Lock()
	store, sink, e, schemaOK := h.store, h.sink, h.engine, h.schemaOK
	h.mu.Unlock()
	out := readiness{Checks: map[string]readyCheck{}}
	notYet := readyCheck{State: readyUnknown, Error: "the relay has not opened its store and sink yet"}
	if store == nil {
		out.Checks["store"], out.Checks["schema"], out.Checks["sink"] = notYet, notYet, notYet
		return out
	}
	out.Checks["store"] = readyOutcome(readyPing(ctx, store))
	if out.Checks["store"].State != readyOK {
		out.Checks["schema"] = readyCheck{State: readyUnknown, Error: "the store does not answer"}
	} else {
		listed := time.Since(schemaOK) < schemaRecheck
		err := readySchema(ctx, store, listed)
		if err == nil && !listed {
			h.mu.Lock()
			h.schemaOK = time.Now()
			h.mu.Unlock()
		}
		out.Checks["schema"] = readyOutcome(err)
	}
	switch {
	case sink == nil:
		out.Checks["sink"] = readyCheck{State: readyNone}
	case e == nil:
		out.Checks["sink"] = notYet
	default:
		if since, down := e.SinkDown(); down {
			since = since.UTC()
			out.Checks["sink"] = readyCheck{State: readyFail, Since: &since,
				Error: fmt.Sprintf("unavailable for %s", time.Since(since).Round(time.Millisecond))}
		} else {
			out.Checks["sink"] = readyCheck{State: readyOK}
		}
	}
	out.Ready = true
	for _, c := range out.Checks {
		if c.State != readyOK && c.State != readyNone {
			out.Ready = false
		}
	}
	return out
}

func readyOutcome(err error) readyCheck {
	if err != nil {
		return readyCheck{State: readyFail, Error: redactErr(err)}
	}
	return readyCheck{State: readyOK}
}

// readyPing checks the store's database answers: a ping where the store
// exposes its connection pool, otherwise a lookup.
func readyPing(ctx context.Context, store core.Store) error {
	if p, ok := store.(interface{ DB() *sql.DB }); ok {
		return p.DB().PingContext(ctx)
	}
	if _, err := store.Get(ctx, readyProbeOpID); err != nil && !errors.Is(err, core.ErrNotFound) {
		return err
	}
	return nil
}

// readySchema checks the store's schema is current: the operation table
// answers a lookup by op_id and, unless applied says they were just seen
// so, every migration the store lists is applied. The lookup comes first, so that a
// store never migrated is not given even the migration tables by a probe.
func readySchema(ctx context.Context, store core.Store, applied bool) error {
	if _, err := store.Get(ctx, readyProbeOpID); err != nil && !errors.Is(err, core.ErrNotFound) {
		return fmt.Errorf("the operation table does not answer (run `trustlog migrate up`, or relay with --migrate): %w", err)
	}
	if applied {
		return nil
	}
	pending, err := pendingMigrations(ctx, store)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return fmt.Errorf("migrations not applied (run `trustlog migrate up`, or relay with --migrate): %s", strings.Join(pending, ", "))
	}
	if sp, ok := store.(schemaProblemer); ok {
		problems, err := sp.SchemaProblems(ctx)
		if err != nil {
			return err
		}
		if len(problems) > 0 {
			return errors.New(strings.Join(problems, "; "))
		}
	}
	return nil
}
