-- trustlog schema v2 for PostgreSQL, first half: publishing by partition.
-- Every operation gets a partition (part, FNV-1a of its DOID modulo the
-- store's number of partitions, written by Insert; the positions
-- migration that follows fills it in for existing rows) and, from the
-- sequencer, a position (leaf_index). A relay owning a partition reads it
-- in position order above the partition's cursor; what the sink refused
-- waits in the retry table. The operation row is never written to publish
-- it. The old publishing columns stay until 00004, so that the positions
-- migration can carry each operation's state over.
ALTER TABLE {{.Op}} ADD COLUMN IF NOT EXISTS part SMALLINT NOT NULL DEFAULT 0;
--bun:split
-- A partition's operations in position order: what a relay reads.
CREATE INDEX IF NOT EXISTS {{.Prefix}}operation_part ON {{.Op}} (part, leaf_index) WHERE leaf_index IS NOT NULL;
--bun:split
-- One row per partition (Migrate creates them): the cursor is the
-- position up to which the partition is published or in the retry table;
-- owner and expires_at are a relay's lease on it, and generation counts
-- its owners so that an earlier owner's writes are refused.
CREATE TABLE IF NOT EXISTS {{.Partition}} (
    part       INTEGER      PRIMARY KEY,
    cursor     BIGINT       NOT NULL DEFAULT -1,
    generation BIGINT       NOT NULL DEFAULT 0,
    owner      VARCHAR(255) NOT NULL DEFAULT '',
    expires_at TIMESTAMPTZ  NULL,
    updated_at TIMESTAMPTZ  NOT NULL DEFAULT now()
);
--bun:split
-- Operations the sink refused (or that wait behind a refused one of their
-- DOID), by seq; doid, part and leaf_index are copied from the operation.
CREATE TABLE IF NOT EXISTS {{.Retry}} (
    seq        BIGINT       PRIMARY KEY,
    part       INTEGER      NOT NULL,
    doid       VARCHAR(512) NOT NULL,
    leaf_index BIGINT       NOT NULL,
    attempts   INTEGER      NOT NULL DEFAULT 0,
    due_at     TIMESTAMPTZ  NOT NULL,
    last_error TEXT         NULL,
    dead       BOOLEAN      NOT NULL DEFAULT false,
    updated_at TIMESTAMPTZ  NOT NULL
);
--bun:split
-- A partition's due retries.
CREATE INDEX IF NOT EXISTS {{.Prefix}}trustlog_retries_due ON {{.Retry}} (part, dead, due_at);
--bun:split
-- Strict order: is an earlier operation of this DOID waiting?
CREATE INDEX IF NOT EXISTS {{.Prefix}}trustlog_retries_doid ON {{.Retry}} (doid, leaf_index);
--bun:split
-- The dead list, in seq order.
CREATE INDEX IF NOT EXISTS {{.Prefix}}trustlog_retries_dead ON {{.Retry}} (dead, seq);
--bun:split
-- Live relays, which share the partitions among themselves.
CREATE TABLE IF NOT EXISTS {{.Relay}} (
    member     VARCHAR(255) PRIMARY KEY,
    expires_at TIMESTAMPTZ  NOT NULL
);
