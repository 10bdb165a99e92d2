-- trustlog schema v3 for MySQL and MariaDB, second half: an operation's
-- publishing state is derived, never stored. The positions migration
-- (00004, in Go) gave every operation a position and carried its state
-- over to the partitions' cursors and the retry table; the columns and
-- indexes of claims go, in one ALTER TABLE built from what is still
-- there (so an interrupted run is simply run again).
SET @trustlog_ddl = (SELECT COALESCE(CONCAT('ALTER TABLE {{.Op}} ', GROUP_CONCAT(d ORDER BY k SEPARATOR ', ')), 'DO 0') FROM (
    SELECT DISTINCT 1 AS k, CONCAT('DROP INDEX `', INDEX_NAME, '`') AS d FROM information_schema.STATISTICS
        WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{{.Prefix}}operation'
        AND INDEX_NAME IN ('{{.Prefix}}operation_state_seq', '{{.Prefix}}operation_state_due', '{{.Prefix}}operation_doid')
    UNION ALL
    SELECT 2, CONCAT('DROP COLUMN `', COLUMN_NAME, '`') FROM information_schema.COLUMNS
        WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{{.Prefix}}operation'
        AND COLUMN_NAME IN ('trustlog_status', 'state', 'attempts', 'due_at', 'claim_token', 'prev_token', 'last_error', 'published_at')
) AS x);
--bun:split
PREPARE trustlog_ddl FROM @trustlog_ddl;
--bun:split
EXECUTE trustlog_ddl;
--bun:split
DEALLOCATE PREPARE trustlog_ddl;
--bun:split
-- The original SDK's status of each operation, derived as core.State
-- documents: TRUSTLOGGED at or below its partition's cursor and not in
-- the retry table, DEAD dead in it, NOT_TRUSTLOGGED otherwise.
CREATE OR REPLACE VIEW {{.Status}} AS
SELECT o.op_id, o.seq, o.leaf_index,
    CASE WHEN r.seq IS NOT NULL THEN CASE WHEN r.dead THEN 'DEAD' ELSE 'NOT_TRUSTLOGGED' END
        WHEN o.leaf_index <= p.`cursor` THEN 'TRUSTLOGGED' ELSE 'NOT_TRUSTLOGGED' END AS trustlog_status
FROM {{.Op}} AS o LEFT JOIN {{.Retry}} AS r ON r.seq = o.seq LEFT JOIN {{.Partition}} AS p ON p.part = o.part;
