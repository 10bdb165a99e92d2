package benchkit

import (
	"testing"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/drivers/sqlite/sqlitetest"
)

// SinkStores are the stores the sink benchmarks relay from: a SQLite file
// and a PostgreSQL schema, each fresh per iteration.
func SinkStores() []NamedTarget {
	return []NamedTarget{
		{Name: "sqlite", Target: Target{NewURL: func(tb testing.TB) string { return sqlitetest.URL(tb) },
			Open: func(tb testing.TB, url string) core.Store { return sqlitetest.Open(tb, url) }}},
		{Name: "postgres", Target: Target{NewURL: func(tb testing.TB) string { return postgrestest.NewSchema(tb) },
			Open: func(tb testing.TB, url string) core.Store { return postgrestest.Open(tb, url) }}},
	}
}
