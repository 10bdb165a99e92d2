-- Undo trustlog schema v4 for MySQL and MariaDB: drop the search's
-- indexes, those still there (an interrupted run is simply run again).
-- No data goes with them.
SET @trustlog_ddl = (SELECT COALESCE(CONCAT('ALTER TABLE {{.Op}} ', GROUP_CONCAT(d ORDER BY d SEPARATOR ', ')), 'DO 0') FROM (
    SELECT DISTINCT CONCAT('DROP INDEX `', INDEX_NAME, '`') AS d FROM information_schema.STATISTICS
        WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{{.Prefix}}operation'
        AND INDEX_NAME IN ('{{.Prefix}}operation_doid_seq', '{{.Prefix}}operation_actor_seq')
) AS x);
--bun:split
PREPARE trustlog_ddl FROM @trustlog_ddl;
--bun:split
EXECUTE trustlog_ddl;
--bun:split
DEALLOCATE PREPARE trustlog_ddl;
