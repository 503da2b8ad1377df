-- Version 4 (SQLite schema version 8): the throttles of failed password
-- and client-secret guesses, shared by every node. key: a hash of what is
-- throttled (an account or an address, never the name itself); full_at:
-- the time the token bucket is full again (Unix nanoseconds). A row whose
-- full_at has passed is the same as no row (Purge deletes it).

CREATE TABLE throttles (
	key     bytea PRIMARY KEY,
	full_at bigint NOT NULL
);
