package store

import (
	"context"
	"errors"
	"time"
)

// The state of the RSSP's OAuth2 authorization server (rssp/authserver): its
// registered clients, the authorization requests on their way through the
// browser, authorization codes, the browser login sessions, and which
// credential each credential-scope access token is bound to. It follows the
// conventions of Store (times, empty lists, ErrNotFound/ErrExists, invalid
// arguments); package storetest checks them with RunOAuth.
//
// Every secret is kept as its SHA-256 (codes, request handles, session
// cookies, tokens) or as an argon2id string (client secrets).

// ErrUsed is returned by ConsumeOAuthCode for a code already exchanged.
var ErrUsed = errors.New("already used")

// OAuthClient is a registered OAuth2 client (rssp admin client add).
type OAuthClient struct {
	ID           string
	Name         string   // shown on the consent page
	SecretHash   string   // argon2id encoded; empty for a public client
	RedirectURIs []string // exact URIs (loopback ones match any port)
	// UserID, for a confidential client, is the account its
	// client_credentials tokens act for; empty: no client_credentials.
	UserID    string
	CreatedAt time.Time
}

// Public says whether the client has no secret (RFC 6749 §2.1).
func (c OAuthClient) Public() bool { return c.SecretHash == "" }

// OAuthRequest is a validated authorization request waiting for the user:
// pushed (PAR, RFC 9126) and not yet started, or started in a browser and
// waiting for login and consent. It is keyed by the SHA-256 of its handle,
// the random value in the request_uri or in the pages' URLs.
type OAuthRequest struct {
	Hash      []byte
	ClientID  string
	Pushed    bool   // received at oauth2/pushed_authorize, not yet at oauth2/authorize
	Params    []byte // the request as the service encoded it (opaque here)
	ExpiresAt time.Time
	CreatedAt time.Time
}

// OAuthCode is an authorization code (RFC 6749 §4.1.2), keyed by the
// SHA-256 of its value, with everything the token it buys is bound to.
type OAuthCode struct {
	Hash          []byte
	ClientID      string
	UserID        string
	RedirectURI   string // as sent in the authorization request; empty when omitted
	CodeChallenge string // PKCE S256 challenge (RFC 7636)
	Scope         string // "service" or "credential"
	// Scope credential: the credential, the count and the hashes authorized.
	CredentialID  string
	NumSignatures int
	HashAlgo      string
	Hashes        [][]byte
	Details       []byte // authorization_details to echo (JSON, opaque)
	// Family names the tokens issued with the code, revoked together when
	// the code is replayed (RFC 6749 §4.1.2).
	Family string
	// Used and TokenHash are set by ConsumeOAuthCode: the SHA-256 of the
	// access token the first exchange issued.
	Used      bool
	TokenHash []byte
	ExpiresAt time.Time
	CreatedAt time.Time
}

// OAuthSession is a browser's session with the authorization server's
// pages, keyed by the SHA-256 of its cookie.
type OAuthSession struct {
	Hash      []byte
	UserID    string    // empty until the user has logged in
	AuthTime  time.Time // when the user logged in; zero before
	ExpiresAt time.Time
	CreatedAt time.Time
}

// CredentialToken binds a credential-scope access token (keyed by the
// SHA-256 of its value, as in Token) to its credential.
type CredentialToken struct {
	TokenHash    []byte
	CredentialID string
	ExpiresAt    time.Time
}

// OAuthStore is the authorization server's state, a part of Store.
type OAuthStore interface {
	// CreateOAuthClient: ErrExists on a taken ID, ErrNotFound for an
	// unknown UserID.
	CreateOAuthClient(ctx context.Context, c OAuthClient) error
	OAuthClient(ctx context.Context, id string) (OAuthClient, error)

	// CreateOAuthRequest: ErrExists on a taken hash, ErrNotFound for an
	// unknown client; ExpiresAt is required.
	CreateOAuthRequest(ctx context.Context, r OAuthRequest) error
	// OAuthRequest returns a request, expired or not.
	OAuthRequest(ctx context.Context, hash []byte) (OAuthRequest, error)
	// TakeOAuthRequest deletes a request atomically and returns it, so it
	// is answered once: ErrNotFound when missing (or already taken),
	// ErrExpired with the row when it had expired at now.
	TakeOAuthRequest(ctx context.Context, hash []byte, now time.Time) (OAuthRequest, error)

	// CreateOAuthCode: ErrExists on a taken hash, ErrNotFound for an
	// unknown client, user or credential; ExpiresAt is required.
	CreateOAuthCode(ctx context.Context, c OAuthCode) error
	// ConsumeOAuthCode atomically marks an unused, unexpired code used,
	// records tokenHash and returns the code. A code already used returns
	// ErrUsed with the row as it was (TokenHash of the first exchange), used
	// or not; an expired one ErrExpired with the row; a missing one
	// ErrNotFound. Used is checked before expiry.
	ConsumeOAuthCode(ctx context.Context, hash, tokenHash []byte, now time.Time) (OAuthCode, error)

	// CreateOAuthSession: ErrExists on a taken hash, ErrNotFound for an
	// unknown user; ExpiresAt is required.
	CreateOAuthSession(ctx context.Context, s OAuthSession) error
	// OAuthSession returns a session, expired or not.
	OAuthSession(ctx context.Context, hash []byte) (OAuthSession, error)
	DeleteOAuthSession(ctx context.Context, hash []byte) error

	// CreateCredentialToken: ErrExists on a taken hash, ErrNotFound for an
	// unknown credential; ExpiresAt is required.
	CreateCredentialToken(ctx context.Context, t CredentialToken) error
	CredentialToken(ctx context.Context, tokenHash []byte) (CredentialToken, error)

	// PurgeOAuth deletes requests, codes, sessions and credential token
	// bindings whose ExpiresAt is not after now.
	PurgeOAuth(ctx context.Context, now time.Time) error
}
