-- trustlog schema v2 for PostgreSQL, second half: an operation's
-- publishing state is derived, never stored. The positions migration
-- (00003, in Go) gave every operation a position and carried its state
-- over to the partitions' cursors and the retry table; the columns and
-- indexes of claims go.
DROP INDEX IF EXISTS {{if .Schema}}"{{.Schema}}".{{end}}{{.Prefix}}operation_pending;
--bun:split
DROP INDEX IF EXISTS {{if .Schema}}"{{.Schema}}".{{end}}{{.Prefix}}operation_due;
--bun:split
DROP INDEX IF EXISTS {{if .Schema}}"{{.Schema}}".{{end}}{{.Prefix}}operation_doid;
--bun:split
DROP INDEX IF EXISTS {{if .Schema}}"{{.Schema}}".{{end}}{{.Prefix}}operation_dead;
--bun:split
ALTER TABLE {{.Op}} DROP COLUMN IF EXISTS trustlog_status, DROP COLUMN IF EXISTS state,
    DROP COLUMN IF EXISTS attempts, DROP COLUMN IF EXISTS due_at, DROP COLUMN IF EXISTS claim_token,
    DROP COLUMN IF EXISTS prev_token, DROP COLUMN IF EXISTS last_error, DROP COLUMN IF EXISTS published_at;
--bun:split
-- The original SDK's status of each operation, derived as core.State
-- documents: TRUSTLOGGED at or below its partition's cursor and not in
-- the retry table, DEAD dead in it, NOT_TRUSTLOGGED otherwise.
CREATE OR REPLACE VIEW {{.Status}} AS
SELECT o.op_id, o.seq, o.leaf_index,
    CAST(CASE WHEN r.seq IS NOT NULL THEN CASE WHEN r.dead THEN 'DEAD' ELSE 'NOT_TRUSTLOGGED' END
        WHEN o.leaf_index <= p.cursor THEN 'TRUSTLOGGED' ELSE 'NOT_TRUSTLOGGED' END AS VARCHAR(16)) AS trustlog_status
FROM {{.Op}} AS o LEFT JOIN {{.Retry}} AS r ON r.seq = o.seq LEFT JOIN {{.Partition}} AS p ON p.part = o.part;
