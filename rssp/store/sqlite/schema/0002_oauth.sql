-- Version 2: the OAuth2 authorization server (store.OAuthStore).
--
-- Same conventions as version 1. Secrets are keyed by their SHA-256
-- (request handles, codes, session cookies, tokens); client secrets are
-- argon2id strings. An empty user or credential reference is NULL.

CREATE TABLE oauth_clients (
	id            TEXT NOT NULL PRIMARY KEY,
	name          TEXT NOT NULL,
	secret_hash   TEXT NOT NULL,
	redirect_uris BLOB,
	user_id       TEXT REFERENCES users (id),
	created_at    INTEGER
) STRICT;

CREATE TABLE oauth_requests (
	hash       BLOB    NOT NULL PRIMARY KEY,
	client_id  TEXT    NOT NULL REFERENCES oauth_clients (id),
	pushed     INTEGER NOT NULL DEFAULT 0,
	params     BLOB,
	expires_at INTEGER NOT NULL,
	created_at INTEGER
) STRICT;

CREATE INDEX oauth_requests_by_expiry ON oauth_requests (expires_at);

CREATE TABLE oauth_codes (
	hash           BLOB    NOT NULL PRIMARY KEY,
	client_id      TEXT    NOT NULL REFERENCES oauth_clients (id),
	user_id        TEXT    NOT NULL REFERENCES users (id),
	redirect_uri   TEXT    NOT NULL,
	code_challenge TEXT    NOT NULL,
	scope          TEXT    NOT NULL,
	credential_id  TEXT    REFERENCES credentials (id),
	num_signatures INTEGER NOT NULL,
	hash_algo      TEXT    NOT NULL,
	hashes         BLOB,
	details        BLOB,
	family         TEXT    NOT NULL,
	used           INTEGER NOT NULL DEFAULT 0,
	token_hash     BLOB,
	expires_at     INTEGER NOT NULL,
	created_at     INTEGER
) STRICT;

CREATE INDEX oauth_codes_by_expiry ON oauth_codes (expires_at);

CREATE TABLE oauth_sessions (
	hash       BLOB    NOT NULL PRIMARY KEY,
	user_id    TEXT    REFERENCES users (id),
	auth_time  INTEGER,
	expires_at INTEGER NOT NULL,
	created_at INTEGER
) STRICT;

CREATE INDEX oauth_sessions_by_expiry ON oauth_sessions (expires_at);

CREATE TABLE oauth_credential_tokens (
	token_hash    BLOB    NOT NULL PRIMARY KEY,
	credential_id TEXT    NOT NULL REFERENCES credentials (id),
	expires_at    INTEGER NOT NULL
) STRICT;

CREATE INDEX oauth_credential_tokens_by_expiry ON oauth_credential_tokens (expires_at);
