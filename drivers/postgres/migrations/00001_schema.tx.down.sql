-- Undo trustlog schema v1 for PostgreSQL: drop its tables (their indexes
-- and the operation table's identity sequence go with them). Refused while
-- they hold anything a rollback would lose: operations, the ledger's
-- Merkle log and checkpoints, cursors (an adopted original SDK table keeps
-- one; the log identity Migrate writes does not count). In this
-- transaction the tables are locked first, so nothing can be recorded
-- between the checks and the drops. The schema, the original
-- SDK's trustlog_retry and bun's migration tables stay. Stored hashes
-- exist only with a tree size above 0 (checked): the check reads the
-- tree, not the hash table, which a store of 00008 or later keeps in
-- runs until 00008's down migration, run before this one, moves them
-- back (the checks of a rollback run before any of it).
-- trustlog:lock LOCK TABLE {{.Op}}, {{.Cursor}}, {{.Hash}}, {{.Tree}}, {{.Checkpoint}} IN ACCESS EXCLUSIVE MODE
-- trustlog:refuse-if SELECT 'the operation table holds operations' FROM {{.Op}} LIMIT 1
-- trustlog:refuse-if SELECT 'the Merkle log is not empty (tree size above 0)' FROM {{.Tree}} WHERE size > 0 LIMIT 1
-- trustlog:refuse-if SELECT 'the checkpoint table holds checkpoints' FROM {{.Checkpoint}} LIMIT 1
-- trustlog:refuse-if SELECT 'the cursor table holds cursors' FROM {{.Cursor}} WHERE cursor_key <> 'trustlog.log_id' LIMIT 1
DROP TABLE IF EXISTS {{.Checkpoint}};
--bun:split
DROP TABLE IF EXISTS {{.Tree}};
--bun:split
DROP TABLE IF EXISTS {{.Hash}};
--bun:split
DROP TABLE IF EXISTS {{.Cursor}};
--bun:split
DROP TABLE IF EXISTS {{.Op}};
