-- Undo the first half of trustlog schema v3 for MySQL and MariaDB: drop
-- the partition, retry and relay tables and the operation's partition.
-- Refused while the store holds operations or a Merkle log: the
-- partitions' cursors and the retry table are what says which of them
-- are published. The log identity written with the partitions goes too.
-- MySQL commits DDL statement by statement, so stop every writer first;
-- each statement is idempotent.
-- trustlog:refuse-if SELECT 'the operation table holds operations' FROM {{.Op}} LIMIT 1
-- trustlog:refuse-if SELECT 'the Merkle log is not empty (tree size above 0)' FROM {{.Tree}} WHERE size > 0 LIMIT 1
-- trustlog:refuse-if SELECT 'the retry table holds operations' FROM {{.Retry}} LIMIT 1
DROP TABLE IF EXISTS {{.Relay}};
--bun:split
DROP TABLE IF EXISTS {{.Retry}};
--bun:split
DROP TABLE IF EXISTS {{.Partition}};
--bun:split
SET @trustlog_ddl = IF(EXISTS (SELECT 1 FROM information_schema.COLUMNS
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{{.Prefix}}operation' AND COLUMN_NAME = 'part'),
    'ALTER TABLE {{.Op}} DROP KEY {{.Prefix}}operation_part, DROP COLUMN part', 'DO 0');
--bun:split
PREPARE trustlog_ddl FROM @trustlog_ddl;
--bun:split
EXECUTE trustlog_ddl;
--bun:split
DEALLOCATE PREPARE trustlog_ddl;
--bun:split
DELETE FROM {{.Cursor}} WHERE cursor_key = 'trustlog.log_id';
