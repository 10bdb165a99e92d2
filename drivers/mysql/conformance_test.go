package mysql_test

import (
	"testing"

	"github.com/go-trustlog/trustlog/drivers/mysql/mysqltest"
	"github.com/go-trustlog/trustlog/internal/matrix"
)

// TestConformance runs the exported conformance suite on MySQL and MariaDB: the
// store suite, and the pair suite with each sink of the matrix
// (internal/matrix; TRUSTLOG_FULL=1 adds the real brokers).
func TestConformance(t *testing.T) {
	matrix.Run(t, mysqltest.Harness)
}
