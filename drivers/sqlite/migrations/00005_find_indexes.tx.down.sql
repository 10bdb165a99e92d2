-- Undo trustlog schema v3 for SQLite: drop the search's indexes. No data
-- goes with them.
DROP INDEX IF EXISTS {{.Prefix}}operation_actor_seq;
--bun:split
DROP INDEX IF EXISTS {{.Prefix}}operation_doid_seq;
