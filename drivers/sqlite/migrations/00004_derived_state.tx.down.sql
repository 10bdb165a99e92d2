-- Undo the second half of trustlog schema v2 for SQLite: the operation
-- table gets its publishing columns and claim indexes back, and the
-- status view goes. Refused while the store holds operations: their state
-- would not come back. The check runs again in this transaction.
-- trustlog:refuse-if SELECT 'the operation table holds operations' FROM {{.Op}} LIMIT 1
DROP VIEW IF EXISTS {{.Status}};
--bun:split
ALTER TABLE {{.Op}} ADD COLUMN state INTEGER NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE {{.Op}} ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
--bun:split
ALTER TABLE {{.Op}} ADD COLUMN due_at INTEGER NULL;
--bun:split
ALTER TABLE {{.Op}} ADD COLUMN claim_token INTEGER NULL;
--bun:split
ALTER TABLE {{.Op}} ADD COLUMN prev_token INTEGER NULL;
--bun:split
ALTER TABLE {{.Op}} ADD COLUMN last_error TEXT NULL;
--bun:split
ALTER TABLE {{.Op}} ADD COLUMN published_at INTEGER NULL;
--bun:split
ALTER TABLE {{.Op}} ADD COLUMN trustlog_status TEXT GENERATED ALWAYS AS (
    CASE state WHEN 3 THEN 'TRUSTLOGGED' WHEN 4 THEN 'DEAD' ELSE 'NOT_TRUSTLOGGED' END) VIRTUAL;
--bun:split
CREATE INDEX IF NOT EXISTS {{.Prefix}}operation_pending ON {{.Op}} (seq) WHERE state = 0;
--bun:split
CREATE INDEX IF NOT EXISTS {{.Prefix}}operation_due ON {{.Op}} (due_at) WHERE state IN (1, 2);
--bun:split
CREATE INDEX IF NOT EXISTS {{.Prefix}}operation_doid ON {{.Op}} (doid, seq) WHERE state IN (0, 1, 2);
--bun:split
CREATE INDEX IF NOT EXISTS {{.Prefix}}operation_dead ON {{.Op}} (seq) WHERE state = 4;
