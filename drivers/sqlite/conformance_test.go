package sqlite_test

import (
	"testing"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/sqlite"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
	"github.com/go-trustlog/trustlog/internal/matrix"
)

// TestMain runs the tests with more of them in parallel than go test's
// default on a small machine (matrix.Main): SQLite's pair tests mostly
// wait, on the one writer and on leases. The server drivers keep the
// default: their servers' connection limits (PostgreSQL's 100) are shared
// with every other package's tests.
func TestMain(m *testing.M) { matrix.Main(m) }

// The operator console's search is part of the driver: the conformance
// suite checks core.Inspector only on stores that implement it, so this
// fails to compile if the driver stops.
var _ core.Inspector = (*sqlite.Store)(nil)

// TestConformance runs the exported conformance suite on SQLite: the
// store suite, and the pair suite with each sink of the matrix
// (internal/matrix; TRUSTLOG_FULL=1 adds the real brokers).
func TestConformance(t *testing.T) {
	matrix.Run(t, sqlitetest.Harness)
}
