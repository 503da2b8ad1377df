package cscclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/csctoken/csctoken/csc"
)

// DefaultExpiryDelta is how long before its expiry an access token is
// treated as expired, for clock skew between client and server.
const DefaultExpiryDelta = 10 * time.Second

// defaultExpiresIn is the spec's default of expires_in (auth/login, §2).
const defaultExpiresIn = 3600 * time.Second

// timeNow is swapped by tests.
var timeNow = time.Now

// Token is a service access token with its refresh token. Its String,
// GoString and LogValue never show the tokens.
type Token struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"` // zero: does not expire
}

// Valid reports whether t holds an access token that does not expire within
// delta.
func (t *Token) Valid(delta time.Duration) bool {
	if t == nil || t.AccessToken == "" {
		return false
	}
	return t.Expiry.IsZero() || timeNow().Add(delta).Before(t.Expiry)
}

func (t Token) String() string {
	return fmt.Sprintf("Token{access:%s refresh:%s expiry:%s}",
		redacted(t.AccessToken), redacted(t.RefreshToken), t.Expiry.Format(time.RFC3339))
}

// GoString implements fmt.GoStringer (for %#v).
func (t Token) GoString() string { return t.String() }

// LogValue implements slog.LogValuer.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("access", t.AccessToken != ""),
		slog.Bool("refresh", t.RefreshToken != ""),
		slog.Time("expiry", t.Expiry))
}

func redacted(s string) string {
	if s == "" {
		return "none"
	}
	return "[redacted]"
}

// tokenFromLogin converts an auth/login (or oauth2/token) answer.
func tokenFromLogin(r *csc.LoginResponse) *Token {
	exp := defaultExpiresIn
	if r.ExpiresIn > 0 {
		exp = time.Duration(r.ExpiresIn) * time.Second
	}
	return &Token{AccessToken: r.AccessToken, RefreshToken: r.RefreshToken, Expiry: timeNow().Add(exp)}
}

// TokenSource supplies service access tokens.
type TokenSource interface {
	Token(ctx context.Context) (*Token, error)
}

// invalidator is implemented by sources that can drop a token the server
// refused.
type invalidator interface {
	Invalidate(accessToken string)
}

// StaticToken is a TokenSource that always returns the same access token.
type StaticToken string

// Token implements TokenSource.
func (s StaticToken) Token(context.Context) (*Token, error) {
	if s == "" {
		return nil, ErrLoginRequired
	}
	return &Token{AccessToken: string(s)}, nil
}

// SecretStore keeps a secret per service and user; tokenstore.Store
// implements it. Get returns an error wrapping fs.ErrNotExist when nothing is
// stored.
type SecretStore interface {
	Get(ctx context.Context, service, user string) ([]byte, error)
	Set(ctx context.Context, service, user string, secret []byte) error
	Delete(ctx context.Context, service, user string) error
}

// SessionConfig configures a Session.
type SessionConfig struct {
	// Service and User key the token in Store (the service's base URL and
	// the user name).
	Service, User string
	// Refresh gets a new token with a refresh token (Client.RefreshToken
	// for auth/login; the OAuth2 token endpoint later). Nil: no silent
	// refresh.
	Refresh func(ctx context.Context, refreshToken string) (*Token, error)
	// Login gets a token from the user (a password prompt, a browser) when
	// neither the cached access token nor the refresh token works. Nil: the
	// Session answers ErrLoginRequired then.
	Login func(ctx context.Context) (*Token, error)
	// Store persists the token across processes (optional).
	Store SecretStore
	// ExpiryDelta: DefaultExpiryDelta when zero.
	ExpiryDelta time.Duration
	// Logger: nothing is logged when nil. Tokens are never logged.
	Logger *slog.Logger
}

// Session is the service authentication of one user at one service: a
// TokenSource that caches the access token (guarded by a one-slot
// semaphore, so one refresh runs at a time and waiting callers honour their
// context), refreshes it silently with the refresh token shortly before it
// expires, and keeps it in a SecretStore. It is safe for concurrent use.
type Session struct {
	cfg SessionConfig
	sem chan struct{}
	log *slog.Logger

	// guarded by sem
	tok    *Token
	loaded bool

	rejMu    sync.Mutex
	rejected string // the last access token the server refused
}

func (s *Session) rejectedToken() string {
	s.rejMu.Lock()
	defer s.rejMu.Unlock()
	return s.rejected
}

