-- Version 1: the initial schema.
--
-- Times are INTEGER Unix nanoseconds (UTC); a NULL created_at is the zero
-- time. Booleans are 0/1. Lists (certificate chains, SAD and audit hashes)
-- are one BLOB each in the length-prefixed encoding of list.go; NULL is the
-- empty list. Tokens and SADs are keyed by the SHA-256 of their value.

CREATE TABLE users (
	id            TEXT    NOT NULL PRIMARY KEY,
	name          TEXT    NOT NULL UNIQUE,
	password_hash TEXT    NOT NULL,
	disabled      INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER
) STRICT;

CREATE TABLE credentials (
	id           TEXT    NOT NULL PRIMARY KEY,
	user_id      TEXT    NOT NULL REFERENCES users (id),
	description  TEXT    NOT NULL,
	key_type     TEXT    NOT NULL,
	backend      TEXT    NOT NULL,
	key_ref      BLOB,
	public_key   BLOB,
	cert_chain   BLOB,
	scal         INTEGER NOT NULL,
	multisign    INTEGER NOT NULL,
	auth_mode    TEXT    NOT NULL,
	pin_hash     TEXT    NOT NULL,
	otp_type     TEXT    NOT NULL,
	otp_sealed   BLOB,
	disabled     INTEGER NOT NULL DEFAULT 0,
	pin_failures INTEGER NOT NULL DEFAULT 0 CHECK (pin_failures >= 0),
	locked       INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER
) STRICT;

CREATE INDEX credentials_by_user ON credentials (user_id, created_at);

CREATE TABLE tokens (
	hash       BLOB    NOT NULL PRIMARY KEY,
	kind       TEXT    NOT NULL,
	user_id    TEXT    NOT NULL REFERENCES users (id),
	client_id  TEXT    NOT NULL,
	scope      TEXT    NOT NULL,
	family     TEXT    NOT NULL,
	expires_at INTEGER NOT NULL,
	revoked    INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER
) STRICT;

CREATE INDEX tokens_by_family ON tokens (family);
CREATE INDEX tokens_by_expiry ON tokens (expires_at);

CREATE TABLE sads (
	hash          BLOB    NOT NULL PRIMARY KEY,
	credential_id TEXT    NOT NULL REFERENCES credentials (id),
	user_id       TEXT    NOT NULL REFERENCES users (id),
	hash_algo     TEXT    NOT NULL,
	hashes        BLOB,
	remaining     INTEGER NOT NULL CHECK (remaining >= 0),
	expires_at    INTEGER NOT NULL,
	created_at    INTEGER
) STRICT;

CREATE INDEX sads_by_expiry ON sads (expires_at);

-- The audit log is append-only: seq counts up from 1 and each row carries
-- the hash of the previous one (store.AuditHash). The triggers stop honest
-- mistakes; the hash chain is what detects deliberate edits.
CREATE TABLE audit (
	seq           INTEGER NOT NULL PRIMARY KEY CHECK (seq >= 1),
	time          INTEGER NOT NULL,
	event         TEXT    NOT NULL,
	user_id       TEXT    NOT NULL,
	credential_id TEXT    NOT NULL,
	client_addr   TEXT    NOT NULL,
	hashes        BLOB,
	result        TEXT    NOT NULL,
	detail        TEXT    NOT NULL,
	prev_hash     BLOB    NOT NULL,
	hash          BLOB    NOT NULL
) STRICT;

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
	SELECT RAISE(ABORT, 'audit log is append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
	SELECT RAISE(ABORT, 'audit log is append-only');
END;
