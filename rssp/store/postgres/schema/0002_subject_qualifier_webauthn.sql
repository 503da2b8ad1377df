-- Version 2 (SQLite schema versions 4 to 6): a user's subject at an
-- external authorization server (NULL: none; unique when set), a
-- credential's signature qualifier such as eu_eidas_qes (empty: none), and
-- FIDO2/WebAuthn security keys.

ALTER TABLE users ADD COLUMN external_subject text;

CREATE UNIQUE INDEX users_external_subject ON users (external_subject) WHERE external_subject IS NOT NULL;

ALTER TABLE credentials ADD COLUMN signature_qualifier text NOT NULL DEFAULT '';

-- FIDO2/WebAuthn security keys (store.WebAuthnStore): users may be required
-- to present one at login; credentials may have one as a factor; a browser
-- session keeps the WebAuthn ceremony it runs.

ALTER TABLE users ADD COLUMN require_fido boolean NOT NULL DEFAULT false;
ALTER TABLE credentials ADD COLUMN fido boolean NOT NULL DEFAULT false;
ALTER TABLE oauth_sessions ADD COLUMN ceremony bytea;

CREATE TABLE webauthn_keys (
	id               bytea   NOT NULL PRIMARY KEY,
	user_id          text    NOT NULL REFERENCES users (id),
	name             text    NOT NULL,
	public_key       bytea   NOT NULL,
	attestation_type text    NOT NULL,
	aaguid           bytea,
	transports       text[],
	flags            integer NOT NULL,
	sign_count       bigint  NOT NULL CHECK (sign_count >= 0),
	created_at       bigint,
	last_used_at     bigint,
	ord              bigserial NOT NULL,
	UNIQUE (user_id, name)
);

CREATE INDEX webauthn_keys_by_user ON webauthn_keys (user_id, created_at, ord);
