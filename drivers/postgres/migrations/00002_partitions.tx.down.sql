-- Undo the first half of trustlog schema v2 for PostgreSQL: drop the
-- partition, retry and relay tables and the operation's partition.
-- Refused while the store holds operations or a Merkle log: the
-- partitions' cursors and the retry table are what says which of them
-- are published. The log identity written with the partitions goes too.
-- trustlog:lock LOCK TABLE {{.Op}}, {{.Tree}}, {{.Partition}}, {{.Retry}} IN ACCESS EXCLUSIVE MODE
-- trustlog:refuse-if SELECT 'the operation table holds operations' FROM {{.Op}} LIMIT 1
-- trustlog:refuse-if SELECT 'the Merkle log is not empty (tree size above 0)' FROM {{.Tree}} WHERE size > 0 LIMIT 1
-- trustlog:refuse-if SELECT 'the retry table holds operations' FROM {{.Retry}} LIMIT 1
DROP TABLE IF EXISTS {{.Relay}};
--bun:split
DROP TABLE IF EXISTS {{.Retry}};
--bun:split
DROP TABLE IF EXISTS {{.Partition}};
--bun:split
DROP INDEX IF EXISTS {{if .Schema}}"{{.Schema}}".{{end}}{{.Prefix}}operation_part;
--bun:split
ALTER TABLE {{.Op}} DROP COLUMN IF EXISTS part;
--bun:split
DELETE FROM {{.Cursor}} WHERE cursor_key = 'trustlog.log_id';
