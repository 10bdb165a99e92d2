package mysql_test

import (
	"testing"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/mysql"
	"github.com/go-trustlog/trustlog/drivers/mysql/mysqltest"
	"github.com/go-trustlog/trustlog/internal/matrix"
)

// The operator console's search is part of the driver: the conformance
// suite checks core.Inspector only on stores that implement it, so this
// fails to compile if the driver stops.
var _ core.Inspector = (*mysql.Store)(nil)

// TestConformance runs the exported conformance suite on MySQL and MariaDB: the
// store suite, and the pair suite with each sink of the matrix
// (internal/matrix; TRUSTLOG_FULL=1 adds the real brokers).
func TestConformance(t *testing.T) {
	matrix.Run(t, mysqltest.Harness)
}
