package postgres_test

import (
	"testing"

	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/internal/matrix"
)

// TestMain runs the tests with more of them in parallel than go test's
// default on a small machine (matrix.Main).
func TestMain(m *testing.M) { matrix.Main(m) }

// TestConformance runs the exported conformance suite on PostgreSQL: the
// store suite, and the pair suite with each sink of the matrix
// (internal/matrix; TRUSTLOG_FULL=1 adds the real brokers).
func TestConformance(t *testing.T) {
	matrix.Run(t, postgrestest.Harness)
}
