package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	promexp "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/go-trustlog/trustlog/core"
)

// serveMetrics serves the engine's OpenTelemetry metrics in the Prometheus
// format on addr (/metrics) until ctx ends, and returns the telemetry to
// give the engine. The listener is open when it returns.
func (a *app) serveMetrics(ctx context.Context, addr string) (core.Telemetry, error) {
	reg := prometheus.NewRegistry()
	exp, err := promexp.New(promexp.WithRegisterer(reg))
	if err != nil {
		return core.Telemetry{}, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return core.Telemetry{}, usagef("--metrics-addr %s: %v", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
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
	a.log.Info("serving metrics", "url", fmt.Sprintf("http://%s/metrics", ln.Addr()))
	return core.Telemetry{MeterProvider: mp}, nil
}
