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
// With auth = "oauth2" the service login is the OAuth2 authorization code
// grant with PKCE in the system browser (package cscclient/oauth; a public
// client, client_id from the config, loopback redirect URI). The tokens go
// to the same store, and are refreshed silently at the token endpoint.
// The browser opens only from Login with interactive (the module's
// C_Login, and signing in browser mode) or BrowserLogin (`csctoken
// login`); listings never open it and answer module.ErrNotLoggedIn
// without a working token. Logout revokes at oauth2/revoke.
//
// # Authorizing credentials in the browser
//
// AuthorizeInBrowser (credential_auth = "browser", and credentials whose
// factors a PIN cannot carry: oauth2code mode, OTP) runs the OAuth2
// "credential" scope with the hashes and a label per hash naming the
// program and the key; the consent page shows them and collects the
// credential's factors. The credential token it returns is carried in
// the module.SAD (marked, see credTokenPrefix) and SignHash sends it as
// the Bearer of signatures/signHash, without SAD. Any auth type can do
// this; it needs client_id in the config. A user who declines, or does not
// finish in time, is module.ErrCanceled (CKR_FUNCTION_CANCELED).
//
// The authorization URL is opened with the system browser (xdg-open, which
// honours $BROWSER, on Linux), logged at Info, and printed on stderr when
// that is a terminal (see WithURLWriter).
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
// Browser flows (an oauth2 service's interactive Login, AuthorizeInBrowser)
// are bounded by the caller's context (the module's interactive timeout)
// and the OAuth2 timeout (WithOAuthTimeout, 5 minutes by default) only;
// a cancelled context (C_Finalize) ends them at once.
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
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/cscclient"
	"github.com/csctoken/csctoken/cscclient/oauth"
	"github.com/csctoken/csctoken/cscclient/tokenstore"
	"github.com/csctoken/csctoken/internal/consentbrowser"
	"github.com/csctoken/csctoken/internal/hostapp"
	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/config"
)

// ErrWrongPassword: auth/login refused the user name and password.
var ErrWrongPassword = errors.New("wrong user name or password")

// UserAgent is sent with every request.
var UserAgent = "csctoken"

// currentHost is the program the module runs in (tests swap it).
var currentHost = hostapp.Current

// Option configures a Service.
type Option func(*options)

type options struct {
	store        cscclient.SecretStore
	clientOpts   []cscclient.Option
	poll         cscclient.PollOptions
	out          io.Writer
	outSet       bool
	opener       oauth.Opener
	oauthTimeout time.Duration
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
// offers what the csctoken CLI needs: PasswordLogin, BrowserLogin, Logout,
// Info, TokenStatus.
type Service struct {
	cfg   config.Service
	log   *slog.Logger
	cl    *cscclient.Client
	sess  *cscclient.Session
	store cscclient.SecretStore
	poll  cscclient.PollOptions

	// OAuth2 (auth = "oauth2", browser authorization of credentials)
	out          io.Writer // where the authorization URL is printed; nil: nowhere
	opener       oauth.Opener
	oauthTimeout time.Duration
	oauthMu      sync.Mutex
	oc           *oauth.Client // made at the first use, guarded by oauthMu

	infoMu sync.Mutex
	info   *csc.InfoResponse // cached after the first success
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
		cscclient.WithFailoverURLs(cfg.FailoverURLs...),
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
	if o.opener == nil {
		if h := currentHost(); h.OwnBrowser() && consentbrowser.Supported {
			// The system browser would open the consent page as a tab of
			// this very process, whose connections wait on C_Sign.
			o.opener = consentbrowser.Opener{Exe: h.Exe, CAFile: cfg.CAFile, Logger: log}
		}
	}
	s := &Service{
		cfg: cfg, log: log, cl: cl, store: store, poll: o.poll,
		out: o.out, opener: o.opener, oauthTimeout: o.oauthTimeout,
	}
	if !o.outSet && term.IsTerminal(int(os.Stderr.Fd())) {
		s.out = os.Stderr
	}
	s.sess = newAuthenticator(s)
	cl.SetTokenSource(s.sess)
	return s, nil
}

// checkAuth refuses a config that cannot work.
func checkAuth(cfg config.Service) error {
	switch cfg.Auth {
	case config.AuthBasic:
		if cfg.Username == "" {
			return errors.New(`auth = "basic" needs a username`)
		}
		return nil
	case config.AuthOAuth2:
		if cfg.ClientID == "" {
			return ErrNoClientID
		}
		return nil
	}
	return fmt.Errorf("unknown auth %q", cfg.Auth)
}

// newAuthenticator returns the service session. For basic services the
// password is never asked here: without a working stored token the
// session answers cscclient.ErrLoginRequired. For oauth2 services see
// newOAuthSession.
func newAuthenticator(s *Service) *cscclient.Session {
	if s.cfg.Auth == config.AuthOAuth2 {
		return newOAuthSession(s)
	}
	return s.cl.NewBasicSession(s.cfg.Username, s.store, nil)
}

// Config returns the service's config (with the default timeouts filled in).
func (s *Service) Config() config.Service { return s.cfg }

// Client returns the CSC client.
func (s *Service) Client() *cscclient.Client { return s.cl }

// CloseIdleConnections closes the client's kept-alive connections (the
// module calls it at C_Finalize).
func (s *Service) CloseIdleConnections() { s.cl.CloseIdleConnections() }

// Session returns the service session (the token source of the client).
func (s *Service) Session() *cscclient.Session { return s.sess }

// bound limits ctx to d (the earlier deadline wins): the module passes
// its own deadlines, the CLI none, and a basic service's Login needs no
// more than the config's timeout even when the module allows an
// interactive one.
func bound(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// Login implements module.Service: the stored token, or a refreshed one.
// Without one, an oauth2 service with interactive logs in in the browser
// (bounded by ctx and the OAuth2 timeout; declined or not completed in
// time is module.ErrCanceled); otherwise, and always for basic services,
// which never prompt, the answer is module.ErrNotLoggedIn.
func (s *Service) Login(ctx context.Context, interactive bool) error {
	if interactive && s.cfg.Auth == config.AuthOAuth2 {
		if _, err := s.sess.Token(withInteractive(ctx)); err != nil {
			return s.flowErr("service login", err)
		}
		return nil
	}
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

// Logout revokes the service token (refresh and access token: auth/revoke,
// or oauth2/revoke for an oauth2 service) and forgets it. The token is
// forgotten locally even when the revocation fails.
func (s *Service) Logout(ctx context.Context) error {
	ctx, cancel := bound(ctx, s.cfg.Timeout)
	defer cancel()
	if s.cfg.Auth == config.AuthOAuth2 {
		oc, err := s.oauthClient(ctx)
		if err != nil {
			if cerr := s.sess.Clear(ctx); cerr != nil {
				return errors.Join(s.mapErr("oauth2/revoke", err), cerr)
			}
			return s.mapErr("oauth2/revoke", err)
		}
		if err := oc.Logout(ctx, s.sess); err != nil {
			return s.mapErr("oauth2/revoke", err)
		}
		return nil
	}
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