// NewSession returns a Session.
func NewSession(cfg SessionConfig) *Session {
	if cfg.ExpiryDelta == 0 {
		cfg.ExpiryDelta = DefaultExpiryDelta
	}
	l := cfg.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Session{cfg: cfg, sem: make(chan struct{}, 1), log: l}
}

func (s *Session) lock(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Session) unlock() { <-s.sem }

// load reads the stored token once. Called with sem held.
func (s *Session) load(ctx context.Context) {
	if s.loaded || s.cfg.Store == nil {
		s.loaded = true
		return
	}
	b, err := s.cfg.Store.Get(ctx, s.cfg.Service, s.cfg.User)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.loaded = true
		return
	case err != nil:
		// Not marked loaded: a store that failed may answer next time.
		s.log.Warn("token store read failed", "service", s.cfg.Service, "user", s.cfg.User, "err", err)
		return
	}
	s.loaded = true
	var t Token
	if err := json.Unmarshal(b, &t); err != nil {
		s.log.Warn("stored token unreadable, ignored", "service", s.cfg.Service, "user", s.cfg.User)
		return
	}
	if s.tok == nil {
		s.tok = &t
	}
}

// reload replaces the cached token with the stored one when they differ.
// Called with sem held.
func (s *Session) reload(ctx context.Context) {
	if s.cfg.Store == nil {
		return
	}
	b, err := s.cfg.Store.Get(ctx, s.cfg.Service, s.cfg.User)
	if err != nil {
		return
	}
	var t Token
	if json.Unmarshal(b, &t) != nil {
		return
	}
	if t.AccessToken != "" && t.AccessToken == s.rejectedToken() {
		t.AccessToken, t.Expiry = "", time.Time{}
	}
	if t.AccessToken == "" && t.RefreshToken == "" {
		return
	}
	if s.tok == nil || t.AccessToken != s.tok.AccessToken || t.RefreshToken != s.tok.RefreshToken {
		s.tok = &t
	}
}

// save caches t and persists it. Called with sem held.
func (s *Session) save(ctx context.Context, t *Token) error {
	s.tok = t
	if s.cfg.Store == nil {
		return nil
	}
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.Set(ctx, s.cfg.Service, s.cfg.User, b); err != nil {
		s.log.Warn("token store write failed", "service", s.cfg.Service, "user", s.cfg.User, "err", err)
		return fmt.Errorf("store token: %w", err)
	}
	return nil
}

// Token implements TokenSource: the cached token while valid, else a
// refreshed one, else one from Login, else ErrLoginRequired.
func (s *Session) Token(ctx context.Context) (*Token, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	s.load(ctx)
	if rej := s.rejectedToken(); s.tok != nil && rej != "" && s.tok.AccessToken == rej {
		s.tok.AccessToken, s.tok.Expiry = "", time.Time{}
	}
	if s.tok.Valid(s.cfg.ExpiryDelta) {
		t := *s.tok
		return &t, nil
	}
	// Another process sharing the store (the CLI, another program with the
	// module) may have refreshed already; the server rotates refresh
	// tokens and may revoke a whole login when an old one comes back, so
	// look before refreshing.
	s.reload(ctx)
	if s.tok.Valid(s.cfg.ExpiryDelta) {
		t := *s.tok
		return &t, nil
	}
	if s.tok != nil && s.tok.RefreshToken != "" && s.cfg.Refresh != nil {
		nt, err := s.cfg.Refresh(ctx, s.tok.RefreshToken)
		switch {
		case err == nil && nt.Valid(s.cfg.ExpiryDelta):
			if nt.RefreshToken == "" {
				nt.RefreshToken = s.tok.RefreshToken // not rotated
			}
			_ = s.save(ctx, nt) // logged; the token works for this process anyway
			s.log.Debug("access token refreshed", "service", s.cfg.Service, "user", s.cfg.User)
			t := *nt
			return &t, nil
		case err == nil:
			return nil, fmt.Errorf("refresh: %w: no usable access token", ErrBadResponse)
		case isAuthFailure(err):
			// The refresh token is dead: forget it (unless another process
			// stored a newer login meanwhile), then try Login.
			tried := s.tok.RefreshToken
			s.tok = nil
			s.reload(ctx)
			if s.tok.Valid(s.cfg.ExpiryDelta) && s.tok.RefreshToken != tried {
				t := *s.tok
				return &t, nil
			}
			s.log.Info("refresh token refused; login needed", "service", s.cfg.Service, "user", s.cfg.User)
			if s.tok != nil && s.tok.RefreshToken == tried && s.cfg.Store != nil {
				_ = s.cfg.Store.Delete(ctx, s.cfg.Service, s.cfg.User)
			}
			s.tok = nil
		default:
			return nil, fmt.Errorf("refresh: %w", err)
		}
	}
	if s.cfg.Login == nil {
		return nil, ErrLoginRequired
	}
	nt, err := s.cfg.Login(ctx)
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	if !nt.Valid(s.cfg.ExpiryDelta) {
		return nil, fmt.Errorf("login: %w: no usable access token", ErrBadResponse)
	}
	_ = s.save(ctx, nt)
	t := *nt
	return &t, nil
}

