-- trustlog schema v5 for PostgreSQL: the store's INSERT queues its own
-- operations, in the same statement; the trigger queues only the rows
-- of every other INSERT.
--
-- 000025's statement trigger queued every insert: a transition table,
-- a PL/pgSQL call, a security-definer switch and a search_path change
-- per statement cost a one-operation RecordTx 5-6 % more than the
-- same INSERT without it (BENCHMARKS.md). The store's INSERT now writes
-- queued = true and the queue rows itself ("WITH ins AS (INSERT ...
-- RETURNING seq) INSERT INTO the queue ..."); a row trigger whose WHEN
-- is false for those rows costs nothing, and still queues each row that
-- anyone else inserts without the column (the original SDK, a hand-made
-- INSERT, a COPY): committed together with it or not at all.
ALTER TABLE {{.Op}} ADD COLUMN IF NOT EXISTS queued BOOLEAN NOT NULL DEFAULT false;
--bun:split
DROP TRIGGER IF EXISTS {{.Prefix}}trustlog_queue ON {{.Op}};
--bun:split
-- Runs with the search_path of this migration and as its owner, as in
-- 000025: a role allowed to insert operations needs no grant on the
-- queue, whatever its own search_path.
CREATE OR REPLACE FUNCTION {{.QueueFunc}}() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO {{.Unsequenced}} (seq) VALUES (NEW.seq);
    RETURN NULL;
END
$$;
--bun:split
CREATE TRIGGER {{.Prefix}}trustlog_queue AFTER INSERT ON {{.Op}}
    FOR EACH ROW WHEN (NOT NEW.queued) EXECUTE FUNCTION {{.QueueFunc}}();
