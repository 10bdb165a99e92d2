-- trustlog schema v4 for MySQL and MariaDB: the indexes of the operator's
-- search (core.Inspector.Find), which pages by seq. An object's history
-- is its operations in seq order, (doid, seq); an actor's operations
-- likewise, (op_actor, seq), with created_at last so that a time range is
-- checked in the index (index condition pushdown), not on each row of
-- the actor's it skips. The searches on the retry table (state, last
-- error, last change) read that table and its own indexes.
--
-- MySQL has no CREATE INDEX IF NOT EXISTS (MariaDB has): one ALTER TABLE
-- adds the indexes still missing, built from information_schema, so an
-- interrupted run is simply run again. InnoDB builds them in place while
-- the application keeps writing.
SET @trustlog_ddl = (SELECT COALESCE(CONCAT('ALTER TABLE {{.Op}} ', GROUP_CONCAT(d ORDER BY k SEPARATOR ', ')), 'DO 0') FROM (
    SELECT 1 AS k, 'ADD KEY {{.Prefix}}operation_doid_seq (doid, seq)' AS d FROM DUAL
        WHERE NOT EXISTS (SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()
            AND TABLE_NAME = '{{.Prefix}}operation' AND INDEX_NAME = '{{.Prefix}}operation_doid_seq')
    UNION ALL
    SELECT 2, 'ADD KEY {{.Prefix}}operation_actor_seq (op_actor, seq, created_at)' FROM DUAL
        WHERE NOT EXISTS (SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()
            AND TABLE_NAME = '{{.Prefix}}operation' AND INDEX_NAME = '{{.Prefix}}operation_actor_seq')
) AS x);
--bun:split
PREPARE trustlog_ddl FROM @trustlog_ddl;
--bun:split
EXECUTE trustlog_ddl;
--bun:split
DEALLOCATE PREPARE trustlog_ddl;
