-- Back to one row per stored hash (00001's table).
CREATE TABLE IF NOT EXISTS {{.Hash}} (
    idx  BIGINT PRIMARY KEY,
    hash BYTEA  NOT NULL
);
--bun:split
INSERT INTO {{.Hash}} (idx, hash)
SELECT r.first_idx + g, substring(r.hashes FROM g * 32 + 1 FOR 32)
FROM {{.HashRun}} AS r, generate_series(0, octet_length(r.hashes) / 32 - 1) AS g;
--bun:split
DROP TABLE {{.HashRun}};
