-- Back to 000025's statement trigger, which queues every inserted row.
DROP TRIGGER IF EXISTS {{.Prefix}}trustlog_queue ON {{.Op}};
--bun:split
CREATE OR REPLACE FUNCTION {{.QueueFunc}}() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO {{.Unsequenced}} (seq) SELECT seq FROM trustlog_new_rows;
    RETURN NULL;
END
$$;
--bun:split
CREATE TRIGGER {{.Prefix}}trustlog_queue AFTER INSERT ON {{.Op}}
    REFERENCING NEW TABLE AS trustlog_new_rows FOR EACH STATEMENT EXECUTE FUNCTION {{.QueueFunc}}();
--bun:split
ALTER TABLE {{.Op}} DROP COLUMN IF EXISTS queued;
