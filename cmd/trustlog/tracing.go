package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/go-trustlog/trustlog/internal/redact"
)

// The OTLP protocols traces can be exported by (OTEL_EXPORTER_OTLP_PROTOCOL,
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL).
const (
	protoHTTPProtobuf = "http/protobuf" // the default, as the specification says
	protoHTTPJSON     = "http/json"
	protoGRPC         = "grpc"
)

// traceFlushTimeout bounds the export of the spans left when a command
// ends: a collector that does not answer delays the exit by at most this.
const traceFlushTimeout = 5 * time.Second

// traceSettings is what the environment says of trace export.
type traceSettings struct {
	on       bool
	protocol string // one of the proto* constants
	endpoint string // the URL set (the exporter reads it itself)
	warning  string // what to tell of a setting that does nothing
}

// traceEnv reads a variable of the OpenTelemetry environment: an empty or
// blank value is unset, as the specification says.
func traceEnv(name string) string { return strings.TrimSpace(os.Getenv(name)) }

// readTraceSettings reads the OpenTelemetry environment. Traces are off
// unless OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// is set (OTEL_TRACES_EXPORTER=otlp alone does not send them to a default
// endpoint: it only earns a warning); OTEL_TRACES_EXPORTER=none and
// OTEL_SDK_DISABLED=true turn them off whatever else is set. A variable
// the exporter would misread is a usage error naming it; its value is
// never quoted when it may hold a credential (headers, URLs).
func readTraceSettings() (traceSettings, error) {
	var s traceSettings
	if strings.EqualFold(traceEnv("OTEL_SDK_DISABLED"), "true") {
		return s, nil
	}
	explicit := false
	if v := traceEnv("OTEL_TRACES_EXPORTER"); v != "" {
		for _, name := range strings.Split(v, ",") {
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "none":
				return s, nil
			case "otlp":
				explicit = true
			default:
				return s, usagef("OTEL_TRACES_EXPORTER=%s: trustlog exports traces by OTLP only: want otlp or none", v)
			}
		}
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		v := traceEnv(name)
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return s, usagef("%s: want an http:// or https:// URL with a host, such as http://localhost:4318 (the value is not shown: it may hold a credential)", name)
		}
		if s.endpoint == "" {
			s.endpoint = v // the per-signal variable wins
		}
	}
	if s.endpoint == "" {
		if explicit {
			s.warning = "OTEL_TRACES_EXPORTER=otlp, and no OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: traces are off"
		}
		return s, nil
	}
	s.protocol = protoHTTPProtobuf
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := traceEnv(name); v != "" {
			switch v {
			case protoHTTPProtobuf, protoHTTPJSON, protoGRPC:
			default:
				return s, usagef("%s=%s: want %s, %s or %s", name, v, protoHTTPProtobuf, protoHTTPJSON, protoGRPC)
			}
			s.protocol = v
			break
		}
	}
	for _, sig := range []string{"", "TRACES_"} {
		prefix := "OTEL_EXPORTER_OTLP_" + sig
		if err := checkOTLPHeaders(prefix + "HEADERS"); err != nil {
			return s, err
		}
		if v := traceEnv(prefix + "TIMEOUT"); v != "" {
			if ms, err := strconv.Atoi(v); err != nil || ms < 0 {
				return s, usagef("%sTIMEOUT=%s: want milliseconds, a whole number", prefix, v)
			}
		}
		if v := traceEnv(prefix + "COMPRESSION"); v != "" && v != "gzip" && v != "none" {
			return s, usagef("%sCOMPRESSION=%s: want gzip or none", prefix, v)
		}
		for _, file := range []string{"CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY"} {
			if v := traceEnv(prefix + file); v != "" {
				if _, err := os.ReadFile(v); err != nil {
					return s, usagef("%s%s: %v", prefix, file, err)
				}
			}
		}
	}
	s.on = true
	return s, nil
}

