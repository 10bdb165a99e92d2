-- trustlog schema v2 for MySQL and MariaDB: text compares byte for byte.
--
-- v1 used utf8mb4_bin, which is a PAD SPACE collation: trailing spaces are
-- ignored in comparisons, so the DOIDs "10.1/x" and "10.1/x " were one
-- object for strict order (a failing operation on one held back the
-- other), and an op_id or cursor name with trailing spaces found the row
-- without them. PostgreSQL and SQLite keep such values apart, and so does
-- Go. This turns every stored text column into a NO PAD binary collation
-- (code point order, every byte significant):
--
--   - MariaDB (>= 10.2): utf8mb4_nopad_bin, in the MariaDB-only comment
--     /*M! ... */, which MySQL skips;
--   - MySQL (>= 8.0.17): utf8mb4_0900_bin, in /*!80000 ... */, which
--     MySQL runs and MariaDB skips (it ignores MySQL executable comments
--     of versions 5.7 to 9.x). MySQL 8.0.1 to 8.0.16 has no NO PAD binary
--     collation and stops here with "Unknown collation: 'utf8mb4_0900_bin'".
--
-- Existing rows stay as they are: a PAD SPACE unique key that held no two
-- equal values holds none under NO PAD either, so rebuilding the keys
-- cannot fail. Re-collating indexed columns rebuilds the table (a copy
-- that blocks writes to it while it runs: on a large operation table, plan
-- the upgrade accordingly). MySQL commits DDL statement by statement; every
-- statement here is idempotent, and bun records the migration only when
-- all of them succeeded, so an interrupted run is simply run again.
-- Columns the original SDK's adopted tables keep (legacy_op_hash,
-- legacy_sign) and the derived trustlog_status are never compared by
-- trustlog and keep their collation.
{{$bin := "/*M! utf8mb4_nopad_bin */ /*!80000 utf8mb4_0900_bin */"}}
ALTER TABLE {{.Op}}
    MODIFY op_id              VARCHAR(64)   COLLATE {{$bin}} NOT NULL,
    MODIFY op_actor           VARCHAR(256)  COLLATE {{$bin}} NOT NULL,
    MODIFY doid               VARCHAR(512)  COLLATE {{$bin}} NOT NULL,
    MODIFY producer_id        VARCHAR(256)  COLLATE {{$bin}} NOT NULL,
    MODIFY request_body_hash  VARCHAR(128)  COLLATE {{$bin}} NOT NULL DEFAULT '',
    MODIFY response_body_hash VARCHAR(128)  COLLATE {{$bin}} NOT NULL DEFAULT '',
    MODIFY hash_alg           VARCHAR(16)   COLLATE {{$bin}} NOT NULL DEFAULT 'sha256',
    MODIFY op_hash            VARCHAR(64)   COLLATE {{$bin}} NOT NULL DEFAULT '',
    MODIFY signer             VARCHAR(256)  COLLATE {{$bin}} NOT NULL DEFAULT '',
    MODIFY sign               VARCHAR(1024) COLLATE {{$bin}} NOT NULL DEFAULT '',
    MODIFY op_source          VARCHAR(8)    COLLATE {{$bin}} NOT NULL,
    MODIFY op_type            VARCHAR(128)  COLLATE {{$bin}} NOT NULL,
    MODIFY do_prefix          VARCHAR(128)  COLLATE {{$bin}} NOT NULL,
    MODIFY do_repository      VARCHAR(256)  COLLATE {{$bin}} NOT NULL DEFAULT '',
    MODIFY client_ip          VARCHAR(64)   COLLATE {{$bin}} NULL,
    MODIFY server_ip          VARCHAR(64)   COLLATE {{$bin}} NULL,
    MODIFY last_error         TEXT          COLLATE {{$bin}} NULL,
    DEFAULT CHARACTER SET = utf8mb4 COLLATE = {{$bin}};
--bun:split
ALTER TABLE {{.Cursor}}
    MODIFY cursor_key   VARCHAR(255) COLLATE {{$bin}} NOT NULL,
    MODIFY cursor_value TEXT         COLLATE {{$bin}} NOT NULL,
    DEFAULT CHARACTER SET = utf8mb4 COLLATE = {{$bin}};
--bun:split
ALTER TABLE {{.Checkpoint}}
    MODIFY root_hash VARCHAR(64) COLLATE {{$bin}} NOT NULL,
    MODIFY note      TEXT        COLLATE {{$bin}} NOT NULL,
    DEFAULT CHARACTER SET = utf8mb4 COLLATE = {{$bin}};
