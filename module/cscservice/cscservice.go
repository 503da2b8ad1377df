// Package cscservice is the adapter between the module and a CSC remote
// signing service: it satisfies module.Service with the CSC client
// (package cscclient), one instance per [[service]] table of the module
// config.
//
// # Service authentication
//
// With auth = "basic" the user name comes from the config and the password
// never does: `csctoken login` runs auth/login with rememberMe and keeps
// the token in the token store (the OS keyring or a 0600 file, keyed by the
// service's base URL and the user name, package cscclient/tokenstore). The
// module's Login uses that stored token and refreshes it silently
// (cscclient.Session); when no stored token works it answers
// module.ErrNotLoggedIn with a message telling the user to run
// `csctoken login`: a PKCS#11 module has no way to ask for a service
// password (the PIN a program asks for is the credential PIN).
//
// auth = "oauth2" needs the RSSP's OAuth2 authorization server and is not
// available yet: New fails with ErrOAuth2NotSupported (the seam is
// newAuthenticator). Browser authorization of credentials (the OAuth2
// "credential" scope) likewise answers ErrBrowserNotSupported.
//
// # Mapping
//
// ListCredentials runs credentials/list with credentialInfo,
// certificates=chain, certInfo and authInfo (credentials/info per
// credential when the service returns no credentialInfos) and maps each
// credential to a module.Credential: the authorization mode from the auth
// object (see authMode), the key algorithms from key/algo intersected with
// info's signAlgorithms. Authorize runs credentials/authorize with the PIN
// as the credential's Password object and polls credentials/authorizeCheck
// when the service answers with a handle (PasswordOOB). SignHash runs
// signatures/signHash; ECDSA signatures are handed over in DER, which the
// module converts to PKCS#11's r||s.
//
// Errors wrap the module's sentinels (ErrPINIncorrect as *module.PINError
// with the remaining attempts, ErrPINLocked, ErrNotLoggedIn,
// ErrSADInvalid, ErrRejected, ErrUnreachable) together with the client's
// *cscclient.Error, so that errors.Is works for both. Nothing secret is
// logged or put into an error.
//
// # Timeouts
//
// The module bounds every call with its context: the config's timeout
// (default 30s) for Authorize and SignHash, list_timeout (default 5s) for
// ListCredentials, its interactive timeout (5 minutes) for Login. The
// adapter applies the config's bounds itself as well (the earlier deadline
// wins): timeout for Login, Authorize and SignHash, list_timeout for
// listings, so that the CLI's calls are bounded too and a basic service's
// Login, which never needs the user, gives up with the signature timeout.
//
// A Service is safe for concurrent use.
//
// Usage:
//
//	m := module.New(module.Options{NewService: cscservice.Factory()})
package cscservice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/cscclient"
	"github.com/csctoken/csctoken/cscclient/tokenstore"
	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/config"
)

var (
	// ErrOAuth2NotSupported: the service's config says auth = "oauth2",
	// which needs the RSSP's OAuth2 authorization server (not integrated
	// yet).
	ErrOAuth2NotSupported = errors.New(`auth = "oauth2" is not supported yet; use auth = "basic"`)
	// ErrBrowserNotSupported: authorizing a credential in the browser
	// (OAuth2 "credential" scope) is not supported yet.
	ErrBrowserNotSupported = errors.New("authorizing credentials in the browser (OAuth2 credential scope) is not supported yet")
	// ErrWrongPassword: auth/login refused the user name and password.
	ErrWrongPassword = errors.New("wrong user name or password")
)

// UserAgent is sent with every request.
var UserAgent = "csctoken"

// Option configures a Service.
type Option func(*options)

type options struct {
	store      cscclient.SecretStore
	clientOpts []cscclient.Option
	poll       cscclient.PollOptions
}

