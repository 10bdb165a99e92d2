-- trustlog schema v3 for PostgreSQL: the indexes of the operator's search
-- (core.Inspector.Find). An object's history is its operations in seq
-- order, (doid, seq); an actor's operations likewise, (op_actor, seq);
-- the search pages by seq, so both serve "after this seq, in seq order"
-- as one range. The searches on the retry table (state, last error, last
-- change) read that table's own indexes. CREATE INDEX blocks writes to
-- the operation table while it reads the table (seconds per million
-- operations): on a large table, plan the upgrade accordingly.
CREATE INDEX IF NOT EXISTS {{.Prefix}}operation_doid_seq ON {{.Op}} (doid, seq);
--bun:split
CREATE INDEX IF NOT EXISTS {{.Prefix}}operation_actor_seq ON {{.Op}} (op_actor, seq);
