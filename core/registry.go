package core

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/go-trustlog/trustlog/internal/redact"
)

// StoreDriver opens stores for the URL schemes it was registered under.
type StoreDriver interface {
	OpenStore(ctx context.Context, url string) (Store, error)
}

// SinkDriver opens sinks for the URL schemes it was registered under.
type SinkDriver interface {
	OpenSink(ctx context.Context, url string) (Sink, error)
}

// ReplaySource is a sink opened only to read it back (see ReplayOpener).
type ReplaySource interface {
	Replayer
	Close() error
}

// ReplayOpener is implemented by sink drivers that can open a sink only
// to read it back, with no producer: `trustlog verify-sink` then runs
// beside relays publishing under the same URL (a Pulsar producer name is
// held by one connection at a time).
type ReplayOpener interface {
	OpenReplayer(ctx context.Context, url string) (ReplaySource, error)
}

// StoreDriverFunc adapts a function to StoreDriver.
type StoreDriverFunc func(ctx context.Context, url string) (Store, error)

// OpenStore calls f.
func (f StoreDriverFunc) OpenStore(ctx context.Context, url string) (Store, error) {
	return f(ctx, url)
}

// SinkDriverFunc adapts a function to SinkDriver.
type SinkDriverFunc func(ctx context.Context, url string) (Sink, error)

// OpenSink calls f.
func (f SinkDriverFunc) OpenSink(ctx context.Context, url string) (Sink, error) {
	return f(ctx, url)
}

var (
	registryMu sync.RWMutex
	drivers    = map[string]StoreDriver{}
	sinks      = map[string]SinkDriver{}
)

// RegisterDriver makes a store driver available under a URL scheme. Drivers
// call it from init, so a blank import selects them, as with database/sql.
// It panics if the driver is nil or the scheme is already registered.
func RegisterDriver(scheme string, d StoreDriver) {
	register(drivers, "driver", scheme, d, d == nil)
}

// RegisterSink makes a sink available under a URL scheme, like
// RegisterDriver.
func RegisterSink(scheme string, s SinkDriver) {
	register(sinks, "sink", scheme, s, s == nil)
}

func register[T any](m map[string]T, what, scheme string, v T, isNil bool) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if isNil {
		panic("trustlog: Register" + what + " " + scheme + " is nil")
	}
	scheme = strings.ToLower(scheme)
	if _, dup := m[scheme]; dup {
		panic("trustlog: Register" + what + " called twice for " + scheme)
	}
	m[scheme] = v
}

// Drivers returns the registered store schemes, sorted.
func Drivers() []string { return names(drivers) }

// Sinks returns the registered sink schemes, sorted.
func Sinks() []string { return names(sinks) }

func names[T any](m map[string]T) []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// OpenStore opens a store by URL through the driver registered for its
// scheme.
func OpenStore(ctx context.Context, url string) (Store, error) {
	d, err := lookup(drivers, "store", url)
	if err != nil {
		return nil, err
	}
	return d.OpenStore(ctx, url)
}

// OpenSink opens a sink by URL through the sink registered for its scheme.
func OpenSink(ctx context.Context, url string) (Sink, error) {
	s, err := lookup(sinks, "sink", url)
	if err != nil {
		return nil, err
	}
	return s.OpenSink(ctx, url)
}

// OpenReplayer opens the sink at url to read it back: through the
// driver's ReplayOpener if it has one, otherwise as a sink that must be a
// Replayer (ErrNoReplay if it is not).
func OpenReplayer(ctx context.Context, url string) (ReplaySource, error) {
	d, err := lookup(sinks, "sink", url)
	if err != nil {
		return nil, err
	}
	if ro, ok := d.(ReplayOpener); ok {
		return ro.OpenReplayer(ctx, url)
	}
	s, err := d.OpenSink(ctx, url)
	if err != nil {
		return nil, err
	}
	rs, ok := s.(ReplaySource)
	if !ok {
		s.Close()
		return nil, fmt.Errorf("%w: %s", ErrNoReplay, Scheme(url))
	}
	return rs, nil
}

func lookup[T any](m map[string]T, what, url string) (T, error) {
	var zero T
	scheme := Scheme(url)
	if scheme == "" {
		if strings.ContainsRune(url, '@') {
			// Without a scheme, redaction cannot tell a password from
			// the rest: quote nothing.
			return zero, fmt.Errorf("%w: %s URL has no scheme (like sqlite:, postgres://)", ErrInvalidURL, what)
		}
		return zero, fmt.Errorf("%w: %s URL %q has no scheme (like sqlite:, postgres://)", ErrInvalidURL, what, redact.URL(url))
	}
	registryMu.RLock()
	v, ok := m[scheme]
	registryMu.RUnlock()
	if !ok {
		return zero, fmt.Errorf("%w: no %s registered for %q (registered: %s); import the package that registers it, e.g. one of trustlog's own: %s",
			ErrUnknownScheme, what, scheme, strings.Join(names(m), ", "), builtin[what])
	}
	return v, nil
}

// builtin names the packages of this module that register each kind, for
// the error about an unknown scheme.
var builtin = map[string]string{
	"store": `_ "github.com/go-trustlog/trustlog/drivers/sqlite" (sqlite:, file:), .../drivers/postgres (postgres:, postgresql:), .../drivers/mysql (mysql:, mariadb:)`,
	"sink":  `_ "github.com/go-trustlog/trustlog/sinks/memory" (memory:), .../sinks/kafka (kafka:), .../sinks/pulsar (pulsar:, pulsar+ssl:)`,
}

// Scheme returns the lower-cased scheme of a store or sink URL (the text
// before the first ":"), or "" if it has none.
func Scheme(url string) string {
	i := strings.IndexByte(url, ':')
	if i <= 0 {
		return ""
	}
	s := strings.ToLower(url[:i])
	for _, c := range s {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.') {
			return ""
		}
	}
	return s
}

// loggerKey is the context key of ContextWithLogger.
type loggerKey struct{}

// ContextWithLogger returns ctx carrying logger for the stores and sinks
// opened with it by URL (OpenStore, OpenSink, OpenReplayer; Open does it
// with Config.Logger): a URL has no room for a logger, and without one
// their logs (and those of the client libraries under them) would go to
// slog.Default() instead of where the application sends its own.
func ContextWithLogger(ctx context.Context, logger *slog.Logger) context.Context {
	if logger == nil {
		return ctx
	}
	return context.WithValue(ctx, loggerKey{}, logger)
}

// LoggerFrom returns the logger ctx carries (see ContextWithLogger), or
// slog.Default().
func LoggerFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}