// checkOTLPHeaders checks the headers variable name holds
// "key=value,key=value" with keys HTTP allows and values percent-encoded
// correctly: the exporter would log what it cannot read, an
// Authorization header's token with it. The error names the entry by its
// place, never its value.
func checkOTLPHeaders(name string) error {
	v := traceEnv(name)
	if v == "" {
		return nil
	}
	for i, entry := range strings.Split(v, ",") {
		key, value, ok := strings.Cut(entry, "=")
		key = strings.TrimSpace(key)
		switch {
		case !ok:
			return usagef("%s: entry %d has no '=': want key=value,key=value with values percent-encoded (values are not shown)", name, i+1)
		case !validHeaderKey(key):
			return usagef("%s: entry %d: the key is not a valid HTTP header name (values are not shown)", name, i+1)
		}
		if _, err := url.PathUnescape(value); err != nil {
			return usagef("%s: entry %d (%s): the value is not percent-encoded correctly (values are not shown)", name, i+1, key)
		}
	}
	return nil
}

// validHeaderKey reports whether key is an HTTP token (RFC 9110), as the
// exporter requires of a header name.
func validHeaderKey(key string) bool {
	if key == "" {
		return false
	}
	for _, c := range key {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.ContainsRune("!#$%&'*+-.^_`|~", c):
		default:
			return false
		}
	}
	return true
}

// tracing is a command's trace export: tp is nil when traces are off.
type tracing struct {
	tp *sdktrace.TracerProvider
}

// tracerProvider returns the TracerProvider the command gives core: the
// first call reads the environment (readTraceSettings) and, if traces are
// on, starts an OTLP exporter behind a batch span processor; later calls
// return the same. It returns nil, and creates nothing, when traces are
// off. stopTracing flushes and stops it when the command ends.
func (a *app) tracerProvider(ctx context.Context) (trace.TracerProvider, error) {
	if a.tracing == nil {
		s, err := readTraceSettings()
		if err != nil {
			return nil, err
		}
		if s.warning != "" {
			a.logger().Warn(s.warning)
		}
		if !s.on {
			a.tracing = &tracing{}
			return nil, nil
		}
		var exp sdktrace.SpanExporter
		switch s.protocol {
		case protoGRPC:
			exp, err = otlptracegrpc.New(ctx)
		case protoHTTPJSON:
			exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON))
		default:
			exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEncoding(otlptracehttp.EncodingProtobuf))
		}
		if err != nil {
			return nil, fmt.Errorf("traces: %s exporter: %w", s.protocol, err)
		}
		routeOTelErrors(a.logger())
		a.tracing = &tracing{tp: sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(a.telemetryResource(ctx)))}
		a.logger().Info("exporting traces by OTLP", "protocol", s.protocol, "endpoint", redact.URL(s.endpoint))
	}
	if a.tracing.tp == nil {
		return nil, nil // no typed nil: core would use it
	}
	return a.tracing.tp, nil
}

// stopTracing exports the spans left and stops the exporter, waiting at
// most traceFlushTimeout. run calls it when any command ends; it does
// nothing when traces are off.
func (a *app) stopTracing() {
	if a.tracing == nil || a.tracing.tp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), traceFlushTimeout)
	defer cancel()
	if err := a.tracing.tp.Shutdown(ctx); err != nil {
		a.logger().Warn("traces: not every span was exported before exit", "err", err)
	}
	a.tracing.tp = nil
}

// logger is a.log, or the default logger before setup made it.
func (a *app) logger() *slog.Logger {
	if a.log != nil {
		return a.log
	}
	return slog.Default()
}

// otelErrLog is the logger OpenTelemetry's errors go to (an export that
// failed, a malformed OTEL_TRACES_SAMPLER): the last command that started
// trace export's, whose handler scrubs secrets from what it logs.
var (
	otelErrLog      atomic.Pointer[slog.Logger]
	otelErrHandlerO sync.Once
)

// routeOTelErrors sends OpenTelemetry's errors to log, in the command's
// log format, instead of the standard library's logger.
func routeOTelErrors(log *slog.Logger) {
	otelErrLog.Store(log)
	otelErrHandlerO.Do(func() {
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			otelErrLog.Load().Warn("opentelemetry error", "err", err)
		}))
	})
}
