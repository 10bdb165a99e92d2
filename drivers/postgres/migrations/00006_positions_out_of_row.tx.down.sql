-- Undo schema v4 for PostgreSQL: the operation rows get their positions
-- back from {{.Position}}, with the indexes that served them, and the
-- status view reads them there again.
-- trustlog:lock LOCK TABLE {{.Op}} IN ACCESS EXCLUSIVE MODE
DROP VIEW IF EXISTS {{.Status}};
--bun:split
ALTER TABLE {{.Op}} ADD COLUMN IF NOT EXISTS leaf_index BIGINT NULL UNIQUE;
--bun:split
UPDATE {{.Op}} AS o SET leaf_index = x.leaf_index FROM {{.Position}} AS x WHERE x.seq = o.seq;
--bun:split
CREATE INDEX IF NOT EXISTS {{.Prefix}}operation_unsequenced ON {{.Op}} (seq) WHERE leaf_index IS NULL;
--bun:split
CREATE INDEX IF NOT EXISTS {{.Prefix}}operation_part ON {{.Op}} (part, leaf_index) WHERE leaf_index IS NOT NULL;
--bun:split
CREATE OR REPLACE VIEW {{.Status}} AS
SELECT o.op_id, o.seq, o.leaf_index,
    CAST(CASE WHEN r.seq IS NOT NULL THEN CASE WHEN r.dead THEN 'DEAD' ELSE 'NOT_TRUSTLOGGED' END
        WHEN o.leaf_index <= p.cursor THEN 'TRUSTLOGGED' ELSE 'NOT_TRUSTLOGGED' END AS VARCHAR(16)) AS trustlog_status
FROM {{.Op}} AS o LEFT JOIN {{.Retry}} AS r ON r.seq = o.seq LEFT JOIN {{.Partition}} AS p ON p.part = o.part;
