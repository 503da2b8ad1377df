-- Version 4: a user's subject at an external authorization server
-- (rssp admin user add --external-subject), by which the access tokens
-- that server issues are mapped to the user. NULL: none; unique when set.

ALTER TABLE users ADD COLUMN external_subject TEXT;

CREATE UNIQUE INDEX users_external_subject ON users (external_subject) WHERE external_subject IS NOT NULL;
