-- trustlog schema v1 for MySQL >= 8.0.1 and MariaDB >= 10.6. MySQL has no
-- partial indexes: each claim's index leads with state, so a claim still
-- reads only the rows in the state it wants. utf8mb4_bin is a PAD SPACE
-- collation (trailing spaces ignored): 00002 moves text to a NO PAD one so
-- that DOIDs and ids compare byte for byte, as on the other databases. DDL
-- commits on its own here, so every statement is idempotent (IF NOT EXISTS).
CREATE TABLE IF NOT EXISTS {{.Op}} (
    seq                BIGINT       NOT NULL AUTO_INCREMENT,
    op_id              VARCHAR(64)  NOT NULL,
    op_actor           VARCHAR(256) NOT NULL,
    doid               VARCHAR(512) NOT NULL,
    producer_id        VARCHAR(256) NOT NULL,
    request_body_hash  VARCHAR(128) NOT NULL DEFAULT '',
    response_body_hash VARCHAR(128) NOT NULL DEFAULT '',
    hash_alg           VARCHAR(16)  NOT NULL DEFAULT 'sha256',
    op_hash            VARCHAR(64)  NOT NULL DEFAULT '',
    signer             VARCHAR(256) NOT NULL DEFAULT '',
    sign               VARCHAR(1024) NOT NULL DEFAULT '',
    op_source          VARCHAR(8)   NOT NULL,
    op_type            VARCHAR(128) NOT NULL,
    do_prefix          VARCHAR(128) NOT NULL,
    do_repository      VARCHAR(256) NOT NULL DEFAULT '',
    client_ip          VARCHAR(64)  NULL,
    server_ip          VARCHAR(64)  NULL,
    created_at         DATETIME(6)  NOT NULL,
    updated_at         DATETIME(6)  NOT NULL,
    -- 0 pending, 1 in_flight, 2 retrying, 3 published, 4 dead
    state              TINYINT      NOT NULL DEFAULT 0,
    attempts           INT          NOT NULL DEFAULT 0,
    -- retrying: next attempt; in_flight: lease expiry (UTC)
    due_at             DATETIME(6)  NULL,
    claim_token        BIGINT       NULL,
    -- the token of the claim before this one: who last tried to publish
    prev_token         BIGINT  NULL,
    last_error         TEXT         NULL,
    published_at       DATETIME(6)  NULL,
    -- position in the ledger's Merkle log; NULL until sequenced
    leaf_index         BIGINT       NULL,
    -- The original SDK's status, derived so it can never disagree.
    trustlog_status    VARCHAR(16) AS (
        CASE state WHEN 3 THEN 'TRUSTLOGGED' WHEN 4 THEN 'DEAD' ELSE 'NOT_TRUSTLOGGED' END) VIRTUAL,
    PRIMARY KEY (seq),
    UNIQUE KEY {{.Prefix}}operation_op_id (op_id),
    -- pending claims (state 0) and the dead list (state 4), in seq order
    KEY {{.Prefix}}operation_state_seq (state, seq),
    -- the retrier: in flight and retrying rows by due time
    KEY {{.Prefix}}operation_state_due (state, due_at),
    -- strict order: unsettled rows of one DOID
    KEY {{.Prefix}}operation_doid (doid, state, seq),
    -- unique leaf positions; InnoDB keeps each key's rows in primary key
    -- order, so "leaf_index IS NULL ORDER BY seq" walks this index too
    UNIQUE KEY {{.Prefix}}operation_leaf (leaf_index)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
--bun:split
CREATE TABLE IF NOT EXISTS {{.Cursor}} (
    cursor_key   VARCHAR(255) NOT NULL PRIMARY KEY,
    cursor_value TEXT         NOT NULL,
    updated_at   DATETIME(6)  NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
--bun:split
CREATE TABLE IF NOT EXISTS {{.Hash}} (
    idx  BIGINT     NOT NULL PRIMARY KEY,
    hash BINARY(32) NOT NULL
) ENGINE = InnoDB;
--bun:split
CREATE TABLE IF NOT EXISTS {{.Tree}} (
    id         TINYINT     NOT NULL PRIMARY KEY,
    size       BIGINT      NOT NULL,
    updated_at DATETIME(6) NOT NULL
) ENGINE = InnoDB;
--bun:split
INSERT IGNORE INTO {{.Tree}} (id, size, updated_at) VALUES (1, 0, UTC_TIMESTAMP(6));
--bun:split
CREATE TABLE IF NOT EXISTS {{.Checkpoint}} (
    tree_size    BIGINT      NOT NULL PRIMARY KEY,
    root_hash    VARCHAR(64) NOT NULL,
    note         TEXT        NOT NULL,
    created_at   DATETIME(6) NOT NULL,
    published_at DATETIME(6) NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
