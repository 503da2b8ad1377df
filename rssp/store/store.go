// Package store defines the RSSP's persistent state and the interface that
// every database implementation satisfies: the embedded SQLite store
// (package store/sqlite) by default, PostgreSQL for several nodes later.
//
// The handlers never see SQL. Every secret is stored hashed (passwords, PINs:
// argon2id strings; tokens and SADs: SHA-256 of the random value) or sealed
// (TOTP seeds, by the caller, under the key-encryption key).
//
// Implementations are safe for concurrent use. Operations that must not race
// (consuming a SAD, counting PIN failures, appending to the audit chain) are
// atomic inside the implementation.
//
// Conventions every implementation follows (package store/storetest checks
// them):
//
//   - Times are kept at nanosecond precision and returned in UTC. They must
//     lie between the years 1678 and 2262 (int64 Unix nanoseconds); a zero
//     CreatedAt is kept as the zero time.
//   - Empty byte slices and lists (KeyRef, CertChain, Hashes, ...) come back
//     as nil; lists otherwise round-trip exactly, element by element.
//   - A method that names a missing row returns ErrNotFound; creating a row
//     whose key is taken returns ErrExists; creating a row that refers to a
//     missing user or credential returns ErrNotFound.
//   - Invalid arguments (an empty key, a zero ExpiresAt, n < 1, limit < 1)
//     are errors that match none of the sentinels below.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors returned by every implementation (wrapped with %w).
var (
	ErrNotFound  = errors.New("not found")
	ErrExists    = errors.New("already exists")
	ErrExhausted = errors.New("authorization used up") // ConsumeSAD: not enough signatures left
	ErrExpired   = errors.New("expired")
	ErrRevoked   = errors.New("revoked")
	// ErrInUse: DeleteUser of a user who still has credentials or OAuth2
	// clients acting for them.
	ErrInUse = errors.New("still in use")
	// ErrBusy: TryFactorLock while another holder's lease runs; try again
	// shortly.
	ErrBusy = errors.New("busy")
	// ErrFull: the database cannot grow (disk full). Nothing was written;
	// the same call may succeed once space is freed.
	ErrFull = errors.New("storage full")
)

// User is an account of the service.
type User struct {
	ID           string // random, stable
	Name         string // login name, unique
	PasswordHash string // argon2id encoded string
	Disabled     bool
	CreatedAt    time.Time
	// ExternalSubject is the user's subject ("sub") at the external
	// authorization server, set by the administrator; "" for none. Unique
	// among users when set.
	ExternalSubject string
	// RequireFIDO: the user must present a security key (WebAuthnKey) at
	// login.
	RequireFIDO bool
}

// Credential is a signing key with its certificate and authorization data.
type Credential struct {
	ID          string
	UserID      string
	Description string
	KeyType     string   // keystore.KeyType
	Backend     string   // keystore Backend.Name()
	KeyRef      []byte   // opaque backend reference
	PublicKey   []byte   // PKIX DER
	CertChain   [][]byte // DER certificates, end-entity first
	SCAL        int      // 1 or 2
	Multisign   int      // >= 1
	AuthMode    string   // "explicit" or "oauth2code"
	PINHash     string   // argon2id encoded; empty: no PIN factor
	OTPType     string   // "", "totp" or "online"
	OOB         bool     // a PasswordOOB factor
	OTPSealed   []byte   // TOTP seed sealed under the KEK; nil without OTP
	Disabled    bool
	PINFailures int  // consecutive failed authorizations
	Locked      bool // set when PINFailures reaches the limit; cleared by unlock
	CreatedAt   time.Time
	// FIDO: a security key of the owner (WebAuthnKey) is a factor of the
	// credential's authorization, on the consent page.
	FIDO bool
	// SignatureQualifier is the credential's signature qualifier
	// (csc.SignatureQualifiers, e.g. "eu_eidas_qes"); empty: none.
	SignatureQualifier string
}

// CredentialState is the part of a credential that may change after its
// creation (Disabled, PINFailures, Locked), with what identifies the row
// (ID, CreatedAt) and its owner. Everything else of a credential never
// changes once created, so the signing path caches it (keyed by ID and
// CreatedAt) and reads only this on every request.
type CredentialState struct {
	ID          string
	UserID      string
	Disabled    bool
	PINFailures int
	Locked      bool
	CreatedAt   time.Time
}

