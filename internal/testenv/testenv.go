// Package testenv decides whether tests that need a server (a database,
// Apache Kafka, Apache Pulsar) run, skip or fail: they run when the server
// answers, skip with one line saying how to start one or point them at one
// when it does not, and fail instead of skipping when
// TRUSTLOG_REQUIRE_SERVICES=1 (CI). scripts/services.sh starts all of
// them on their default addresses.
package testenv

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-trustlog/trustlog/internal/redact"
)

// Required reports whether TRUSTLOG_REQUIRE_SERVICES=1.
func Required() bool { return os.Getenv("TRUSTLOG_REQUIRE_SERVICES") == "1" }

// Server describes a server tests may use.
type Server struct {
	// Name is shown in skip and failure messages ("PostgreSQL").
	Name string
	// Env is the variable that overrides Default.
	Env string
	// Default is the DSN of the local server.
	Default string
	// Driver is the database/sql driver name to ping with.
	Driver string
	// ToDriverDSN converts the DSN into the database/sql driver's form.
	ToDriverDSN func(string) (string, error)
	// Ping, when set, checks the server instead of a database/sql ping
	// (brokers).
	Ping func(ctx context.Context, dsn string) error
	// Service is its name for scripts/services.sh ("kafka").
	Service string

	once sync.Once
	err  error
}

// DSN returns the server's DSN from Env or Default.
func (s *Server) DSN() string {
	if v := os.Getenv(s.Env); v != "" {
		return v
	}
	return s.Default
}

// Need returns the DSN if the server answers; otherwise it skips t (or
// fails it when services are required). The ping runs once per process.
func (s *Server) Need(t testing.TB) string {
	t.Helper()
	dsn := s.DSN()
	s.once.Do(func() { s.err = s.ping(dsn) })
	if s.err != nil {
		msg := s.Name + " not reachable at " + redact.URL(dsn) + ": " + redact.URL(s.err.Error()) +
			" (start it with `scripts/services.sh up " + s.Service + "` or set " + s.Env + " to point the tests at a server)"
		if Required() {
			t.Fatal(msg + "; TRUSTLOG_REQUIRE_SERVICES=1 makes this a failure")
		}
		t.Skip(msg)
	}
	return dsn
}

// ping asks the server until it answers, for up to a minute: a server
// on a machine whose cores are busy with other work may take seconds to
// answer. A refused connection (nothing listens there) or an error that
// is not about time ends it at once, so a machine without the server
// skips quickly.
func (s *Server) ping(dsn string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := s.pingOnce(dsn)
		if err == nil || errors.Is(err, syscall.ECONNREFUSED) || !slow(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Second)
	}
}

// slow reports whether err is about time: a deadline or a timeout.
func slow(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() ||
		strings.Contains(err.Error(), "timeout") || strings.Contains(err.Error(), "deadline exceeded")
}

func (s *Server) pingOnce(dsn string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s.Ping != nil {
		return s.Ping(ctx, dsn)
	}
	d, err := s.ToDriverDSN(dsn)
	if err != nil {
		return err
	}
	db, err := sql.Open(s.Driver, d)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.PingContext(ctx)
}
