package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/go-trustlog/trustlog/internal/sqlstore"
)

// adoptOriginal turns the original SDK's tables (see the postgres driver's
// upgrade.go for the assumed DDL; MySQL used the same columns with
// TIMESTAMP times) into trustlog's schema in place, keeping every row.
//
// MySQL commits each DDL statement on its own, so there is no one
// transaction to lean on: every step checks whether it is still needed,
// and the last one (trustlog_status becomes a generated column) marks the
// adoption done. A crash part-way leaves a table the next Migrate resumes.
// The data steps are idempotent (they only touch rows still in their old
// form), so a resumed run neither loses nor republishes anything.
func adoptOriginal(ctx context.Context, st *sqlstore.Store) error {
	n := st.Names()
	db := st.DB()
	table := n.Prefix + "operation"
	cols, err := columns(ctx, db, table)
	if err != nil {
		return err
	}
	status, legacy := cols["trustlog_status"]
	if !legacy || status.generated {
		return nil
	}
	t := n.Op
	var steps []string
	add := func(q ...string) { steps = append(steps, q...) }
	if _, ok := cols["legacy_op_hash"]; !ok {
		add(`ALTER TABLE ` + t + ` RENAME COLUMN op_hash TO legacy_op_hash, RENAME COLUMN sign TO legacy_sign`)
	}
	if _, ok := cols["seq"]; !ok {
		add(`ALTER TABLE `+t+` ADD COLUMN seq BIGINT NULL`,
			`UPDATE `+t+` AS o JOIN (SELECT op_id, ROW_NUMBER() OVER (ORDER BY created_at, op_id) AS rn FROM `+t+`) AS r
				ON o.op_id = r.op_id SET o.seq = r.rn`)
	}
	if !strings.Contains(cols["seq"].extra, "auto_increment") {
		add(`ALTER TABLE ` + t + ` DROP PRIMARY KEY, MODIFY seq BIGINT NOT NULL AUTO_INCREMENT, ADD PRIMARY KEY (seq),
			ADD UNIQUE KEY ` + n.Prefix + `operation_op_id (op_id)`)
	}
	for _, col := range []string{"op_actor", "doid", "producer_id", "request_body_hash", "response_body_hash",
		"op_source", "op_type", "do_prefix", "do_repository"} {
		add(`UPDATE ` + t + ` SET ` + col + ` = '' WHERE ` + col + ` IS NULL`)
	}
	add(`UPDATE `+t+` SET created_at = UTC_TIMESTAMP(6) WHERE created_at IS NULL`,
		`UPDATE `+t+` SET updated_at = created_at WHERE updated_at IS NULL`,
		`ALTER TABLE `+t+` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`,
		`ALTER TABLE `+t+` MODIFY op_id VARCHAR(64) NOT NULL, MODIFY op_actor VARCHAR(256) NOT NULL,
			MODIFY doid VARCHAR(512) NOT NULL, MODIFY producer_id VARCHAR(256) NOT NULL,
			MODIFY request_body_hash VARCHAR(128) NOT NULL DEFAULT '', MODIFY response_body_hash VARCHAR(128) NOT NULL DEFAULT '',
			MODIFY op_source VARCHAR(8) NOT NULL, MODIFY op_type VARCHAR(128) NOT NULL, MODIFY do_prefix VARCHAR(128) NOT NULL,
			MODIFY do_repository VARCHAR(256) NOT NULL DEFAULT '', MODIFY client_ip VARCHAR(64) NULL,
			MODIFY server_ip VARCHAR(64) NULL, MODIFY created_at DATETIME(6) NOT NULL, MODIFY updated_at DATETIME(6) NOT NULL`)
	// This run renames op_hash and sign (the SDK's) and adds trustlog's.
	renaming := cols["legacy_op_hash"].dataType == ""
	var adds []string
	for _, c := range []struct{ name, def string }{
		{"hash_alg", "VARCHAR(16) NOT NULL DEFAULT 'sha256'"}, {"op_hash", "VARCHAR(64) NOT NULL DEFAULT ''"},
		{"signer", "VARCHAR(256) NOT NULL DEFAULT ''"}, {"sign", "VARCHAR(1024) NOT NULL DEFAULT ''"},
		{"state", "TINYINT NOT NULL DEFAULT 0"}, {"attempts", "INT NOT NULL DEFAULT 0"},
		{"due_at", "DATETIME(6) NULL"}, {"claim_token", "BIGINT NULL"}, {"prev_token", "BIGINT NULL"}, {"last_error", "TEXT NULL"},
		{"published_at", "DATETIME(6) NULL"}, {"leaf_index", "BIGINT NULL"},
	} {
		_, present := cols[c.name]
		if renaming && (c.name == "op_hash" || c.name == "sign") {
			present = false
		}
		if !present {
			adds = append(adds, "ADD COLUMN "+c.name+" "+c.def)
		}
	}
	if len(adds) > 0 {
		add(`ALTER TABLE ` + t + ` ` + strings.Join(adds, ", "))
	}
	// Data: only rows still in their original form are touched.
	add(`UPDATE ` + t + ` SET state = 3, published_at = updated_at WHERE trustlog_status = 'TRUSTLOGGED' AND state = 0`)
	retry, err := columns(ctx, db, n.Prefix+"trustlog_retry")
	if err != nil {
		return err
	}
	if _, ok := retry["retry_count"]; ok {
		add(`UPDATE ` + t + ` AS o JOIN ` + "`" + n.Prefix + "trustlog_retry`" + ` AS r ON r.op_id = o.op_id
			SET o.attempts = COALESCE(r.retry_count, 0), o.last_error = r.last_error
			WHERE o.state = 0 AND o.attempts = 0 AND o.last_error IS NULL`)
	}
	keys, err := indexes(ctx, db, table)
	if err != nil {
		return err
	}
	var idx []string
	for name, def := range map[string]string{
		n.Prefix + "operation_state_seq": "(state, seq)",
		n.Prefix + "operation_state_due": "(state, due_at)",
		n.Prefix + "operation_doid":      "(doid, state, seq)",
		n.Prefix + "operation_leaf":      "(leaf_index)",
	} {
		if !keys[name] {
			kind := "ADD KEY "
			if def == "(leaf_index)" {
				kind = "ADD UNIQUE KEY "
			}
			idx = append(idx, kind+name+" "+def)
		}
	}
	if len(idx) > 0 {
		add(`ALTER TABLE ` + t + ` ` + strings.Join(idx, ", "))
	}
	cursor, err := columns(ctx, db, n.Prefix+"trustlog_cursor")
	if err != nil {
		return err
	}
	if c, ok := cursor["updated_at"]; ok && c.dataType != "datetime" {
		add(`UPDATE `+n.Cursor+` SET cursor_value = '' WHERE cursor_value IS NULL`,
			`ALTER TABLE `+n.Cursor+` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`,
			`ALTER TABLE `+n.Cursor+` MODIFY cursor_key VARCHAR(255) NOT NULL, MODIFY cursor_value TEXT NOT NULL,
				MODIFY updated_at DATETIME(6) NOT NULL`)
	}
	// Last: the status becomes derived. This marks the adoption done.
	// Indexes on the old column (the SDK's scan index) go with it.
	statusIdx, err := indexesOn(ctx, db, table, "trustlog_status")
	if err != nil {
		return err
	}
	drop := ""
	for _, name := range statusIdx {
		drop += "DROP INDEX `" + name + "`, "
	}
	add(`ALTER TABLE ` + t + ` ` + drop + `DROP COLUMN trustlog_status, ADD COLUMN trustlog_status VARCHAR(16) AS (
		CASE state WHEN 3 THEN 'TRUSTLOGGED' WHEN 4 THEN 'DEAD' ELSE 'NOT_TRUSTLOGGED' END) VIRTUAL`)
	for _, q := range steps {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("adopt original schema: %w (in: %s)", err, q)
		}
	}
	return nil
}

type column struct {
	dataType  string
	extra     string
	generated bool
}

// columns returns a table's columns in the current database (empty if
// the table does not exist).
func columns(ctx context.Context, db *sql.DB, table string) (map[string]column, error) {
	rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, EXTRA, COALESCE(GENERATION_EXPRESSION, '')
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := map[string]column{}
	for rows.Next() {
		var name, gen string
		var c column
		if err := rows.Scan(&name, &c.dataType, &c.extra, &gen); err != nil {
			return nil, err
		}
		c.dataType, c.extra = strings.ToLower(c.dataType), strings.ToLower(c.extra)
		c.generated = gen != "" || strings.Contains(c.extra, "generated") || strings.Contains(c.extra, "virtual")
		cols[name] = c
	}
	return cols, rows.Err()
}

// indexesOn returns the names of a table's indexes that use a column.
func indexesOn(ctx context.Context, db *sql.DB, table, column string) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?`, table, column)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	return out, rows.Err()
}

// indexes returns the names of a table's indexes.
func indexes(ctx context.Context, db *sql.DB, table string) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, `SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		out[name] = true
	}
	return out, rows.Err()
}
