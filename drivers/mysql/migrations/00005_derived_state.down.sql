-- Undo the second half of trustlog schema v3 for MySQL and MariaDB: the
-- operation table gets its publishing columns and claim indexes back, and
-- the status view goes. Refused while the store holds operations: their
-- state would not come back. MySQL commits DDL statement by statement, so
-- stop every writer first; each statement is idempotent.
-- trustlog:refuse-if SELECT 'the operation table holds operations' FROM {{.Op}} LIMIT 1
DROP VIEW IF EXISTS {{.Status}};
--bun:split
SET @trustlog_ddl = IF(EXISTS (SELECT 1 FROM information_schema.COLUMNS
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{{.Prefix}}operation' AND COLUMN_NAME = 'state'), 'DO 0',
    'ALTER TABLE {{.Op}} ADD COLUMN state TINYINT NOT NULL DEFAULT 0, ADD COLUMN attempts INT NOT NULL DEFAULT 0,
        ADD COLUMN due_at DATETIME(6) NULL, ADD COLUMN claim_token BIGINT NULL, ADD COLUMN prev_token BIGINT NULL,
        ADD COLUMN last_error TEXT NULL, ADD COLUMN published_at DATETIME(6) NULL,
        ADD COLUMN trustlog_status VARCHAR(16) AS (
            CASE state WHEN 3 THEN ''TRUSTLOGGED'' WHEN 4 THEN ''DEAD'' ELSE ''NOT_TRUSTLOGGED'' END) VIRTUAL,
        ADD KEY {{.Prefix}}operation_state_seq (state, seq), ADD KEY {{.Prefix}}operation_state_due (state, due_at),
        ADD KEY {{.Prefix}}operation_doid (doid, state, seq)');
--bun:split
PREPARE trustlog_ddl FROM @trustlog_ddl;
--bun:split
EXECUTE trustlog_ddl;
--bun:split
DEALLOCATE PREPARE trustlog_ddl;
