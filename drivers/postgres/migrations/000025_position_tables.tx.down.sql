-- Undo the position tables. The positions they hold are lost unless
-- 00006's down put them back in the operation rows first (it does).
DROP TRIGGER IF EXISTS {{.Prefix}}trustlog_queue ON {{.Op}};
--bun:split
DROP FUNCTION IF EXISTS {{.QueueFunc}}();
--bun:split
DROP TABLE IF EXISTS {{.Unsequenced}};
--bun:split
DROP TABLE IF EXISTS {{.Position}};
