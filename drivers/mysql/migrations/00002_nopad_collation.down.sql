-- Undo trustlog schema v2 for MySQL and MariaDB: text goes back to
-- utf8mb4_bin, a PAD SPACE collation (trailing spaces ignored in
-- comparisons). No value is changed, but two values that differ only in
-- trailing spaces become equal: DOIDs such as "10.1/x" and "10.1/x " are
-- one object again for strict order, and a unique key holding two such
-- values could not be rebuilt. So this is refused while an op_id or a
-- cursor name would clash with another (op_ids trustlog records are UUIDs;
-- the original SDK's adopted ones may be anything). Re-collating indexed
-- columns rebuilds the tables, as the upgrade did. MySQL commits DDL
-- statement by statement; every statement is idempotent, and bun forgets
-- the migration only when all of them succeeded, so an interrupted run is
-- simply run again.
-- trustlog:refuse-if SELECT 'two op_ids differ only in trailing spaces, which utf8mb4_bin would make equal' FROM {{.Op}} b JOIN {{.Op}} a ON a.op_id = RTRIM(b.op_id) WHERE b.op_id LIKE '% ' LIMIT 1
-- trustlog:refuse-if SELECT 'two op_ids differ only in trailing spaces, which utf8mb4_bin would make equal' FROM (SELECT RTRIM(op_id) AS k FROM {{.Op}} WHERE op_id LIKE '% ') AS spaced GROUP BY k HAVING COUNT(*) > 1 LIMIT 1
-- trustlog:refuse-if SELECT 'two cursor names differ only in trailing spaces, which utf8mb4_bin would make equal' FROM {{.Cursor}} GROUP BY RTRIM(cursor_key) HAVING COUNT(*) > 1 LIMIT 1
ALTER TABLE {{.Op}}
    MODIFY op_id              VARCHAR(64)   COLLATE utf8mb4_bin NOT NULL,
    MODIFY op_actor           VARCHAR(256)  COLLATE utf8mb4_bin NOT NULL,
    MODIFY doid               VARCHAR(512)  COLLATE utf8mb4_bin NOT NULL,
    MODIFY producer_id        VARCHAR(256)  COLLATE utf8mb4_bin NOT NULL,
    MODIFY request_body_hash  VARCHAR(128)  COLLATE utf8mb4_bin NOT NULL DEFAULT '',
    MODIFY response_body_hash VARCHAR(128)  COLLATE utf8mb4_bin NOT NULL DEFAULT '',
    MODIFY hash_alg           VARCHAR(16)   COLLATE utf8mb4_bin NOT NULL DEFAULT 'sha256',
    MODIFY op_hash            VARCHAR(64)   COLLATE utf8mb4_bin NOT NULL DEFAULT '',
    MODIFY signer             VARCHAR(256)  COLLATE utf8mb4_bin NOT NULL DEFAULT '',
    MODIFY sign               VARCHAR(1024) COLLATE utf8mb4_bin NOT NULL DEFAULT '',
    MODIFY op_source          VARCHAR(8)    COLLATE utf8mb4_bin NOT NULL,
    MODIFY op_type            VARCHAR(128)  COLLATE utf8mb4_bin NOT NULL,
    MODIFY do_prefix          VARCHAR(128)  COLLATE utf8mb4_bin NOT NULL,
    MODIFY do_repository      VARCHAR(256)  COLLATE utf8mb4_bin NOT NULL DEFAULT '',
    MODIFY client_ip          VARCHAR(64)   COLLATE utf8mb4_bin NULL,
    MODIFY server_ip          VARCHAR(64)   COLLATE utf8mb4_bin NULL,
    MODIFY last_error         TEXT          COLLATE utf8mb4_bin NULL,
    DEFAULT CHARACTER SET = utf8mb4 COLLATE = utf8mb4_bin;
--bun:split
ALTER TABLE {{.Cursor}}
    MODIFY cursor_key   VARCHAR(255) COLLATE utf8mb4_bin NOT NULL,
    MODIFY cursor_value TEXT         COLLATE utf8mb4_bin NOT NULL,
    DEFAULT CHARACTER SET = utf8mb4 COLLATE = utf8mb4_bin;
--bun:split
ALTER TABLE {{.Checkpoint}}
    MODIFY root_hash VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
    MODIFY note      TEXT        COLLATE utf8mb4_bin NOT NULL,
    DEFAULT CHARACTER SET = utf8mb4 COLLATE = utf8mb4_bin;
