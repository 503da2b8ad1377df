// Package service is the RSSP's business logic, free of HTTP: service
// authentication (auth/login tokens), credentials and their certificates,
// explicit credential authorization (PIN and TOTP factors, SCAL1 and SCAL2
// SADs), hash signing, time-stamping, PIN retry limits and the audit log.
//
// The OAuth2 authorization server stands beside it (rssp/authserver) and
// uses it through a narrow interface, implemented in oauth.go.
//
// Every method takes a context and is safe for concurrent use. Errors wrap
// one of the kinds in errors.go; rssp/server maps them to CSC error codes.
package service

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/notify"
	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/store"
)

// Issuer issues credential certificates (the built-in CA, rssp/ca).
type Issuer interface {
	// Issue returns a DER certificate for pub with the user's name as subject.
	Issue(userName, credentialID string, pub crypto.PublicKey, validity time.Duration) ([]byte, error)
	// Chain returns the CA certificates above the end-entity, DER, nearest first.
	Chain() [][]byte
}

// Timestamper issues RFC 3161 time-stamp tokens (rssp/tsa).
type Timestamper interface {
	Timestamp(digest []byte, h crypto.Hash, nonce *big.Int) ([]byte, error)
}

// Sealer seals small secrets at rest (TOTP seeds) under the KEK.
type Sealer interface {
	Seal(plaintext, aad []byte) []byte
	Open(sealed, aad []byte) ([]byte, error)
}

// Options are the service's limits and lifetimes.
type Options struct {
	Name            string // service name, issuer of TOTP URIs
	PublicURL       string // base URL of the service, for approval links
	PINRetries      int
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
	SADTTL          time.Duration
	MaxHashes       int
	MaxMultisign    int
	CertValidity    time.Duration
	Argon2          secret.Params
	// HashSlots bounds the argon2id verifications running at once (one
	// is kept for PIN checks behind a valid token); 0: as many as fit in
	// DefaultHashMemory. HashWait is how long a check queues for a slot
	// before the request is answered 503 (0: DefaultHashWait).
	HashSlots int
	HashWait  time.Duration
	// AccountRate and AddressRate throttle wrong passwords and client
	// secrets (see throttle.go); zero: the defaults, Burst < 0: off.
	AccountRate Rate
	AddressRate Rate
	// FIDOForSCAL2: every SCAL 2 credential needs its owner's security key
	// (as credentials enrolled with AuthFIDO do): authorized on the consent
	// page only ([fido] require_for_scal2).
	FIDOForSCAL2 bool
}

// Defaults of the password-hashing bound.
const (
	DefaultHashMemory = 64 << 20 // bytes of argon2id memory at once
	DefaultHashWait   = 2 * time.Second
)

// Service is the RSSP.
type Service struct {
	store    store.Store
	keys     keystore.Backend            // where new keys are made
	backends map[string]keystore.Backend // by Name(), to sign with existing keys
	issuer   Issuer
	tsa      Timestamper
	sealer   Sealer
	pending  store.PendingStore // nil: no out-of-band factors, no async signing
	external *External          // nil: only the service's own tokens (external.go)
	notifier notify.Notifier    // nil: no out-of-band factors
	metrics  Metrics
	opt      Options
	public   atomic.Pointer[string] // PublicURL, updated once the port is known
	log      *slog.Logger
	now      func() time.Time

	hashes    *secret.Limiter // bounds concurrent argon2id verifications
	passwords *guard          // throttles wrong passwords
	clients   *guard          // throttles wrong client secrets

	credMu      sync.Map // credential ID → *sync.Mutex serialising factor checks
	parsedCache sync.Map // credential ID → *parsedCred
	// credCache: credential ID → store.Credential, the part that never
	// changes after enrolment, without secrets (signingCredential).
	credCache sync.Map
}

