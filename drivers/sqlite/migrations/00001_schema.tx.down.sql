-- Undo trustlog schema v1 for SQLite: drop its tables (their indexes go
-- with them). Refused while they hold anything a rollback would lose:
-- operations, the ledger's Merkle log and checkpoints, cursors (an adopted
-- original SDK table keeps one). The checks run again in this transaction,
-- before the drops. The lease and bun's migration tables stay.
-- trustlog:refuse-if SELECT 'the operation table holds operations' FROM {{.Op}} LIMIT 1
-- trustlog:refuse-if SELECT 'the Merkle log holds stored hashes' FROM {{.Hash}} LIMIT 1
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
