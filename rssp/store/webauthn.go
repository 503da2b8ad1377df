package store

import (
	"context"
	"errors"
	"time"
)

// ErrStale is returned by UseWebAuthnKey when the authenticator's
// signature counter did not advance: a cloned authenticator, or a replayed
// assertion.
var ErrStale = errors.New("signature counter did not advance")

// WebAuthnKey is a FIDO2/WebAuthn security key registered by a user: the
// public key of a credential its authenticator holds.
type WebAuthnKey struct {
	ID              []byte // the WebAuthn credential ID (primary key)
	UserID          string
	Name            string // the user's name for the key, unique per user
	PublicKey       []byte // COSE_Key
	AttestationType string // "none", "self", "basic_full", ...
	AAGUID          []byte // the authenticator model (16 bytes; all zero when unknown)
	Transports      []string
	Flags           uint8  // authenticator data flags at registration (UP, UV, BE, BS)
	SignCount       uint32 // last signature counter seen
	CreatedAt       time.Time
	LastUsedAt      time.Time // zero: never used since registration
}

// WebAuthnStore keeps users' security keys and the WebAuthn ceremonies
// (challenges) that browser sessions are running.
type WebAuthnStore interface {
	// CreateWebAuthnKey: ErrExists on a taken ID or a name the user
	// already gave another key, ErrNotFound for an unknown user; ID and
	// Name are required.
	CreateWebAuthnKey(ctx context.Context, k WebAuthnKey) error
	// WebAuthnKeys lists a user's keys ordered by creation time.
	WebAuthnKeys(ctx context.Context, userID string) ([]WebAuthnKey, error)
	// DeleteWebAuthnKey deletes a key of the user; ErrNotFound when the
	// user has no key of that ID.
	DeleteWebAuthnKey(ctx context.Context, userID string, id []byte) error
	// UseWebAuthnKey records an assertion of the key, as one
	// compare-and-set: it sets SignCount to count and LastUsedAt to at only
	// when count is greater than the stored counter, or when both are 0 (an
	// authenticator without a counter). ErrStale when the counter went back
	// or stood still (nothing changes), ErrNotFound for an unknown key.
	UseWebAuthnKey(ctx context.Context, id []byte, count uint32, at time.Time) error
	// SetUserRequireFIDO sets whether the user must present a security key
	// at login; ErrNotFound for an unknown user.
	SetUserRequireFIDO(ctx context.Context, userID string, require bool) error

	// SetOAuthSessionCeremony keeps the state of a WebAuthn ceremony (an
	// opaque value, replacing any earlier one) with a browser session;
	// ErrNotFound for an unknown session.
	SetOAuthSessionCeremony(ctx context.Context, sessionHash, ceremony []byte) error
	// TakeOAuthSessionCeremony returns the session's ceremony and removes
	// it atomically, so a ceremony is finished at most once; ErrNotFound
	// when the session is unknown or has none.
	TakeOAuthSessionCeremony(ctx context.Context, sessionHash []byte) ([]byte, error)
}
