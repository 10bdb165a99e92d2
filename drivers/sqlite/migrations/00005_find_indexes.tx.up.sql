-- trustlog schema v3 for SQLite: the indexes of the operator's search
-- (core.Inspector.Find), which pages by seq. An object's history is its
-- operations in seq order, (doid, seq); an actor's operations likewise,
-- (op_actor, seq), with created_at last so that a time range is checked
-- in the index, not on each row of the actor's it skips. The searches on
-- the retry table (state, last error, last change) read that table and
-- its own indexes.
CREATE INDEX IF NOT EXISTS {{.Prefix}}operation_doid_seq ON {{.Op}} (doid, seq);
--bun:split
CREATE INDEX IF NOT EXISTS {{.Prefix}}operation_actor_seq ON {{.Op}} (op_actor, seq, created_at);
