// Package legacytest is the shared test of adopting the original SDK's
// tables: each SQL driver creates them with its DDL, and this package
// fills them, migrates, and checks that every row was kept, that states,
// retry counts and cursors carried over, and that the relay then publishes
// every NOT_TRUSTLOGGED record (including one committed out of timestamp
// order, which the original cursor skipped) and nothing else.
package legacytest

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/internal/sqlstore"
	"github.com/go-trustlog/trustlog/sinks/memory"
)

// Tables names the original tables in the driver's quoting, and the
// status view trustlog puts in place of the operation's trustlog_status
// column.
type Tables struct {
	Operation, Cursor, Retry, Status string
}

// Row is an original operation row.
type Row struct {
	OpID, Status string
	CreatedAt    time.Time
	ClientIP     *string
}

var base = time.Date(2025, 12, 24, 7, 0, 0, 0, time.UTC)

// Fixture is what Fill writes.
var (
	published = []Row{
		{OpID: "01940000-0000-7000-8000-000000000001", Status: "TRUSTLOGGED", CreatedAt: base},
		{OpID: "01940000-0000-7000-8000-000000000002", Status: "TRUSTLOGGED", CreatedAt: base.Add(time.Second)},
	}
	pending = []Row{
		{OpID: "01940000-0000-7000-8000-000000000003", Status: "NOT_TRUSTLOGGED", CreatedAt: base.Add(2 * time.Second)},
		{OpID: "01940000-0000-7000-8000-000000000004", Status: "NOT_TRUSTLOGGED", CreatedAt: base.Add(3 * time.Second)},
	}
	// late was created before early but committed after it; the original
	// cursor had moved past its created_at by then and never published it.
	late  = Row{OpID: "01940000-0000-7000-8000-00000000000a", Status: "NOT_TRUSTLOGGED", CreatedAt: base.Add(10 * time.Second)}
	early = Row{OpID: "01940000-0000-7000-8000-00000000000b", Status: "NOT_TRUSTLOGGED", CreatedAt: base.Add(11 * time.Second)}
	// retried failed twice in the original retry worker.
	retried = Row{OpID: "01940000-0000-7000-8000-00000000000c", Status: "NOT_TRUSTLOGGED", CreatedAt: base.Add(4 * time.Second)}
)

// Fill writes the fixture into the original tables through db; ph returns
// the driver's n-th placeholder. late commits after early, in two
// concurrent transactions.
func Fill(t *testing.T, db *sql.DB, tb Tables, ph func(int) string) {
	t.Helper()
	ctx := context.Background()
	ins := fmt.Sprintf(`INSERT INTO %s (op_id, op_actor, doid, producer_id, request_body_hash, response_body_hash,
		op_hash, sign, op_source, op_type, do_prefix, do_repository, client_ip, server_ip, trustlog_status, created_at, updated_at)
		VALUES (%s, 'alice', %s, 'legacy-sdk', 'ABCDEF', NULL, 'legacyhash', 'legacysig', 'DOIP', 'Op.Create', '10.1000', 'my-repo', %s, NULL, %s, %s, %s)`,
		tb.Operation, ph(1), ph(2), ph(3), ph(4), ph(5), ph(6))
	exec := func(ex interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	}, r Row) {
		t.Helper()
		_, err := ex.ExecContext(ctx, ins, r.OpID, "10.1000/my-repo/"+r.OpID[30:], r.ClientIP, r.Status, r.CreatedAt, r.CreatedAt)
		require.NoError(t, err)
	}
	ip := "203.0.113.9"
	for _, r := range append(append([]Row{}, published...), pending...) {
		r.ClientIP = &ip
		exec(db, r)
	}
	exec(db, retried)
	txLate, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	exec(txLate, late)
	txEarly, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	exec(txEarly, early)
	require.NoError(t, txEarly.Commit())
	// The original worker saw early and moved its cursor past late's time.
	_, err = db.ExecContext(ctx, fmt.Sprintf(`INSERT INTO %s (cursor_key, cursor_value, updated_at) VALUES ('operation_scan', %s, %s)`,
		tb.Cursor, ph(1), ph(2)), early.CreatedAt.Format(time.RFC3339Nano), early.CreatedAt)
	require.NoError(t, err)
	require.NoError(t, txLate.Commit())
	_, err = db.ExecContext(ctx, fmt.Sprintf(`INSERT INTO %s (op_id, retry_count, last_error, next_retry_at, status, created_at, updated_at)
		VALUES (%s, 2, 'pulsar: send timeout', %s, 'RETRYING', %s, %s)`, tb.Retry, ph(1), ph(2), ph(3), ph(4)),
		retried.OpID, base.Add(time.Hour), base, base)
	require.NoError(t, err)
}

