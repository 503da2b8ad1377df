package cscservice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/csctoken/csctoken/cscclient"
	"github.com/csctoken/csctoken/cscclient/oauth"
	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/config"
)

// ErrNoClientID: an OAuth2 flow is needed (auth = "oauth2", credential_auth
// = "browser", or a credential authorized in the browser) but the service's
// config has no client_id.
var ErrNoClientID = errors.New(`no client_id in the service's config (needed for OAuth2 in the browser: auth = "oauth2", credential_auth = "browser", or credentials authorized on the service's page)`)

// credTokenPrefix marks a module.SAD whose value is an OAuth2 credential
// token (sent as the Bearer of signatures/signHash, without SAD) rather
// than a SAD. The module treats SADs as opaque; only SignHash reads it.
const credTokenPrefix = "csctoken-credential-token:"

// maxDescription is the CSC limit of an authorization's description.
const maxDescription = 500

// WithURLWriter sets where the authorization URL of a browser flow is
// printed for the user, besides opening the browser (the CLI: its stderr).
// Without it, the URL goes to the process's stderr only when that is a
// terminal (a PKCS#11 host run from a shell, e.g. over SSH): a module
// writes nothing on the streams of a graphical host. The URL is logged at
// Info in the module log in any case.
func WithURLWriter(w io.Writer) Option { return func(o *options) { o.out = w; o.outSet = true } }

// WithOpener replaces the system browser (github.com/pkg/browser: xdg-open,
// which honours $BROWSER, on Linux) for the OAuth2 flows.
func WithOpener(op oauth.Opener) Option { return func(o *options) { o.opener = op } }

// WithOAuthTimeout bounds the wait for the browser in one OAuth2 flow
// (oauth.DefaultTimeout, 5 minutes, when zero); the caller's context
// bounds it too.
func WithOAuthTimeout(d time.Duration) Option { return func(o *options) { o.oauthTimeout = d } }

// interactiveKey marks a context in which the service login may open the
// browser (Login with interactive, BrowserLogin).
type interactiveKey struct{}

func withInteractive(ctx context.Context) context.Context {
	return context.WithValue(ctx, interactiveKey{}, true)
}

func isInteractive(ctx context.Context) bool {
	v, _ := ctx.Value(interactiveKey{}).(bool)
	return v
}

