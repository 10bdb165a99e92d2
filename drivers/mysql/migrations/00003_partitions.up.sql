-- trustlog schema v3 for MySQL and MariaDB, first half: publishing by
-- partition. Every operation gets a partition (part, FNV-1a of its DOID
-- modulo the store's number of partitions, written by Insert; the
-- positions migration that follows fills it in for existing rows) and,
-- from the sequencer, a position (leaf_index). A relay owning a partition
-- reads it in position order above the partition's cursor; what the sink
-- refused waits in the retry table. The operation row is never written to
-- publish it. The old publishing columns stay until 00005, so that the
-- positions migration can carry each operation's state over.
--
-- MySQL commits DDL statement by statement and has no ADD COLUMN IF NOT
-- EXISTS (MariaDB has): the column is added through a statement prepared
-- from information_schema, so an interrupted run is simply run again.
-- The (part, leaf_index) index is a partition's operations in position
-- order: what a relay reads. Text uses the NO PAD binary collation of
-- 00002 (the retry table's doid is compared with the operation's); CURSOR
-- and MEMBER are reserved words.
{{$bin := "/*M! utf8mb4_nopad_bin */ /*!80000 utf8mb4_0900_bin */"}}
SET @trustlog_ddl = IF(EXISTS (SELECT 1 FROM information_schema.COLUMNS
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{{.Prefix}}operation' AND COLUMN_NAME = 'part'), 'DO 0',
    'ALTER TABLE {{.Op}} ADD COLUMN part SMALLINT NOT NULL DEFAULT 0, ADD KEY {{.Prefix}}operation_part (part, leaf_index)');
--bun:split
PREPARE trustlog_ddl FROM @trustlog_ddl;
--bun:split
EXECUTE trustlog_ddl;
--bun:split
DEALLOCATE PREPARE trustlog_ddl;
--bun:split
-- One row per partition (Migrate creates them): the cursor is the
-- position up to which the partition is published or in the retry table;
-- owner and expires_at are a relay's lease on it, and generation counts
-- its owners so that an earlier owner's writes are refused.
CREATE TABLE IF NOT EXISTS {{.Partition}} (
    part       INT          NOT NULL PRIMARY KEY,
    `cursor`   BIGINT       NOT NULL DEFAULT -1,
    generation BIGINT       NOT NULL DEFAULT 0,
    owner      VARCHAR(255) NOT NULL DEFAULT '',
    expires_at DATETIME(6)  NULL,
    updated_at DATETIME(6)  NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = {{$bin}};
--bun:split
-- Operations the sink refused (or that wait behind a refused one of their
-- DOID), by seq; doid, part and leaf_index are copied from the operation.
CREATE TABLE IF NOT EXISTS {{.Retry}} (
    seq        BIGINT       NOT NULL PRIMARY KEY,
    part       INT          NOT NULL,
    doid       VARCHAR(512) NOT NULL,
    leaf_index BIGINT       NOT NULL,
    attempts   INT          NOT NULL DEFAULT 0,
    due_at     DATETIME(6)  NOT NULL,
    last_error TEXT         NULL,
    dead       TINYINT      NOT NULL DEFAULT 0,
    updated_at DATETIME(6)  NOT NULL,
    -- a partition's due retries
    KEY {{.Prefix}}trustlog_retries_due (part, dead, due_at),
    -- strict order: is an earlier operation of this DOID waiting?
    KEY {{.Prefix}}trustlog_retries_doid (doid, leaf_index),
    -- the dead list, in seq order
    KEY {{.Prefix}}trustlog_retries_dead (dead, seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = {{$bin}};
--bun:split
-- Live relays, which share the partitions among themselves.
CREATE TABLE IF NOT EXISTS {{.Relay}} (
    `member`   VARCHAR(255) NOT NULL PRIMARY KEY,
    expires_at DATETIME(6)  NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = {{$bin}};
