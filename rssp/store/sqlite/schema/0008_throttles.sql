-- Version 8: the throttles of failed password and client-secret guesses,
-- shared by every process over the database. key: a hash of what is
-- throttled (an account or an address, never the name itself); full_at: the
-- time the token bucket is full again (Unix nanoseconds). A row whose full_at
-- has passed is the same as no row (Purge deletes it).

CREATE TABLE throttles (
	key  BLOB PRIMARY KEY,
	full_at INTEGER NOT NULL
) WITHOUT ROWID;
