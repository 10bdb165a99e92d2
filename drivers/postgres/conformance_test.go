package postgres_test

import (
	"testing"

	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/internal/matrix"
)

// TestConformance runs the exported conformance suite on PostgreSQL: the
// store suite, and the pair suite with each sink of the matrix
// (internal/matrix; TRUSTLOG_FULL=1 adds the real brokers).
func TestConformance(t *testing.T) {
	matrix.Run(t, postgrestest.Harness)
}
