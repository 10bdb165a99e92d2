-- trustlog schema v2 for SQLite, second half: an operation's publishing
-- state is derived, never stored. The positions migration (00003, in Go)
-- gave every operation a position and carried its state over to the
-- partitions' cursors and the retry table; the columns and indexes of
-- claims go (SQLite drops a column only once nothing refers to it: the
-- indexes and the derived status first). Dropping a column rewrites the
-- table.
DROP INDEX IF EXISTS {{.Prefix}}operation_pending;
--bun:split
DROP INDEX IF EXISTS {{.Prefix}}operation_due;
--bun:split
DROP INDEX IF EXISTS {{.Prefix}}operation_doid;
--bun:split
DROP INDEX IF EXISTS {{.Prefix}}operation_dead;
--bun:split
ALTER TABLE {{.Op}} DROP COLUMN trustlog_status;
--bun:split
ALTER TABLE {{.Op}} DROP COLUMN state;
--bun:split
ALTER TABLE {{.Op}} DROP COLUMN attempts;
--bun:split
ALTER TABLE {{.Op}} DROP COLUMN due_at;
--bun:split
ALTER TABLE {{.Op}} DROP COLUMN claim_token;
--bun:split
ALTER TABLE {{.Op}} DROP COLUMN prev_token;
--bun:split
ALTER TABLE {{.Op}} DROP COLUMN last_error;
--bun:split
ALTER TABLE {{.Op}} DROP COLUMN published_at;
--bun:split
-- The original SDK's status of each operation, derived as core.State
-- documents: TRUSTLOGGED at or below its partition's cursor and not in
-- the retry table, DEAD dead in it, NOT_TRUSTLOGGED otherwise.
DROP VIEW IF EXISTS {{.Status}};
--bun:split
CREATE VIEW {{.Status}} AS
SELECT o.op_id, o.seq, o.leaf_index,
    CASE WHEN r.seq IS NOT NULL THEN CASE WHEN r.dead THEN 'DEAD' ELSE 'NOT_TRUSTLOGGED' END
        WHEN o.leaf_index <= p.cursor THEN 'TRUSTLOGGED' ELSE 'NOT_TRUSTLOGGED' END AS trustlog_status
FROM {{.Op}} AS o LEFT JOIN {{.Retry}} AS r ON r.seq = o.seq LEFT JOIN {{.Partition}} AS p ON p.part = o.part;