// isAuthFailure reports whether err says the credentials (refresh token)
// are no good, as opposed to the service being unreachable.
func isAuthFailure(err error) bool {
	return errors.Is(err, ErrAuthentication) || errors.Is(err, ErrInvalidToken) ||
		errors.Is(err, ErrExpiredToken) || errors.Is(err, ErrLoginRequired)
}

// Set caches and stores t (after an explicit login). The error is the
// store's; t is cached even then.
func (s *Session) Set(ctx context.Context, t *Token) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	s.loaded = true
	c := *t
	return s.save(ctx, &c)
}

// Current returns the cached or stored token without refreshing it, or nil.
func (s *Session) Current(ctx context.Context) (*Token, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	s.load(ctx)
	if s.tok == nil {
		return nil, nil
	}
	t := *s.tok
	return &t, nil
}

// Invalidate drops the cached access token if it is accessToken (the
// server refused it); the refresh token is kept, so the next Token call
// refreshes. It never blocks.
func (s *Session) Invalidate(accessToken string) {
	s.rejMu.Lock()
	s.rejected = accessToken
	s.rejMu.Unlock()
}

// Clear forgets the token, cached and stored.
func (s *Session) Clear(ctx context.Context) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	s.tok = nil
	s.loaded = true
	if s.cfg.Store == nil {
		return nil
	}
	if err := s.cfg.Store.Delete(ctx, s.cfg.Service, s.cfg.User); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete stored token: %w", err)
	}
	return nil
}

// Transport is an http.RoundTripper that adds "Authorization: Bearer" from
// Source to requests for Origin (scheme and host; nil: any). A request that
// already has an Authorization header, or is for another origin, goes out
// unchanged: a token is never forwarded to another host. When the server
// answers 401, the token is handed back to Source's Invalidate, if it has
// one, so the next request gets a fresh one.
type Transport struct {
	Source TokenSource
	Base   http.RoundTripper // http.DefaultTransport when nil
	Origin *url.URL
	// Origins are further origins that get the token: the other nodes of
	// the same service.
	Origins []*url.URL
}

type ctxKey int

const (
	keyNoAuth ctxKey = iota
	keyBearer
	keyAuthNote
)

// authNote tells the client whether the Transport added a token.
type authNote struct{ fromSource bool }

// tokenError marks a failure of the TokenSource inside RoundTrip, so the
// client reports it as such and not as a transport failure.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return "service token: " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	ctx := req.Context()
	if t.Source == nil || req.Header.Get("Authorization") != "" || ctx.Value(keyNoAuth) != nil ||
		(t.Origin != nil && !sameOrigin(req.URL, t.Origin) && !slices.ContainsFunc(t.Origins, func(o *url.URL) bool { return sameOrigin(req.URL, o) })) {
		return base.RoundTrip(req)
	}
	tok, err := t.Source.Token(ctx)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &tokenError{err}
	}
	req2 := req.Clone(ctx)
	req2.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if n, ok := ctx.Value(keyAuthNote).(*authNote); ok {
		n.fromSource = true
	}
	resp, err := base.RoundTrip(req2)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		if inv, ok := t.Source.(invalidator); ok {
			inv.Invalidate(tok.AccessToken)
		}
	}
	return resp, err
}

func sameOrigin(a, b *url.URL) bool {
	return a.Scheme == b.Scheme && a.Host == b.Host
}

// WithCredentialToken returns a context whose calls send token as the
// Bearer instead of the service token: the credential-scoped OAuth2 token
// of an oauth2code credential, for credentials/info and signHash.
func WithCredentialToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, keyBearer, token)
}