// SigningState is what signatures/signHash reads on every call, in one
// read (SigningState below).
type SigningState struct {
	Credential CredentialState
	SAD        SAD  // meaningful when HasSAD
	HasSAD     bool // false: no SAD has the hash asked for
}

// TokenKind says what a bearer token is for.
type TokenKind string

const (
	AccessToken  TokenKind = "access"
	RefreshToken TokenKind = "refresh"
)

// Token is a bearer token, stored by the SHA-256 of its value.
type Token struct {
	Hash      []byte // sha256 of the token value (primary key)
	Kind      TokenKind
	UserID    string
	ClientID  string // OAuth2 client, empty for auth/login
	Scope     string // "service" (default) or "credential"
	Family    string // tokens minted from one login share a family, revoked together
	ExpiresAt time.Time
	Revoked   bool
	CreatedAt time.Time
}

// SAD is a signature activation data, stored by the SHA-256 of its value.
type SAD struct {
	Hash         []byte // sha256 of the SAD value (primary key)
	CredentialID string
	UserID       string
	HashAlgo     string   // OID the hashes are bound to (SCAL2); empty for SCAL1
	Hashes       [][]byte // bound digests (SCAL2); empty for SCAL1
	Remaining    int      // signatures still allowed
	ExpiresAt    time.Time
	CreatedAt    time.Time
}

// AuditEvent is one row of the append-only audit log. Seq, PrevHash and Hash
// are set by AppendAudit (or ConsumeSAD).
type AuditEvent struct {
	Seq          int64
	Time         time.Time
	Event        string // "login", "authorize", "sign", "revoke", "admin", ...
	UserID       string
	CredentialID string
	ClientAddr   string
	Hashes       []string // base64 digests concerned, if any
	Result       string   // "ok" or a CSC error code
	Detail       string   // short text, never a secret
	PrevHash     []byte
	Hash         []byte
}

