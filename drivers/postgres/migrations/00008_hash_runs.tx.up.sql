-- trustlog schema v6 for PostgreSQL: the Merkle log's stored hashes in
-- runs, a row for up to 60 consecutive stored-hash indexes.
--
-- One row per stored hash was two rows and two index entries per
-- operation: on this project's two-core machine a quarter of the
-- database's work in sequencing (BENCHMARKS.md). A run holds the hashes
-- of stored-hash indexes first_idx, first_idx+1, ... concatenated, 32
-- bytes each; the hash at index i is in the run with the greatest
-- first_idx <= i, at byte (i - first_idx) * 32. An append writes its own
-- runs (its first stored-hash index is tlog.StoredHashIndex(0, oldSize)),
-- so runs do not share rows across appends and two overlapped appends
-- never touch the same row. 60 hashes (1,920 bytes) keep a row below
-- PostgreSQL's TOAST threshold.
CREATE TABLE IF NOT EXISTS {{.HashRun}} (
    first_idx BIGINT PRIMARY KEY,
    hashes    BYTEA  NOT NULL CHECK (octet_length(hashes) > 0 AND octet_length(hashes) % 32 = 0)
);
--bun:split
-- Existing hashes, in runs of consecutive indexes (an index missing from
-- a tampered table stays missing: a run never spans a gap).
INSERT INTO {{.HashRun}} (first_idx, hashes)
SELECT min(idx), string_agg(hash, ''::bytea ORDER BY idx)
FROM (SELECT idx, hash, idx - row_number() OVER (ORDER BY idx) AS island FROM {{.Hash}}
      WHERE octet_length(hash) = 32) AS h
GROUP BY island, idx / 60;
--bun:split
DROP TABLE {{.Hash}};