// oauthClient returns the OAuth2 client of the service's authorization
// server, made at the first use (it needs info, so Open stays off the
// network). A failure is not remembered: the next call tries again.
func (s *Service) oauthClient(ctx context.Context) (*oauth.Client, error) {
	s.oauthMu.Lock()
	defer s.oauthMu.Unlock()
	if s.oc != nil {
		return s.oc, nil
	}
	if s.cfg.ClientID == "" {
		return nil, ErrNoClientID
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	issuer := info.OAuth2Issuer
	if issuer == "" {
		issuer = info.OAuth2
	}
	if issuer == "" {
		return nil, fmt.Errorf("%w: the service at %s offers no OAuth2 authorization server (info has neither oauth2 nor oauth2Issuer)",
			module.ErrRejected, s.cfg.URL)
	}
	oc, err := oauth.NewForService(ctx, s.cl, oauth.Config{
		Issuer:   issuer,
		ClientID: s.cfg.ClientID,
		Out:      s.out,
		Opener:   s.opener,
		Timeout:  s.oauthTimeout,
		Logger:   s.log,
		// A credential authorization nobody waits for any more (C_Finalize,
		// C_CloseSession, the interactive timeout) is reported abandoned
		// with the service token, so the consent page says so.
		ServiceToken: func(ctx context.Context) (string, error) {
			tok, err := s.sess.Token(ctx)
			if err != nil {
				return "", err
			}
			return tok.AccessToken, nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("OAuth2 client: %w", err)
	}
	s.oc = oc
	return oc, nil
}

// newOAuthSession is the service session of an oauth2 service: tokens
// refreshed at the token endpoint, a new login in the browser only from a
// context marked interactive (module.Service.Login with interactive,
// BrowserLogin); elsewhere (listings, signatures) a missing login is
// cscclient.ErrLoginRequired, as for basic services. Tokens are kept in
// the same store and under the same key (base URL, user name) as those of
// `csctoken login`.
func newOAuthSession(s *Service) *cscclient.Session {
	return cscclient.NewSession(cscclient.SessionConfig{
		Service: s.cl.BaseURL(),
		User:    s.cfg.Username,
		Refresh: func(ctx context.Context, refreshToken string) (*cscclient.Token, error) {
			oc, err := s.oauthClient(ctx)
			if err != nil {
				return nil, err
			}
			return oc.Refresh(ctx, refreshToken)
		},
		Login: func(ctx context.Context) (*cscclient.Token, error) {
			if !isInteractive(ctx) {
				return nil, cscclient.ErrLoginRequired
			}
			oc, err := s.oauthClient(ctx)
			if err != nil {
				return nil, err
			}
			s.log.Info("service login in the browser")
			return oc.Login(ctx)
		},
		Store:  s.store,
		Logger: s.log,
	})
}

// BrowserLogin logs in to an oauth2 service in the browser (its login and
// consent pages), replacing any stored token, and stores the new one; the
// grant of the replaced token is revoked (best effort). It is what
// `csctoken login` does for auth = "oauth2".
func (s *Service) BrowserLogin(ctx context.Context) (*cscclient.Token, error) {
	if s.cfg.Auth != config.AuthOAuth2 {
		return nil, fmt.Errorf("service %q: auth = %q: the browser login is for auth = \"oauth2\"", s.cfg.Name, s.cfg.Auth)
	}
	oc, err := s.oauthClient(ctx)
	if err != nil {
		return nil, s.flowErr("service login", err)
	}
	old, _ := s.sess.Current(ctx)
	tok, err := oc.Login(withInteractive(ctx))
	if err != nil {
		return nil, s.flowErr("service login", err)
	}
	if err := s.sess.Set(ctx, tok); err != nil {
		return tok, fmt.Errorf("logged in, but the token could not be stored: %w", err)
	}
	if old != nil && old.RefreshToken != "" && old.RefreshToken != tok.RefreshToken {
		if err := oc.Revoke(ctx, old.RefreshToken, "refresh_token"); err != nil {
			s.log.Info("revoking the replaced login failed", "err", err.Error())
		}
	}
	return tok, nil
}

// flowErr maps the failure of a browser flow (service login or credential
// authorization): declined or not completed in time is
// module.ErrCanceled (CKR_FUNCTION_CANCELED, docs/mapping.md, "Errors"); another
// OAuth2 error answer is module.ErrRejected; no answer from the server is
// module.ErrUnreachable (mapErr); a cancelled context stays as it is
// (C_Finalize, C_CloseSession).
func (s *Service) flowErr(op string, err error) error {
	var oe *oauth.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s: %w", op, err)
	case errors.Is(err, cscclient.ErrAccessDenied):
		return fmt.Errorf("%s: declined in the browser: %w: %w", op, module.ErrCanceled, err)
	case errors.Is(err, oauth.ErrTimeout):
		return fmt.Errorf("%s: not completed in the browser in time: %w: %w", op, module.ErrCanceled, err)
	case errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, cscclient.ErrTransport):
		return fmt.Errorf("%s: not completed in the browser in time: %w: %w", op, module.ErrCanceled, err)
	case errors.Is(err, oauth.ErrNoBrowser):
		return fmt.Errorf("%s: %w (%s)", op, err, browserHint())
	case errors.Is(err, ErrNoClientID), errors.Is(err, module.ErrRejected):
		return fmt.Errorf("service %q: %s: %w", s.cfg.Name, op, err)
	case errors.Is(err, oauth.ErrStateMismatch), errors.Is(err, oauth.ErrIssuerMismatch):
		return fmt.Errorf("%s: %w", op, err)
	case errors.As(err, &oe) && oe.Code != "" && oe.StatusCode < 500 &&
		!errors.Is(err, cscclient.ErrUnavailable) && !errors.Is(err, cscclient.ErrServer) &&
		!errors.Is(err, cscclient.ErrRateLimited):
		// invalid_client, invalid_request, invalid_scope...: the server
		// refused the request (a client not registered, a credential it
		// will not authorize this way).
		return fmt.Errorf("%s: %w: %w", op, module.ErrRejected, err)
	case errors.Is(err, cscclient.ErrInvalidArgument):
		return fmt.Errorf("%s: %w: %w", op, module.ErrRejected, err)
	case mapped(err):
		return fmt.Errorf("%s: %w", op, err) // from info, through mapErr
	}
	return s.mapErr(op, err)
}

// AuthorizeInBrowser implements module.Service: the OAuth2 credential
// scope (package cscclient/oauth). The service's consent page shows the
// credential, the number of signatures and, when req has hashes, each hash
// with a label naming the program and the key ("pkcs11-tool — Invoices":
// PKCS#11 knows no document names), and collects the credential's factors.
// The credential token comes back as the SAD's value, marked so that
// SignHash sends it as the Bearer of signatures/signHash without SAD (a CSC
// v1 server's token of type SAD is a plain SAD). Declined or not completed
// in time is module.ErrCanceled.
//
// A pushed request (PAR) can be opened for as long as the server keeps it
// (90 s on our rssp): enough for the system browser, short for a user who
// copies the printed URL by hand.
func (s *Service) AuthorizeInBrowser(ctx context.Context, req module.AuthorizeRequest) (module.SAD, error) {
	op := fmt.Sprintf("credential %s: authorization in the browser", req.CredentialID)
	oc, err := s.oauthClient(ctx)
	if err != nil {
		return module.SAD{}, s.flowErr(op, err)
	}
	n := max(req.NumSignatures, 1)
	cr := oauth.CredentialRequest{
		CredentialID:  req.CredentialID,
		NumSignatures: n,
		Description:   req.Description,
	}
	label := documentLabel(req)
	if len(req.Hashes) > 0 {
		cr.Hashes, cr.HashAlgorithmOID = req.Hashes, req.HashAlgOID
		cr.NumSignatures = len(req.Hashes)
		n = len(req.Hashes)
		cr.Labels = make([]string, len(req.Hashes))
		for i := range cr.Labels {
			cr.Labels[i] = label
		}
	}
	if cr.Description == "" {
		cr.Description = clipText(fmt.Sprintf("%s, through the csctoken PKCS#11 module", label), maxDescription)
	}
	start := time.Now()
	s.log.Info("credential authorization in the browser", "credential", req.CredentialID, "signatures", n, "hashes", len(req.Hashes))
	tok, err := oc.AuthorizeCredential(ctx, cr)
	if err != nil {
		return module.SAD{}, s.flowErr(op, err)
	}
	s.log.Info("credential authorized in the browser", "credential", req.CredentialID,
		"after", time.Since(start).Round(time.Millisecond).String())
	sad := module.SAD{Value: credTokenPrefix + tok.AccessToken, Remaining: n, ExpiresAt: tok.Expiry}
	if tok.TokenType == "SAD" {
		sad.Value = tok.AccessToken
	}
	return sad, nil
}

// mapped reports whether err already wraps a module sentinel.
func mapped(err error) bool {
	for _, e := range []error{module.ErrPINIncorrect, module.ErrPINLocked, module.ErrUnreachable, module.ErrNotLoggedIn,
		module.ErrCanceled, module.ErrRejected, module.ErrSADInvalid} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// credentialToken returns the credential token a SAD carries, if it does.
func credentialToken(sad module.SAD) (string, bool) {
	return strings.CutPrefix(sad.Value, credTokenPrefix)
}

// documentLabel names what is signed on the consent page: the program and
// the key's label (the credential's description, else its ID, as the
// module sends it), as the PKCS#11 host sees them.
func documentLabel(req module.AuthorizeRequest) string {
	key := req.KeyLabel
	if key == "" {
		key = req.CredentialID
	}
	return clipText(programName()+" — "+key, 200)
}

// programName is the name of the program the module runs in: the base
// name of argv[0], else /proc/self/comm, else "a program".
func programName() string {
	if len(os.Args) > 0 && os.Args[0] != "" {
		if b := filepath.Base(os.Args[0]); b != "." && b != "/" {
			return printable(b)
		}
	}
	if b, err := os.ReadFile("/proc/self/comm"); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return printable(s)
		}
	}
	return "a program"
}

// printable drops control characters.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
}

// clipText keeps at most n bytes of s, on a rune boundary.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