// Store is the RSSP's state.
type Store interface {
	// Users.
	CreateUser(ctx context.Context, u User) error // ErrExists on a taken name or ID
	UserByName(ctx context.Context, name string) (User, error)
	UserByID(ctx context.Context, id string) (User, error)
	// UserByExternalSubject finds the user whose ExternalSubject is sub
	// (ErrNotFound for none, and for "").
	UserByExternalSubject(ctx context.Context, sub string) (User, error)
	// SetUserExternalSubject sets (or, with "", clears) a user's external
	// subject: ErrExists when another user has it, ErrNotFound for an
	// unknown user. The user's tokens stay.
	SetUserExternalSubject(ctx context.Context, id, sub string) error
	// Users lists every user, ordered by name.
	Users(ctx context.Context) ([]User, error)
	// SetUserDisabled and SetUserPassword change a user (ErrNotFound for an
	// unknown one); both also delete the user's tokens (access and refresh:
	// the user logs in again).
	SetUserDisabled(ctx context.Context, id string, disabled bool) error
	SetUserPassword(ctx context.Context, id, passwordHash string) error
	// DeleteUser deletes a user and what only serves them (tokens, OAuth2
	// sessions and codes, security keys, pending authorizations, asynchronous operations);
	// ErrInUse while credentials or OAuth2 clients refer to the user,
	// ErrNotFound for an unknown one. Audit rows stay.
	DeleteUser(ctx context.Context, id string) error

	// Credentials.
	// CreateCredential: ErrExists on a taken ID, ErrNotFound for an unknown
	// user.
	CreateCredential(ctx context.Context, c Credential) error
	Credential(ctx context.Context, id string) (Credential, error)
	// Credentials lists a user's credentials ordered by creation time;
	// userID "" lists all.
	Credentials(ctx context.Context, userID string) ([]Credential, error)
	SetCredentialDisabled(ctx context.Context, id string, disabled bool) error
	// DeleteCredential deletes a credential and what refers to it (SADs,
	// pending authorizations, challenges, asynchronous operations, OAuth2
	// codes and credential tokens); ErrNotFound for an unknown one. Its key
	// is the caller's to destroy; audit rows stay.
	DeleteCredential(ctx context.Context, id string) error
	// RecordPINFailure adds one failure and locks the credential when the
	// count reaches limit (>= 1). It returns the new count and whether it is
	// locked.
	RecordPINFailure(ctx context.Context, id string, limit int) (failures int, locked bool, err error)
	// ResetPINFailures sets the count to zero (after a good PIN); it does not unlock.
	ResetPINFailures(ctx context.Context, id string) error
	// UnlockCredential clears the lock and the count.
	UnlockCredential(ctx context.Context, id string) error
	// TryFactorLock takes the credential's factor-check lease for holder
	// (a random value of the caller) until the time until, when no other
	// holder's lease runs at now, and returns the credential as it is
	// then. It serialises the checks of a credential's factors across
	// processes and nodes, so parallel guesses cannot overtake the failure
	// count; a lease whose holder died ends at its until. ErrBusy while
	// another holder's lease runs (holder's own is renewed), ErrNotFound
	// for an unknown credential.
	TryFactorLock(ctx context.Context, id, holder string, now, until time.Time) (Credential, error)
	// ReleaseFactorLock ends holder's lease of the credential; nothing
	// when the lease is not holder's (any more).
	ReleaseFactorLock(ctx context.Context, id, holder string) error
	// UseTOTPStep records step as the last TOTP time step accepted for the
	// credential, as one compare-and-set: only when it is after the last
	// one, so a code is accepted once across nodes. ErrUsed when step is
	// not after the last accepted one, ErrNotFound for an unknown
	// credential.
	UseTOTPStep(ctx context.Context, id string, step int64) error

	// Tokens.
	// CreateToken: ErrExists on a taken hash, ErrNotFound for an unknown
	// user; ExpiresAt is required.
	CreateToken(ctx context.Context, t Token) error
	Token(ctx context.Context, hash []byte) (Token, error) // returns revoked/expired rows too
	RevokeToken(ctx context.Context, hash []byte) error
	// RotateToken is a refresh token's rotation as one compare-and-set: it
	// revokes the token only if it is not revoked yet and creates next (as
	// CreateToken would) in the same atomic step. ErrRevoked when it
	// already was revoked (a replay, or the loser of two simultaneous
	// redemptions: exactly one caller wins), ErrNotFound when missing;
	// on any error nothing changes. A RevokeFamily after a lost rotation
	// therefore also revokes the winner's new tokens.
	RotateToken(ctx context.Context, hash []byte, next []Token) error
	// RevokeFamily revokes every token of the family; an empty or unknown
	// family revokes nothing and is not an error.
	RevokeFamily(ctx context.Context, family string) error

	// SADs.
	// CreateSAD: ErrExists on a taken hash, ErrNotFound for an unknown user
	// or credential; ExpiresAt and Remaining >= 1 are required. With a
	// non-nil audit, the same atomic step appends *audit as ConsumeSAD
	// does (and sets it on success): a SAD is never issued without its
	// audit row; on failure neither is written.
	CreateSAD(ctx context.Context, s SAD, audit *AuditEvent) error
	SAD(ctx context.Context, hash []byte) (SAD, error)
	// ConsumeSAD atomically takes n signatures from the SAD: ErrNotFound,
	// ErrExpired (at now) or ErrExhausted (Remaining < n) leave it unchanged.
	// A SAD is expired when now is not before ExpiresAt; expiry is reported
	// before exhaustion. A SAD whose Remaining reaches 0 is deleted (later
	// calls: ErrNotFound). n must be >= 1. It returns nothing else: the
	// caller has read the SAD before (SigningState), and a write that
	// returns no row costs the SQLite store far less than one that does.
	//
	// With a non-nil audit, the same atomic step appends *audit to the
	// audit log exactly as AppendAudit would, so the consumption and its
	// audit row are durable together or not at all; on success *audit is
	// set to the row as AppendAudit would return it (Seq, PrevHash, Hash,
	// Time). When ConsumeSAD fails, for any reason, neither the SAD nor
	// the audit log changes and *audit is left as it was. A nil audit
	// appends nothing.
	ConsumeSAD(ctx context.Context, hash []byte, n int, now time.Time, audit *AuditEvent) error
	// ReplaceSAD takes n signatures from the SAD old exactly as ConsumeSAD
	// does (same errors; n is normally all it has left, which deletes it),
	// creates s as CreateSAD does (same errors) and appends *audit (may be
	// nil), in one atomic step (credentials/extendTransaction): on success
	// all three are durable and *audit is set; on any failure none is
	// written, the old SAD is unchanged and *audit is left as it was.
	ReplaceSAD(ctx context.Context, old []byte, n int, now time.Time, s SAD, audit *AuditEvent) error
	DeleteSAD(ctx context.Context, hash []byte) error

	// Audit.
	// AppendAudit sets e.Seq, e.PrevHash and e.Hash (see AuditHash) and
	// appends the row atomically after the current last one. The first row
	// has Seq 1 and PrevHash GenesisHash. A zero Time is set to the current
	// time; the returned event is the row as AuditEvents will return it.
	AppendAudit(ctx context.Context, e AuditEvent) (AuditEvent, error)
	// AuditEvents returns rows with Seq > after, in order, at most limit (>= 1).
	AuditEvents(ctx context.Context, after int64, limit int) ([]AuditEvent, error)

	// The hot path's reads, each a single read of the database (one query),
	// standing for the several point reads they replace. Both return
	// revoked, expired and disabled rows as they are: the caller decides.
	//
	// TokenUser returns the token with that hash and its user (what every
	// authenticated request checks); ErrNotFound when the token is missing.
	TokenUser(ctx context.Context, hash []byte) (Token, User, error)
	// SigningState returns the state of the credential and the SAD with
	// sadHash (HasSAD false when there is none or sadHash is empty; the SAD
	// is returned whatever credential it belongs to); ErrNotFound when the
	// credential is missing.
	SigningState(ctx context.Context, credentialID string, sadHash []byte) (SigningState, error)

	// Throttles of failed guesses (passwords, client secrets), shared by
	// every process over the store. A key is a token bucket of rate (see
	// ThrottleRate), kept as the time it is full again; the caller passes
	// a hash as the key, never a user name or an address.
	//
	// ThrottleWait says how long from now key's bucket stays empty: 0 when
	// one more failure may be tried now.
	ThrottleWait(ctx context.Context, key []byte, now time.Time, rate ThrottleRate) (time.Duration, error)
	// ThrottleFail takes one token from key's bucket at now, as one atomic
	// step across processes and nodes; emptied: this call took the last
	// one. A failure while the bucket is already empty takes nothing (the
	// bucket refills however long the guessing lasts).
	ThrottleFail(ctx context.Context, key []byte, now time.Time, rate ThrottleRate) (emptied bool, err error)

	// Purge deletes tokens and SADs whose ExpiresAt is not after now, and
	// throttles that are full again at now (housekeeping). Revoked tokens
	// that have not expired stay, so a reused refresh token can still be
	// recognised.
	Purge(ctx context.Context, now time.Time) error

	// The OAuth2 authorization server's state (oauth.go).
	OAuthStore

	// Users' security keys and WebAuthn ceremonies (webauthn.go).
	WebAuthnStore

	// Ping checks that the database answers a read now (the server's
	// readiness probe); an error after Close.
	Ping(ctx context.Context) error

	// Close releases the store; calling it again is harmless.
	Close() error
}

// ThrottleRate is a token bucket: Burst failures at once, then one more
// every Every. Both must be positive, and Burst*Every at most 100 years.
type ThrottleRate struct {
	Burst int
	Every time.Duration
}

// maxThrottleSpan bounds Burst*Every (and keeps the arithmetic in int64
// nanoseconds).
const maxThrottleSpan = 100 * 365 * 24 * time.Hour

// ThrottleSpans checks r and returns, in nanoseconds, Every and the room
// (Burst-1)*Every: a bucket is empty at now when it is full again later
// than now+room. For implementations.
func ThrottleSpans(r ThrottleRate) (every, room int64, err error) {
	if r.Burst < 1 || r.Every <= 0 || time.Duration(r.Burst) > maxThrottleSpan/r.Every {
		return 0, 0, errors.New("invalid throttle rate")
	}
	return int64(r.Every), int64(r.Burst-1) * int64(r.Every), nil
}

// ThrottleWaitOf is ThrottleWait's answer for a bucket full again at full
// (Unix nanoseconds) at now. For implementations.
func ThrottleWaitOf(full, now, room int64) time.Duration {
	return time.Duration(max(0, full-now-room))
}
