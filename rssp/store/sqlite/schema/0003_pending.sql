-- Version 3: out-of-band authorizations (PasswordOOB), online OTP
-- challenges and asynchronous signHash operations; credentials gain an
-- out-of-band factor. Handles, approval tokens and operation IDs are keyed
-- by the SHA-256 of their value; challenge codes are argon2id hashes.

ALTER TABLE credentials ADD COLUMN oob INTEGER NOT NULL DEFAULT 0;

CREATE TABLE pending_auth (
	handle_hash    BLOB    NOT NULL PRIMARY KEY,
	approval_hash  BLOB    NOT NULL UNIQUE,
	user_id        TEXT    NOT NULL REFERENCES users (id),
	credential_id  TEXT    NOT NULL REFERENCES credentials (id),
	num_signatures INTEGER NOT NULL CHECK (num_signatures >= 1),
	hash_algo      TEXT    NOT NULL,
	hashes         BLOB,
	description    TEXT    NOT NULL,
	decision       TEXT    NOT NULL CHECK (decision IN ('pending', 'approved', 'denied')),
	expires_at     INTEGER NOT NULL,
	created_at     INTEGER
) STRICT;

CREATE INDEX pending_auth_by_expiry ON pending_auth (expires_at);

CREATE TABLE challenges (
	credential_id TEXT    NOT NULL PRIMARY KEY REFERENCES credentials (id),
	code_hash     TEXT    NOT NULL,
	expires_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE async_ops (
	id_hash       BLOB    NOT NULL PRIMARY KEY,
	user_id       TEXT    NOT NULL REFERENCES users (id),
	credential_id TEXT    NOT NULL REFERENCES credentials (id),
	status        TEXT    NOT NULL CHECK (status IN ('running', 'done', 'failed')),
	signatures    BLOB,
	err_code      TEXT    NOT NULL,
	err_desc      TEXT    NOT NULL,
	expires_at    INTEGER NOT NULL,
	created_at    INTEGER
) STRICT;

CREATE INDEX async_ops_by_expiry ON async_ops (expires_at);
