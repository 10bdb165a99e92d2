-- Undo the second half of trustlog schema v2 for PostgreSQL: the
-- operation table gets its publishing columns and claim indexes back, and
-- the status view goes. Refused while the store holds operations: their
-- state would not come back.
-- trustlog:lock LOCK TABLE {{.Op}} IN ACCESS EXCLUSIVE MODE
-- trustlog:refuse-if SELECT 'the operation table holds operations' FROM {{.Op}} LIMIT 1
DROP VIEW IF EXISTS {{.Status}};
--bun:split
ALTER TABLE {{.Op}}
    ADD COLUMN IF NOT EXISTS state        SMALLINT    NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS attempts     INTEGER     NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS due_at       TIMESTAMPTZ NULL,
    ADD COLUMN IF NOT EXISTS claim_token  BIGINT      NULL,
    ADD COLUMN IF NOT EXISTS prev_token   BIGINT      NULL,
    ADD COLUMN IF NOT EXISTS last_error   TEXT        NULL,
    ADD COLUMN IF NOT EXISTS published_at TIMESTAMPTZ NULL;
--bun:split
ALTER TABLE {{.Op}} ADD COLUMN IF NOT EXISTS trustlog_status VARCHAR(16) GENERATED ALWAYS AS (
    CASE state WHEN 3 THEN 'TRUSTLOGGED' WHEN 4 THEN 'DEAD' ELSE 'NOT_TRUSTLOGGED' END) STORED;
--bun:split
CREATE INDEX IF NOT EXISTS {{.Prefix}}operation_pending ON {{.Op}} (seq) WHERE state = 0;
--bun:split
CREATE INDEX IF NOT EXISTS {{.Prefix}}operation_due ON {{.Op}} (due_at) WHERE state IN (1, 2);
--bun:split
CREATE INDEX IF NOT EXISTS {{.Prefix}}operation_doid ON {{.Op}} (doid, seq) WHERE state IN (0, 1, 2);
--bun:split
CREATE INDEX IF NOT EXISTS {{.Prefix}}operation_dead ON {{.Op}} (seq) WHERE state = 4;
