-- trustlog schema v2 for PostgreSQL, between its two halves: positions
-- live in narrow tables, not in the operation row. (Named 000025 so that
-- it sorts between 00002 and 00003: bun orders migrations by name, and the
-- positions migration 00003 sequences into these tables. A store already
-- past 00003 runs it in its next Migrate all the same, then 00006.)
--
-- Giving an operation its position used to UPDATE the operation row's
-- leaf_index. That column is indexed, so the update is never HOT: every
-- position wrote a whole new row version and an entry in each of the
-- table's seven indexes, and the sequencer ran at the rate of that UPDATE
-- (BENCHMARKS.md: 2.3-2.5 x fewer positions a second than these tables).
-- Now the row is written once, by the application's INSERT; a statement
-- trigger queues its seq in {{.Unsequenced}}, and the sequencer moves
-- each seq from the queue to {{.Position}} with its position.
CREATE TABLE IF NOT EXISTS {{.Position}} (
    leaf_index BIGINT   PRIMARY KEY,
    seq        BIGINT   NOT NULL UNIQUE,
    -- the operation's partition, copied so that a relay reads its
    -- partition in position order from this table's index alone
    part       SMALLINT NOT NULL
);
--bun:split
CREATE INDEX IF NOT EXISTS {{.Prefix}}trustlog_position_part ON {{.Position}} (part, leaf_index);
--bun:split
-- The operations that have no position yet, in seq order.
CREATE TABLE IF NOT EXISTS {{.Unsequenced}} (
    seq BIGINT PRIMARY KEY
);
--bun:split
-- Every INSERT into the operation table queues its rows, whoever writes
-- them (RecordTx, or the original SDK writing the table itself), in the
-- inserting transaction: committed together or not at all. The function
-- runs with the search_path of this migration, not the inserting
-- session's (which may not name the queue's schema), and as its owner,
-- so that a role allowed to insert operations needs no grant on the
-- queue.
CREATE OR REPLACE FUNCTION {{.QueueFunc}}() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO {{.Unsequenced}} (seq) SELECT seq FROM trustlog_new_rows;
    RETURN NULL;
END
$$;
--bun:split
DROP TRIGGER IF EXISTS {{.Prefix}}trustlog_queue ON {{.Op}};
--bun:split
CREATE TRIGGER {{.Prefix}}trustlog_queue AFTER INSERT ON {{.Op}}
    REFERENCING NEW TABLE AS trustlog_new_rows FOR EACH STATEMENT EXECUTE FUNCTION {{.QueueFunc}}();
--bun:split
-- The positions the operation rows hold, and a queue entry for every
-- other operation.
INSERT INTO {{.Position}} (leaf_index, seq, part)
    SELECT leaf_index, seq, part FROM {{.Op}} WHERE leaf_index IS NOT NULL ON CONFLICT DO NOTHING;
--bun:split
INSERT INTO {{.Unsequenced}} (seq)
    SELECT o.seq FROM {{.Op}} AS o WHERE NOT EXISTS (SELECT 1 FROM {{.Position}} AS x WHERE x.seq = o.seq)
    ON CONFLICT DO NOTHING;
