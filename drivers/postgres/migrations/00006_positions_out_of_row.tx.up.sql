-- trustlog schema v4 for PostgreSQL: the operation row no longer has a
-- position column; its position is in {{.Position}} (000025). Dropping
-- leaf_index drops its three indexes (the unique one, the partition's
-- order, the unsequenced rows) with it, and the status view, which read
-- it, reads the positions table instead.
-- trustlog:lock LOCK TABLE {{.Op}} IN ACCESS EXCLUSIVE MODE
DROP VIEW IF EXISTS {{.Status}};
--bun:split
-- Positions a relay of the previous release gave while this upgrade ran
-- (it should have been stopped; if it was not, nothing is lost).
INSERT INTO {{.Position}} (leaf_index, seq, part)
    SELECT leaf_index, seq, part FROM {{.Op}} WHERE leaf_index IS NOT NULL ON CONFLICT DO NOTHING;
--bun:split
DELETE FROM {{.Unsequenced}} AS u USING {{.Position}} AS x WHERE x.seq = u.seq;
--bun:split
ALTER TABLE {{.Op}} DROP COLUMN IF EXISTS leaf_index;
--bun:split
-- The original SDK's status of each operation, derived as core.State
-- documents: TRUSTLOGGED at or below its partition's cursor and not in
-- the retry table, DEAD dead in it, NOT_TRUSTLOGGED otherwise.
CREATE OR REPLACE VIEW {{.Status}} AS
SELECT o.op_id, o.seq, x.leaf_index,
    CAST(CASE WHEN r.seq IS NOT NULL THEN CASE WHEN r.dead THEN 'DEAD' ELSE 'NOT_TRUSTLOGGED' END
        WHEN x.leaf_index <= p.cursor THEN 'TRUSTLOGGED' ELSE 'NOT_TRUSTLOGGED' END AS VARCHAR(16)) AS trustlog_status
FROM {{.Op}} AS o LEFT JOIN {{.Position}} AS x ON x.seq = o.seq
    LEFT JOIN {{.Retry}} AS r ON r.seq = o.seq LEFT JOIN {{.Partition}} AS p ON p.part = x.part;
