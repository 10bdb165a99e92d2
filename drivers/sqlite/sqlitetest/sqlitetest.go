// Package sqlitetest gives tests a fresh, migrated SQLite store in a
// temporary file: the conformance harness for the sqlite driver, and a
// store for anyone's tests that needs no server.
package sqlitetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
)

// URL returns the URL of a new database file in t's temporary directory.
func URL(t testing.TB) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "trustlog.db")
}

// Open opens and migrates a store at url and closes it when t ends.
func Open(t testing.TB, url string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("sqlitetest: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("sqlitetest: migrate: %v", err)
	}
	return s
}

// Harness returns a conformance harness over a fresh database file.
func Harness(t *testing.T) conformance.StoreHarness {
	url := URL(t)
	s := Open(t, url)
	return conformance.StoreHarness{
		Store:  s,
		DB:     s.Bun(),
		Reopen: func(t *testing.T) core.Store { return Open(t, url) },
	}
}
