-- Version 6: FIDO2/WebAuthn security keys (store.WebAuthnStore). Users may
-- be required to present one at login; credentials may have one as a
-- factor; a browser session keeps the WebAuthn ceremony it runs.

ALTER TABLE users ADD COLUMN require_fido INTEGER NOT NULL DEFAULT 0;
ALTER TABLE credentials ADD COLUMN fido INTEGER NOT NULL DEFAULT 0;
ALTER TABLE oauth_sessions ADD COLUMN ceremony BLOB;

CREATE TABLE webauthn_keys (
	id               BLOB    NOT NULL PRIMARY KEY,
	user_id          TEXT    NOT NULL REFERENCES users (id),
	name             TEXT    NOT NULL,
	public_key       BLOB    NOT NULL,
	attestation_type TEXT    NOT NULL,
	aaguid           BLOB,
	transports       BLOB,
	flags            INTEGER NOT NULL,
	sign_count       INTEGER NOT NULL CHECK (sign_count >= 0),
	created_at       INTEGER,
	last_used_at     INTEGER,
	UNIQUE (user_id, name)
) STRICT;

CREATE INDEX webauthn_keys_by_user ON webauthn_keys (user_id, created_at);
