-- Version 1: the whole state of SQLite schema version 3 (users, credentials,
-- tokens, SADs, the audit log, the OAuth2 authorization server, out-of-band
-- authorizations, online OTP challenges, asynchronous operations).
--
-- Times are BIGINT Unix nanoseconds (UTC), as in the SQLite store, since
-- timestamptz keeps only microseconds; a NULL created_at is the zero time.
-- Lists are arrays; NULL is the empty list. Secrets are keyed by their
-- SHA-256 or stored as argon2id strings.

CREATE TABLE users (
	id            text    NOT NULL PRIMARY KEY,
	name          text    NOT NULL UNIQUE,
	password_hash text    NOT NULL,
	disabled      boolean NOT NULL DEFAULT false,
	created_at    bigint
);

CREATE TABLE credentials (
	id           text     NOT NULL PRIMARY KEY,
	user_id      text     NOT NULL REFERENCES users (id),
	description  text     NOT NULL,
	key_type     text     NOT NULL,
	backend      text     NOT NULL,
	key_ref      bytea,
	public_key   bytea,
	cert_chain   bytea[],
	scal         integer  NOT NULL,
	multisign    integer  NOT NULL,
	auth_mode    text     NOT NULL,
	pin_hash     text     NOT NULL,
	otp_type     text     NOT NULL,
	otp_sealed   bytea,
	disabled     boolean  NOT NULL DEFAULT false,
	pin_failures integer  NOT NULL DEFAULT 0 CHECK (pin_failures >= 0),
	locked       boolean  NOT NULL DEFAULT false,
	created_at   bigint,
	oob          boolean  NOT NULL DEFAULT false,
	-- Insertion order, for credentials created at the same time.
	ord          bigserial NOT NULL
);

CREATE INDEX credentials_by_user ON credentials (user_id, created_at, ord);

CREATE TABLE tokens (
	hash       bytea   NOT NULL PRIMARY KEY,
	kind       text    NOT NULL,
	user_id    text    NOT NULL REFERENCES users (id),
	client_id  text    NOT NULL,
	scope      text    NOT NULL,
	family     text    NOT NULL,
	expires_at bigint  NOT NULL,
	revoked    boolean NOT NULL DEFAULT false,
	created_at bigint
);

CREATE INDEX tokens_by_family ON tokens (family);
CREATE INDEX tokens_by_expiry ON tokens (expires_at);
CREATE INDEX tokens_by_user ON tokens (user_id);

CREATE TABLE sads (
	hash          bytea   NOT NULL PRIMARY KEY,
	credential_id text    NOT NULL REFERENCES credentials (id),
	user_id       text    NOT NULL REFERENCES users (id),
	hash_algo     text    NOT NULL,
	hashes        bytea[],
	remaining     integer NOT NULL CHECK (remaining >= 0),
	expires_at    bigint  NOT NULL,
	created_at    bigint
);

CREATE INDEX sads_by_expiry ON sads (expires_at);
CREATE INDEX sads_by_credential ON sads (credential_id);

-- The audit log is append-only: seq counts up from 1 and each row carries
-- the hash of the previous one (store.AuditHash). Rows are appended under a
-- transaction-scoped advisory lock, so every node appends to one chain. The
-- triggers stop honest mistakes; the hash chain is what detects deliberate
-- edits.
CREATE TABLE audit (
	seq           bigint NOT NULL PRIMARY KEY CHECK (seq >= 1),
	time          bigint NOT NULL,
	event         text   NOT NULL,
	user_id       text   NOT NULL,
	credential_id text   NOT NULL,
	client_addr   text   NOT NULL,
	hashes        text[],
	result        text   NOT NULL,
	detail        text   NOT NULL,
	prev_hash     bytea  NOT NULL,
	hash          bytea  NOT NULL
);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit log is append-only';
END;
$$;

CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
	FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
	FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

CREATE TABLE oauth_clients (
	id            text NOT NULL PRIMARY KEY,
	name          text NOT NULL,
	secret_hash   text NOT NULL,
	redirect_uris text[],
	user_id       text REFERENCES users (id),
	created_at    bigint
);

CREATE TABLE oauth_requests (
	hash       bytea   NOT NULL PRIMARY KEY,
	client_id  text    NOT NULL REFERENCES oauth_clients (id),
	pushed     boolean NOT NULL DEFAULT false,
	params     bytea,
	expires_at bigint  NOT NULL,
	created_at bigint
);

CREATE INDEX oauth_requests_by_expiry ON oauth_requests (expires_at);

CREATE TABLE oauth_codes (
	hash           bytea   NOT NULL PRIMARY KEY,
	client_id      text    NOT NULL REFERENCES oauth_clients (id),
	user_id        text    NOT NULL REFERENCES users (id),
	redirect_uri   text    NOT NULL,
	code_challenge text    NOT NULL,
	scope          text    NOT NULL,
	credential_id  text    REFERENCES credentials (id),
	num_signatures integer NOT NULL,
	hash_algo      text    NOT NULL,
	hashes         bytea[],
	details        bytea,
	family         text    NOT NULL,
	used           boolean NOT NULL DEFAULT false,
	token_hash     bytea,
	expires_at     bigint  NOT NULL,
	created_at     bigint
);

CREATE INDEX oauth_codes_by_expiry ON oauth_codes (expires_at);

CREATE TABLE oauth_sessions (
	hash       bytea  NOT NULL PRIMARY KEY,
	user_id    text   REFERENCES users (id),
	auth_time  bigint,
	expires_at bigint NOT NULL,
	created_at bigint
);

CREATE INDEX oauth_sessions_by_expiry ON oauth_sessions (expires_at);

CREATE TABLE oauth_credential_tokens (
	token_hash    bytea  NOT NULL PRIMARY KEY,
	credential_id text   NOT NULL REFERENCES credentials (id),
	expires_at    bigint NOT NULL
);

CREATE INDEX oauth_credential_tokens_by_expiry ON oauth_credential_tokens (expires_at);

CREATE TABLE pending_auth (
	handle_hash    bytea   NOT NULL PRIMARY KEY,
	approval_hash  bytea   NOT NULL UNIQUE,
	user_id        text    NOT NULL REFERENCES users (id),
	credential_id  text    NOT NULL REFERENCES credentials (id),
	num_signatures integer NOT NULL CHECK (num_signatures >= 1),
	hash_algo      text    NOT NULL,
	hashes         bytea[],
	description    text    NOT NULL,
	decision       text    NOT NULL CHECK (decision IN ('pending', 'approved', 'denied')),
	expires_at     bigint  NOT NULL,
	created_at     bigint
);

CREATE INDEX pending_auth_by_expiry ON pending_auth (expires_at);

CREATE TABLE challenges (
	credential_id text   NOT NULL PRIMARY KEY REFERENCES credentials (id),
	code_hash     text   NOT NULL,
	expires_at    bigint NOT NULL
);

CREATE TABLE async_ops (
	id_hash       bytea  NOT NULL PRIMARY KEY,
	user_id       text   NOT NULL REFERENCES users (id),
	credential_id text   NOT NULL REFERENCES credentials (id),
	status        text   NOT NULL CHECK (status IN ('running', 'done', 'failed')),
	signatures    bytea[],
	err_code      text   NOT NULL,
	err_desc      text   NOT NULL,
	expires_at    bigint NOT NULL,
	created_at    bigint
);

CREATE INDEX async_ops_by_expiry ON async_ops (expires_at);
