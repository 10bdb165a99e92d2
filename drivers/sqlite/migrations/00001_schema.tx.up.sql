-- trustlog schema v1 for SQLite. Times are INTEGER Unix microseconds so
-- that comparisons are numeric and created_at round-trips exactly.
CREATE TABLE IF NOT EXISTS {{.Op}} (
    -- AUTOINCREMENT: a seq is never reused, even after pruning.
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    op_id              TEXT    NOT NULL UNIQUE,
    op_actor           TEXT    NOT NULL,
    doid               TEXT    NOT NULL,
    producer_id        TEXT    NOT NULL,
    request_body_hash  TEXT    NOT NULL DEFAULT '',
    response_body_hash TEXT    NOT NULL DEFAULT '',
    hash_alg           TEXT    NOT NULL DEFAULT 'sha256',
    op_hash            TEXT    NOT NULL DEFAULT '',
    signer             TEXT    NOT NULL DEFAULT '',
    sign               TEXT    NOT NULL DEFAULT '',
    op_source          TEXT    NOT NULL,
    op_type            TEXT    NOT NULL,
    do_prefix          TEXT    NOT NULL,
    do_repository      TEXT    NOT NULL DEFAULT '',
    client_ip          TEXT    NULL,
    server_ip          TEXT    NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    -- 0 pending, 1 in_flight, 2 retrying, 3 published, 4 dead
    state              INTEGER NOT NULL DEFAULT 0,
    attempts           INTEGER NOT NULL DEFAULT 0,
    -- retrying: next attempt; in_flight: lease expiry
    due_at             INTEGER NULL,
    claim_token        INTEGER NULL,
    -- the token of the claim before this one: who last tried to publish
    prev_token         INTEGER NULL,
    last_error         TEXT    NULL,
    published_at       INTEGER NULL,
    -- position in the ledger's Merkle log; NULL until sequenced
    leaf_index         INTEGER NULL UNIQUE,
    -- The original SDK's status, derived so it can never disagree.
    trustlog_status    TEXT GENERATED ALWAYS AS (
        CASE state WHEN 3 THEN 'TRUSTLOGGED' WHEN 4 THEN 'DEAD' ELSE 'NOT_TRUSTLOGGED' END
    ) VIRTUAL
);
--bun:split
-- The dispatcher's claim walks this index in seq order; it holds pending
-- rows only, so it stays small however large the table grows.
CREATE INDEX IF NOT EXISTS {{.Prefix}}operation_pending ON {{.Op}} (seq) WHERE state = 0;
--bun:split
-- The retrier's claim: due retries and expired leases, in due order.
CREATE INDEX IF NOT EXISTS {{.Prefix}}operation_due ON {{.Op}} (due_at) WHERE state IN (1, 2);
--bun:split
-- Strict order: "is there an earlier unsettled operation on this DOID?"
CREATE INDEX IF NOT EXISTS {{.Prefix}}operation_doid ON {{.Op}} (doid, seq) WHERE state IN (0, 1, 2);
--bun:split
CREATE INDEX IF NOT EXISTS {{.Prefix}}operation_dead ON {{.Op}} (seq) WHERE state = 4;
--bun:split
CREATE TABLE IF NOT EXISTS {{.Cursor}} (
    cursor_key   TEXT    PRIMARY KEY,
    cursor_value TEXT    NOT NULL,
    updated_at   INTEGER NOT NULL
);
--bun:split
-- The ledger's sequencer takes unsequenced operations in seq order.
CREATE INDEX IF NOT EXISTS {{.Prefix}}operation_unsequenced ON {{.Op}} (seq) WHERE leaf_index IS NULL;
--bun:split
-- tlog stored hashes (RFC 6962 tree), by stored-hash index.
CREATE TABLE IF NOT EXISTS {{.Hash}} (
    idx  INTEGER PRIMARY KEY,
    hash BLOB    NOT NULL
);
--bun:split
CREATE TABLE IF NOT EXISTS {{.Tree}} (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    size       INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
--bun:split
INSERT INTO {{.Tree}} (id, size, updated_at) VALUES (1, 0, 0) ON CONFLICT (id) DO NOTHING;
--bun:split
CREATE TABLE IF NOT EXISTS {{.Checkpoint}} (
    tree_size    INTEGER PRIMARY KEY,
    root_hash    TEXT    NOT NULL,
    note         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    published_at INTEGER NULL
);
