package sqlite_test

import (
	"testing"

	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/internal/matrix"
)

// TestConformance runs the exported conformance suite on SQLite: the
// store suite, and the pair suite with each sink of the matrix
// (internal/matrix; TRUSTLOG_FULL=1 adds the real brokers).
func TestConformance(t *testing.T) {
	matrix.Run(t, sqlitetest.Harness, true)
}