// Deps are what New needs.
type Deps struct {
	Store    store.Store
	Keys     keystore.Backend   // backend for new credentials
	Backends []keystore.Backend // others that hold existing keys (optional)
	Issuer   Issuer
	TSA      Timestamper // optional: signatures/timestamp is not served without it
	Sealer   Sealer
	// Pending holds out-of-band authorizations, online OTP challenges and
	// asynchronous operations (optional: without it those are not served).
	Pending store.PendingStore
	// Notifier delivers approval links and online OTPs (optional).
	Notifier notify.Notifier
	// Metrics counts signatures, factor failures and audit rows (optional).
	Metrics Metrics
	Logger  *slog.Logger
	Now     func() time.Time // optional clock for tests
}

// New builds the service.
func New(d Deps, opt Options) (*Service, error) {
	if d.Store == nil || d.Keys == nil || d.Issuer == nil || d.Sealer == nil {
		return nil, errors.New("service: store, keystore, issuer and sealer are required")
	}
	if opt.PINRetries < 1 || opt.MaxHashes < 1 || opt.MaxMultisign < 1 || opt.SADTTL <= 0 ||
		opt.AccessTokenTTL <= 0 || opt.RefreshTokenTTL <= 0 || opt.CertValidity <= 0 {
		return nil, fmt.Errorf("service: incomplete options %+v", opt)
	}
	if opt.Argon2.Time == 0 {
		opt.Argon2 = secret.DefaultParams
	}
	if opt.HashSlots <= 0 {
		opt.HashSlots = secret.SlotsFor(DefaultHashMemory, opt.Argon2)
	}
	if opt.HashWait <= 0 {
		opt.HashWait = DefaultHashWait
	}
	opt.AccountRate = opt.AccountRate.orDefault(DefaultAccountRate)
	opt.AddressRate = opt.AddressRate.orDefault(DefaultAddressRate)
	s := &Service{
		store:    d.Store,
		keys:     d.Keys,
		backends: map[string]keystore.Backend{d.Keys.Name(): d.Keys},
		issuer:   d.Issuer,
		tsa:      d.TSA,
		sealer:   d.Sealer,
		pending:  d.Pending,
		notifier: d.Notifier,
		metrics:  d.Metrics,
		opt:      opt,
		log:      d.Logger,
		now:      d.Now,
		hashes:   secret.NewLimiter(opt.HashSlots, opt.HashWait),
	}
	var err error
	if s.passwords, err = newGuard("password", opt.AccountRate, opt.AddressRate); err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	if s.clients, err = newGuard("client secret", opt.AccountRate, opt.AddressRate); err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	s.public.Store(&opt.PublicURL)
	for _, b := range d.Backends {
		s.backends[b.Name()] = b
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.metrics == nil {
		s.metrics = noMetrics{}
	}
	return s, nil
}

// HasTimestamp says whether signatures/timestamp is served.
func (s *Service) HasTimestamp() bool { return s.tsa != nil }

// SetPublicURL changes the base URL used in approval links (set once the
// listener's port is known).
func (s *Service) SetPublicURL(u string) { s.public.Store(&u) }

func (s *Service) publicURL() string { return *s.public.Load() }

// HasPending says whether out-of-band authorization, online OTPs and
// asynchronous signing are served.
func (s *Service) HasPending() bool { return s.pending != nil && s.notifier != nil }

// Options returns the service's options.
func (s *Service) Options() Options { return s.opt }

// Principal is the authenticated caller of a method.
type Principal struct {
	UserID    string
	UserName  string
	TokenHash []byte
	Family    string
	Scope     string
	ClientID  string
	// CredentialID is the credential a credential-scope token is bound to
	// (set by AuthenticateMethod).
	CredentialID string
	bearer       string // a credential-scope token itself: its own SAD
}

type ctxKey int

const clientAddrKey ctxKey = 0

// WithClientAddr records the caller's network address for the audit log.
func WithClientAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, clientAddrKey, addr)
}

func clientAddr(ctx context.Context) string {
	v, _ := ctx.Value(clientAddrKey).(string)
	return v
}

