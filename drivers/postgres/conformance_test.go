package postgres_test

import (
	"testing"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/postgres"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/internal/matrix"
)

// The operator console's search is part of the driver: the conformance
// suite checks core.Inspector only on stores that implement it, so this
// fails to compile if the driver stops.
var _ core.Inspector = (*postgres.Store)(nil)

// TestConformance runs the exported conformance suite on PostgreSQL: the
// store suite, and the pair suite with each sink of the matrix
// (internal/matrix; TRUSTLOG_FULL=1 adds the real brokers).
func TestConformance(t *testing.T) {
	matrix.Run(t, postgrestest.Harness)
}

// The sequencer overlaps its appends on PostgreSQL (BENCHMARKS.md): this
// fails to compile if the driver stops offering it.
var _ core.OverlappingAppender = (*postgres.Store)(nil)
