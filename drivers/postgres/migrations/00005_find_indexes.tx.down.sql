-- Undo trustlog schema v3 for PostgreSQL: drop the search's indexes. No
-- data goes with them.
DROP INDEX IF EXISTS {{if .Schema}}"{{.Schema}}".{{end}}{{.Prefix}}operation_actor_seq;
--bun:split
DROP INDEX IF EXISTS {{if .Schema}}"{{.Schema}}".{{end}}{{.Prefix}}operation_doid_seq;