// Migrate adopts the filled tables through s's MigrateWithProgress and
// checks what it reported: migrations applied, and every adopted row
// given its op_hash.
func Migrate(t *testing.T, s core.Store) {
	t.Helper()
	pm, ok := s.(core.ProgressMigrator)
	require.True(t, ok, "the store reports migration progress")
	got := map[string]int64{}
	require.NoError(t, pm.MigrateWithProgress(context.Background(), func(step string, done int64) {
		assert.GreaterOrEqual(t, done, got[step], "progress of %q only grows", step)
		got[step] = done
	}))
	assert.Positive(t, got[sqlstore.StepMigrations], "migrations applied")
	rows := len(published) + len(pending) + len([]Row{late, early, retried})
	assert.Equal(t, int64(rows), got[sqlstore.StepAdopted], "every adopted row hashed")
}

// Check verifies the adopted store and relays it.
func Check(t *testing.T, s core.Store, db *sql.DB, tb Tables) {
	t.Helper()
	ctx := context.Background()
	st, err := s.Stats(ctx)
	require.NoError(t, err)
	unpublished := append(append([]Row{}, pending...), late, early, retried)
	assert.Equal(t, int64(len(published)), st.Counts[core.StatePublished], "TRUSTLOGGED rows are published")
	// The one the SDK had retried is in the retry table; the others are
	// pending, or in the retry table too where a tried one follows them
	// in their partition.
	assert.Equal(t, int64(len(unpublished)), st.Counts[core.StatePending]+st.Counts[core.StateRetrying],
		"NOT_TRUSTLOGGED rows are pending or retrying")
	assert.Equal(t, int64(len(published)+len(unpublished)), st.MaxSeq, "every row kept, numbered in created_at order")
	assert.Equal(t, st.MaxSeq, st.TreeSize, "every row has its position")

	r, err := s.Get(ctx, retried.OpID)
	require.NoError(t, err)
	assert.Equal(t, core.StateRetrying, r.State)
	assert.Equal(t, 2, r.Attempts, "the retry count carried over")
	assert.Equal(t, "pulsar: send timeout", r.LastError)
	assert.Equal(t, "ABCDEF", r.Op.RequestBodyHash, "values are kept as they were")
	assert.Equal(t, "", r.Op.ResponseBodyHash, "a NULL becomes empty")
	assert.Equal(t, retried.CreatedAt, r.Op.CreatedAt)
	assert.Equal(t, r.Op.ComputeHash(), r.Op.OpHash, "op_hash is the canonical hash")
	first, err := s.Get(ctx, published[0].OpID)
	require.NoError(t, err)
	assert.Equal(t, "203.0.113.9", first.Op.ClientIP)
	assert.Equal(t, int64(1), first.Seq)

	var legacyHash, status string
	require.NoError(t, db.QueryRowContext(ctx, "SELECT legacy_op_hash FROM "+tb.Operation+
		" WHERE op_id = '"+published[0].OpID+"'").Scan(&legacyHash))
	assert.Equal(t, "legacyhash", legacyHash, "the SDK's own hash is kept")
	for _, r := range append(append([]Row{}, published...), unpublished...) {
		require.NoError(t, db.QueryRowContext(ctx, "SELECT trustlog_status FROM "+tb.Status+
			" WHERE op_id = '"+r.OpID+"'").Scan(&status))
		assert.Equal(t, r.Status, status, "%s: the status view reads as trustlog_status did", r.OpID)
	}
	c, err := s.Cursor(ctx, "operation_scan")
	require.NoError(t, err)
	assert.Equal(t, early.CreatedAt.Format(time.RFC3339Nano), c.Value, "cursor rows are kept")

	require.NoError(t, s.Migrate(ctx), "migrating again changes nothing")
	st2, err := s.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, st.Counts, st2.Counts)

	// New operations continue the sequence.
	c2, err := core.NewClient(s, nil, core.Config{Strategy: core.StoreOnly})
	require.NoError(t, err)
	op := &core.Operation{Source: core.SourceIRP, Type: core.IRPType(core.IRPCreateHandle), DOID: "10.1000/new",
		DOPrefix: "10.1000", Actor: "bob", ProducerID: "trustlog"}
	require.NoError(t, c2.Record(ctx, op))
	nr, err := s.Get(ctx, op.OpID)
	require.NoError(t, err)
	assert.Greater(t, nr.Seq, st.MaxSeq)
	unpublished = append(unpublished, Row{OpID: op.OpID})

	sink := memory.New(memory.Faults{})
	e, err := core.NewEngine(s, sink, core.EngineConfig{PollInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx))
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, sink.WaitFor(wctx, len(unpublished)))
	require.NoError(t, e.Stop(ctx))
	got := map[string]int{}
	for _, m := range sink.Messages() {
		got[m.ID]++
		dec, err := core.DecodeSealed(m.Payload)
		require.NoError(t, err)
		assert.NoError(t, core.VerifyOperation(dec, false))
	}
	for _, r := range unpublished {
		assert.Equal(t, 1, got[r.OpID], "%s published once", r.OpID)
	}
	for _, r := range published {
		assert.Zero(t, got[r.OpID], "%s was already trustlogged and is not republished", r.OpID)
	}
	assert.Len(t, got, len(unpublished))
}