// WithSecretStore sets where service tokens are kept. The default is a
// tokenstore.Store with default options (the OS keyring, else 0600 files
// under os.UserConfigDir()/csctoken/tokens), which is what `csctoken
// login` writes.
func WithSecretStore(s cscclient.SecretStore) Option { return func(o *options) { o.store = s } }

// WithClientOptions adds options of the CSC client (after those derived
// from the config: CA file, timeout, logger).
func WithClientOptions(opts ...cscclient.Option) Option {
	return func(o *options) { o.clientOpts = append(o.clientOpts, opts...) }
}

// WithPollOptions sets how credentials/authorizeCheck is polled after an
// out-of-band authorization started (the Timeout is always bounded by the
// call's context).
func WithPollOptions(p cscclient.PollOptions) Option { return func(o *options) { o.poll = p } }

// Service is the adapter of one [[service]]. Besides module.Service it
// offers what the csctoken CLI needs: PasswordLogin, Logout, Info,
// TokenStatus.
type Service struct {
	cfg   config.Service
	log   *slog.Logger
	cl    *cscclient.Client
	sess  *cscclient.Session
	store cscclient.SecretStore
	poll  cscclient.PollOptions

	infoMu sync.Mutex
	info   *csc.InfoResponse // cached after the first success

	mu    sync.Mutex
	auths map[string]credAuth // credential ID → how to authorize it (last listing)
}

var _ module.Service = (*Service)(nil)

