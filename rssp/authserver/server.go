package authserver

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
)

// CSC is what the authorization server uses of the CSC service
// (*service.Service implements it): its clock and limits, the users who log
// in, their credentials and factors, the credential tokens it issues, and
// the audit log.
type CSC interface {
	// Now is the service's clock.
	Now() time.Time
	// Options are the service's limits and lifetimes (tokens, SADs,
	// numSignatures, hashes).
	Options() service.Options
	// CheckPassword checks a user's password at the login page (audited,
	// throttled, its hash bounded).
	CheckPassword(ctx context.Context, name, password string) (store.User, error)
	// CheckClientSecret checks a client's secret against encoded ("" for
	// an unknown client): nil, secret.ErrMismatch, or a throttled/busy
	// error of the service.
	CheckClientSecret(ctx context.Context, clientID, value, encoded string) error
	// UserCredential returns a credential of the user: invalid_request
	// when it is unknown or another user's.
	UserCredential(ctx context.Context, userID, credentialID string) (store.Credential, error)
	// CheckUsable refuses a disabled, locked or expired credential.
	CheckUsable(c store.Credential) error
	// NeedsKey reports whether the credential's authorization needs its
	// owner's security key (on the consent page).
	NeedsKey(c store.Credential) bool
	// CheckFactors checks the credential's factors (PIN, OTP), counting
	// failures and locking the credential at the limit.
	CheckFactors(ctx context.Context, c store.Credential, factors []csc.AuthData) error
	// IssueCredentialToken issues the credential-scope access token
	// value, with its SAD, for what the user granted; it returns its
	// lifetime.
	IssueCredentialToken(ctx context.Context, value string, g service.CredentialGrant) (time.Duration, error)
	// Audit appends a row to the audit log; result is "ok" or an error
	// code.
	Audit(ctx context.Context, event, userID, credentialID string, hashes [][]byte, result, detail string)
}

var _ CSC = (*service.Service)(nil)

// Server is the authorization server's logic.
type Server struct {
	csc CSC
	st  store.Store
	opt service.OAuthOptions
	svc service.Options
	rp  atomic.Pointer[webauthn.WebAuthn] // nil: no security keys (fido.go)
}

// New returns the authorization server over the CSC service and the store
// they share, with these lifetimes (zero values take the defaults: codes
// 60s, pushed requests 90s, pending authorizations and login sessions
// 10m).
func New(c CSC, st store.Store, opt service.OAuthOptions) *Server {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opt.CodeTTL, 60*time.Second)
	def(&opt.RequestURITTL, 90*time.Second)
	def(&opt.PendingTTL, 10*time.Minute)
	def(&opt.SessionTTL, 10*time.Minute)
	return &Server{csc: c, st: st, opt: opt, svc: c.Options()}
}

// Options returns the lifetimes in force.
func (o *Server) Options() service.OAuthOptions { return o.opt }

// CredentialTokenTTL is the lifetime of a credential-scope access token
// (the service's SAD lifetime).
func (o *Server) CredentialTokenTTL() time.Duration { return o.svc.SADTTL }

// Purge deletes expired requests, codes, sessions and bindings.
func (o *Server) Purge(ctx context.Context, now time.Time) error { return o.st.PurgeOAuth(ctx, now) }

func (o *Server) now() time.Time { return o.csc.Now() }

// audit appends a row to the audit log: Result "ok" when err is nil, else
// err's code.
func (o *Server) audit(ctx context.Context, event, userID, credID string, hashes [][]byte, err error, detail string) {
	o.csc.Audit(ctx, event, userID, credID, hashes, resultCode(err), detail)
}
