package postgres_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/drivers/postgres/postgrestest"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
	"github.com/go-trustlog/trustlog/internal/sqlstore/storetest"
)

// TestAppendReadsNoWholeTable: the sequencer's append (SetLeavesParts,
// given the partitions) and a foreign Append (SetLeaves, which looks each
// operation's partition up by index) take their batch off the queue
// through an index, in a store just filled (no statistics yet: autovacuum has not
// analyzed it) as once analyzed. A plan that hashed the whole queue and
// the whole operation table made each append of 4,000 on 200,000 take
// 224 ms instead of 37, and the relay drain from scratch at 26k ops/s
// instead of 43k (BENCHMARKS.md).
func TestAppendReadsNoWholeTable(t *testing.T) {
	s := storetest.Open(t, postgrestest.NewSchema(t))
	names := s.Names()
	for _, table := range []string{names.Op, names.Unsequenced} {
		// Statistics stay as the test leaves them.
		s.Exec(t, "ALTER TABLE "+table+" SET (autovacuum_enabled = false)")
	}
	// 5,000 recorded, copied to 200,000 (the table's trigger queues the
	// copies, as it queues any insert that is not trustlog's own).
	const batch = 4000
	record(t, s, 0, 5000)
	cols := sqlstore.InsertColumns
	s.Exec(t, "INSERT INTO "+names.Op+" ("+cols+") SELECT op_id || '-' || g, "+
		strings.SplitN(cols, ", ", 2)[1]+" FROM "+names.Op+", generate_series(1, 39) AS g")
	seqs, leaves, parts := make([]int64, batch), make([]int64, batch), make([]int, batch)
	for i := range seqs {
		seqs[i], leaves[i], parts[i] = int64(i+1), int64(i), i%16
	}
	// The sequencer's append gives the partitions (SetLeavesParts); a
	// foreign Append does not (SetLeaves looks each one up).
	type statement struct {
		name, q string
		args    []any
	}
	var statements []statement
	for _, withParts := range []bool{false, true} {
		q, table, args := s.Dialect().Queries.SetLeaves, "", []any(nil)
		if withParts {
			q = s.Dialect().Queries.SetLeavesParts
			table, args = s.Dialect().LeafPartTable(seqs, leaves, parts)
		} else {
			table, args = s.Dialect().LeafTable(seqs, leaves)
		}
		q, err := s.Render(q)
		require.NoError(t, err)
		name := "SetLeaves"
		if withParts {
			name = "SetLeavesParts"
		}
		statements = append(statements, statement{name, "EXPLAIN (ANALYZE, COSTS OFF) " + strings.Replace(q, "{leaves}", table, 1), args})
	}
	plan := func(q string, args []any) string {
		tx, err := s.DB().BeginTx(context.Background(), nil)
		require.NoError(t, err)
		defer tx.Rollback()
		rows, err := tx.Query(q, args...)
		require.NoError(t, err)
		defer rows.Close()
		var b strings.Builder
		for rows.Next() {
			var line string
			require.NoError(t, rows.Scan(&line))
			if len(line) > 160 { // the batch's seqs, bound in a condition
				line = line[:160] + "…"
			}
			b.WriteString(line + "\n")
		}
		require.NoError(t, rows.Err())
		return b.String()
	}
	for _, when := range []string{"without statistics", "analyzed"} {
		if when == "analyzed" {
			s.Exec(t, "ANALYZE "+names.Op)
			s.Exec(t, "ANALYZE "+names.Unsequenced)
		}
		for _, st := range statements {
			p := plan(st.q, st.args)
			assert.NotContains(t, p, "Seq Scan", "%s, %s: the append reads a whole table:\n%s", st.name, when, p)
			assert.Regexp(t, `Delete on \S+ u \(actual time=\S+ rows=`+strconv.Itoa(batch)+` loops=1\)`, p, "%s, %s: the append took its batch:\n%s", st.name, when, p)
		}
	}
}