// auditEvent builds the audit row of an event at the current time: Result
// "ok" when err is nil, else err's code; the client's address comes from
// ctx (WithClientAddr), the hashes are written in base64.
func (s *Service) auditEvent(ctx context.Context, event string, userID, credID string, hashes [][]byte, err error, detail string) store.AuditEvent {
	result := "ok"
	if err != nil {
		result = resultCode(err)
	}
	var hs []string
	if len(hashes) > 0 {
		hs = make([]string, len(hashes))
		for i, h := range hashes {
			hs[i] = encodeB64(h)
		}
	}
	return store.AuditEvent{
		Time:         s.now().UTC(),
		Event:        event,
		UserID:       userID,
		CredentialID: credID,
		ClientAddr:   clientAddr(ctx),
		Hashes:       hs,
		Result:       result,
		Detail:       detail,
	}
}

// audit appends one row; a failure to audit is logged loudly (and fails the
// operation when it happens before the effect, see callers).
func (s *Service) audit(ctx context.Context, event string, userID, credID string, hashes [][]byte, err error, detail string) error {
	return s.appendAudit(ctx, s.auditEvent(ctx, event, userID, credID, hashes, err, detail))
}

func (s *Service) appendAudit(ctx context.Context, e store.AuditEvent) error {
	_, err := s.store.AppendAudit(context.WithoutCancel(ctx), e)
	s.metrics.AuditAppended(err)
	if err != nil {
		s.log.Error("audit append failed", "event", e.Event, "err", err)
	}
	return err
}

// resultCode names an error for the audit log.
func resultCode(err error) string {
	for _, k := range []struct {
		kind error
		code string
	}{
		{ErrInvalidPIN, "invalid_pin"}, {ErrInvalidOTP, "invalid_otp"}, {ErrLocked, "credential_locked"},
		{ErrDisabled, "credential_disabled"}, {ErrInvalidToken, "invalid_token"}, {ErrExpiredToken, "expired_token"},
		{ErrAuthentication, "authentication_error"}, {ErrAccessDenied, "access_denied"}, {ErrInvalidRequest, "invalid_request"},
		{ErrThrottled, "throttled"}, {ErrUnavailable, "temporarily_unavailable"},
	} {
		if errors.Is(err, k.kind) {
			return k.code
		}
	}
	return "server_error"
}

// busy turns the hash limiter's refusal into ErrUnavailable (503 with
// Retry-After); other errors pass.
func busy(err error) error {
	if errors.Is(err, secret.ErrBusy) {
		return &Problem{Kind: ErrUnavailable, Description: "Too many logins at once; try again shortly", Err: err, RetryAfter: time.Second}
	}
	return err
}

// verifyPassword checks a password, client secret or PIN through the hash
// limiter: nil, ErrMismatch-wrapping for a wrong one, or busy's error.
// authenticated callers (a PIN behind a valid token) may take the reserved
// slot.
func (s *Service) verifyPassword(ctx context.Context, pw, encoded string, authenticated bool) error {
	var err error
	if authenticated {
		err = s.hashes.VerifyAuthenticated(ctx, pw, encoded)
	} else {
		err = s.hashes.Verify(ctx, pw, encoded)
	}
	return busy(err)
}

// verifyDummy burns a verification for an unknown name (same cost and
// queue as verifyPassword): nil or busy's error.
func (s *Service) verifyDummy(ctx context.Context, pw string) error {
	return busy(s.hashes.VerifyDummy(ctx, pw))
}

// parseCert returns the end-entity certificate of a credential.
func parseCert(c store.Credential) (*x509.Certificate, error) {
	if len(c.CertChain) == 0 {
		return nil, errors.New("credential has no certificate")
	}
	return x509.ParseCertificate(c.CertChain[0])
}

// Purge deletes expired tokens and SADs.
func (s *Service) Purge(ctx context.Context, now time.Time) error {
	if err := s.store.Purge(ctx, now); err != nil {
		return err
	}
	if s.pending != nil {
		return s.pending.PurgePending(ctx, now)
	}
	return nil
}

// VerifyAudit checks the audit chain (rssp admin audit verify).
func (s *Service) VerifyAudit(ctx context.Context) (int64, error) {
	return store.VerifyAudit(ctx, s.store)
}