// New returns the adapter of one service as a module.Service.
func New(cfg config.Service, log *slog.Logger, opts ...Option) (module.Service, error) {
	s, err := Open(cfg, log, opts...)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Factory returns a function of the type module.Options.NewService
// expects, building each service with opts.
func Factory(opts ...Option) func(config.Service, *slog.Logger) (module.Service, error) {
	return func(cfg config.Service, log *slog.Logger) (module.Service, error) {
		return New(cfg, log, opts...)
	}
}

// Open returns the adapter of one service. It does no network I/O.
func Open(cfg config.Service, log *slog.Logger, opts ...Option) (*Service, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = config.DefaultTimeout
	}
	if cfg.ListTimeout <= 0 {
		cfg.ListTimeout = config.DefaultListTimeout
	}
	if err := checkAuth(cfg); err != nil {
		return nil, fmt.Errorf("service %q: %w", cfg.Name, err)
	}
	copts := []cscclient.Option{
		cscclient.WithCAFile(cfg.CAFile),
		cscclient.WithTimeout(max(cfg.Timeout, cfg.ListTimeout)),
		cscclient.WithLogger(log),
		cscclient.WithUserAgent(UserAgent),
	}
	cl, err := cscclient.New(cfg.URL, append(copts, o.clientOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("service %q: %w", cfg.Name, err)
	}
	store := o.store
	if store == nil {
		ts, err := tokenstore.New(tokenstore.Options{Logger: log})
		if err != nil {
			return nil, fmt.Errorf("service %q: %w", cfg.Name, err)
		}
		store = ts
	}
	s := &Service{
		cfg: cfg, log: log, cl: cl, store: store, poll: o.poll,
		auths: map[string]credAuth{},
	}
	s.sess = newAuthenticator(s)
	cl.SetTokenSource(s.sess)
	return s, nil
}

// checkAuth refuses what cannot work yet.
func checkAuth(cfg config.Service) error {
	switch cfg.Auth {
	case config.AuthBasic:
		if cfg.Username == "" {
			return errors.New(`auth = "basic" needs a username`)
		}
		return nil
	case config.AuthOAuth2:
		// The seam: an OAuth2 session (authorization code with PKCE in
		// the browser, refresh at the token endpoint) plugs in here and
		// in newAuthenticator once the RSSP's authorization server is
		// there.
		return ErrOAuth2NotSupported
	}
	return fmt.Errorf("unknown auth %q", cfg.Auth)
}

// newAuthenticator returns the service session. For basic services the
// password is never asked here: without a working stored token the
// session answers cscclient.ErrLoginRequired.
func newAuthenticator(s *Service) *cscclient.Session {
	return s.cl.NewBasicSession(s.cfg.Username, s.store, nil)
}

// Config returns the service's config (with the default timeouts filled in).
func (s *Service) Config() config.Service { return s.cfg }

// Client returns the CSC client.
func (s *Service) Client() *cscclient.Client { return s.cl }

// Session returns the service session (the token source of the client).
func (s *Service) Session() *cscclient.Session { return s.sess }

// bound limits ctx to d (the earlier deadline wins): the module passes
// its own deadlines, the CLI none, and a basic service's Login needs no
// more than the config's timeout even when the module allows an
// interactive one.
func bound(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// Login implements module.Service. It is silent: the stored token, or a
// refreshed one, or module.ErrNotLoggedIn. Basic services never prompt,
// interactive or not.
func (s *Service) Login(ctx context.Context, interactive bool) error {
	ctx, cancel := bound(ctx, s.cfg.Timeout)
	defer cancel()
	if _, err := s.sess.Token(ctx); err != nil {
		return s.mapErr("service token", err)
	}
	return nil
}

// PasswordLogin runs auth/login with the config's user name, password and
// rememberMe, and stores the token (what `csctoken login` does). A refused
// password is ErrWrongPassword.
func (s *Service) PasswordLogin(ctx context.Context, password string) (*cscclient.Token, error) {
	ctx, cancel := bound(ctx, s.cfg.Timeout)
	defer cancel()
	tok, err := s.cl.LoginToken(ctx, s.cfg.Username, password, true)
	if err != nil {
		var ce *cscclient.Error
		if errors.Is(err, cscclient.ErrAuthentication) ||
			(errors.As(err, &ce) && ce.StatusCode == http.StatusUnauthorized) {
			return nil, fmt.Errorf("auth/login as %q: %w: %w", s.cfg.Username, ErrWrongPassword, err)
		}
		return nil, s.mapErr("auth/login", err)
	}
	if err := s.sess.Set(ctx, tok); err != nil {
		return tok, fmt.Errorf("logged in, but the token could not be stored: %w", err)
	}
	return tok, nil
}

// Logout revokes the service token (refresh and access token) and forgets
// it. The token is forgotten locally even when the revocation fails.
func (s *Service) Logout(ctx context.Context) error {
	ctx, cancel := bound(ctx, s.cfg.Timeout)
	defer cancel()
	if err := s.cl.Logout(ctx, s.sess); err != nil {
		return s.mapErr("auth/revoke", err)
	}
	return nil
}

// TokenStatus returns the stored or cached token without refreshing it
// (nil when there is none).
func (s *Service) TokenStatus(ctx context.Context) (*cscclient.Token, error) {
	return s.sess.Current(ctx)
}

// locator is implemented by tokenstore.Store.
type locator interface {
	Locate(ctx context.Context, service, user string) (tokenstore.Location, error)
}

// TokenLocation says where the service token is kept, when the store can
// tell (tokenstore.Store can).
func (s *Service) TokenLocation(ctx context.Context) (tokenstore.Location, error) {
	l, ok := s.store.(locator)
	if !ok {
		return tokenstore.Location{}, errors.New("the token store cannot say where tokens are")
	}
	return l.Locate(ctx, s.cl.BaseURL(), s.cfg.Username)
}

// Info calls info (no authentication) and caches the answer.
func (s *Service) Info(ctx context.Context) (*csc.InfoResponse, error) {
	s.infoMu.Lock()
	cached := s.info
	s.infoMu.Unlock()
	if cached != nil {
		return cached, nil
	}
	ctx, cancel := bound(ctx, s.cfg.ListTimeout)
	defer cancel()
	info, err := s.cl.Info(ctx, nil)
	if err != nil {
		return nil, s.mapErr("info", err)
	}
	s.infoMu.Lock()
	s.info = info
	s.infoMu.Unlock()
	return info, nil
}
