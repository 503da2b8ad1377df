-- Version 9: a SAD whose last signature is taken is deleted by the
-- database, in the statement that takes it, so that ConsumeSAD is a single
-- UPDATE that returns no row (a statement that returns rows costs the
-- store several times more).

CREATE TRIGGER sads_used_up AFTER UPDATE OF remaining ON sads WHEN NEW.remaining = 0
BEGIN
	DELETE FROM sads WHERE hash = NEW.hash;
END;
