package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/authserver"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
)

// Options configure the authorization server.
type Options struct {
	// Issuer is the public base URL (https://host[:port][/prefix], no
	// trailing slash): the issuer identifier (RFC 8414) and the CSC
	// info.oauth2 base; the endpoints are Issuer+"/oauth2/...".
	Issuer string
	// ServiceName is shown on the pages (and by security keys).
	ServiceName string
	// FIDORPID is the WebAuthn relying party ID of security keys; empty:
	// the issuer's host name (an IP address: no security keys).
	FIDORPID string
	// MaxBodyBytes bounds form bodies (default 64 KiB).
	MaxBodyBytes int64
	// Lifetimes of codes, pushed requests, pending authorizations and
	// login sessions (defaults in service.OAuthOptions).
	Lifetimes service.OAuthOptions
	// Hydra, when set, serves only the login and consent pages of ORY
	// Hydra (hydra.go) under /oauth2/hydra/ and the security keys page,
	// and none of the authorization server's own endpoints.
	Hydra *HydraOptions
}

// Server is the authorization server's HTTP handler.
type Server struct {
	oauth  *authserver.Server
	svc    *service.Service
	opt    Options
	log    *slog.Logger
	issuer atomic.Pointer[string]
	mux    *http.ServeMux
	holds  holds
}

// New builds the handler and the authorization server's logic over the
// service.
func New(svc *service.Service, opt Options, log *slog.Logger) (*Server, error) {
	o := authserver.New(svc, svc.Store(), opt.Lifetimes)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opt.MaxBodyBytes <= 0 {
		opt.MaxBodyBytes = 64 << 10
	}
	if opt.ServiceName == "" {
		opt.ServiceName = "Remote signing service"
	}
	opt.Lifetimes = o.Options()
	s := &Server{oauth: o, svc: svc, opt: opt, log: log}
	if err := s.SetIssuer(opt.Issuer); err != nil {
		return nil, err
	}
	m := http.NewServeMux()
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, invalid("No such endpoint: %s %s", r.Method, r.URL.Path))
	})
	s.mux = m
	if h := opt.Hydra; h != nil {
		if h.AdminURL == "" || h.Audience == "" {
			return nil, errors.New("oauth: Hydra needs its admin URL and the audience to grant")
		}
		if h.HTTPClient == nil {
			h.HTTPClient = &http.Client{Timeout: 10 * time.Second}
		}
		m.HandleFunc("GET /oauth2/hydra/login", s.hydraLoginPage)
		m.HandleFunc("POST /oauth2/hydra/login", s.hydraLoginSubmit)
		m.HandleFunc("GET /oauth2/hydra/consent", s.hydraConsentPage)
		m.HandleFunc("POST /oauth2/hydra/consent", s.hydraConsentSubmit)
		m.HandleFunc("GET /oauth2/hydra/status", s.hydraStatus)
		// The security keys page, and its login (then=keys): where a
		// user registers the key Hydra's login and consent then ask for.
		m.HandleFunc("GET /oauth2/keys", s.keysPage)
		m.HandleFunc("POST /oauth2/keys", s.keysSubmit)
		m.HandleFunc("POST /oauth2/login", s.keysLoginSubmit)
		return s, nil
	}
	m.HandleFunc("GET /oauth2/authorize", s.authorize)
	m.HandleFunc("POST /oauth2/pushed_authorize", s.pushedAuthorize)
	m.HandleFunc("POST /oauth2/token", s.token)
	m.HandleFunc("POST /oauth2/revoke", s.revoke)
	m.HandleFunc("GET /oauth2/login", s.loginPage)
	m.HandleFunc("POST /oauth2/login", s.loginSubmit)
	m.HandleFunc("GET /oauth2/consent", s.consentPage)
	m.HandleFunc("POST /oauth2/consent", s.consentSubmit)
	m.HandleFunc("GET /oauth2/keys", s.keysPage)
	m.HandleFunc("POST /oauth2/keys", s.keysSubmit)
	m.HandleFunc("GET /oauth2/status", s.status)
	m.HandleFunc("POST /oauth2/abandon", s.abandon)
	m.HandleFunc("GET /.well-known/oauth-authorization-server", s.metadata)
	return s, nil
}

// SetIssuer changes the public base URL (for a server whose port is known
// only once it listens).
func (s *Server) SetIssuer(issuer string) error {
	issuer = strings.TrimRight(issuer, "/")
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("oauth: issuer %q: want an http(s) URL without query or fragment", issuer)
	}
	s.issuer.Store(&issuer)
	return s.oauth.SetRelyingParty(s.opt.FIDORPID, s.opt.ServiceName, u.Scheme+"://"+u.Host)
}

// BaseURL is the issuer, the CSC info.oauth2 base.
func (s *Server) BaseURL() string { return *s.issuer.Load() }

// OAuth returns the authorization server's logic the handler serves.
func (s *Server) OAuth() *authserver.Server { return s.oauth }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) secure() bool { return strings.HasPrefix(s.BaseURL(), "https://") }

// origin is scheme://host[:port] of the issuer.
func (s *Server) origin() string {
	u, _ := url.Parse(s.BaseURL())
	return u.Scheme + "://" + u.Host
}

// --- Errors --------------------------------------------------------------

// classify is the one place where errors become OAuth2 error codes: for
// JSON bodies (RFC 6749 §5.2), redirects (§4.1.2.1) and the error page.
// Unknown errors are a detail-free server_error, logged.
func (s *Server) classify(r *http.Request, err error) (status int, code, desc string) {
	status, code, desc = http.StatusInternalServerError, csc.ErrServerError, "Internal error"
	var p *service.Problem
	if errors.As(err, &p) {
		desc = p.Description
	}
	for _, k := range []struct {
		kind   error
		status int
		code   string
	}{
		{service.ErrInvalidRequest, http.StatusBadRequest, csc.ErrInvalidRequest},
		{authserver.ErrInvalidClient, http.StatusUnauthorized, csc.ErrInvalidClient},
		{authserver.ErrInvalidGrant, http.StatusBadRequest, csc.ErrInvalidGrant},
		{authserver.ErrUnauthorizedClient, http.StatusBadRequest, csc.ErrUnauthorizedClient},
		{authserver.ErrUnsupportedGrantType, http.StatusBadRequest, "unsupported_grant_type"},
		{authserver.ErrUnsupportedResponseType, http.StatusBadRequest, csc.ErrUnsupportedResponseType},
		{authserver.ErrInvalidScope, http.StatusBadRequest, csc.ErrInvalidScope},
		{authserver.ErrInvalidRequestURI, http.StatusBadRequest, "invalid_request_uri"},
		{authserver.ErrInvalidAuthorizationDetails, http.StatusBadRequest, "invalid_authorization_details"},
		{authserver.ErrAbandoned, http.StatusGone, csc.ErrAccessDenied},
		{service.ErrAccessDenied, http.StatusForbidden, csc.ErrAccessDenied},
		{service.ErrAuthentication, http.StatusBadRequest, csc.ErrAccessDenied},
		{service.ErrInvalidToken, http.StatusBadRequest, csc.ErrInvalidRequest},
		{service.ErrInvalidPIN, http.StatusBadRequest, csc.ErrInvalidPIN},
		{service.ErrInvalidOTP, http.StatusBadRequest, csc.ErrInvalidOTP},
		{service.ErrDisabled, http.StatusBadRequest, csc.ErrAccessDenied},
		{service.ErrLocked, http.StatusBadRequest, csc.ErrAccessDenied},
		{errForbidden, http.StatusForbidden, csc.ErrAccessDenied},
		{service.ErrThrottled, http.StatusTooManyRequests, csc.ErrTemporarilyUnavailable},
		{service.ErrUnavailable, http.StatusServiceUnavailable, csc.ErrTemporarilyUnavailable},
	} {
		if errors.Is(err, k.kind) {
			return k.status, k.code, desc
		}
	}
	switch {
	case errors.Is(err, store.ErrFull):
		s.log.Error("oauth: storage full", "path", r.URL.Path, "err", err)
		return http.StatusServiceUnavailable, csc.ErrTemporarilyUnavailable, "The service is out of storage; try again later"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, csc.ErrTemporarilyUnavailable, "The service is busy; try again"
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, csc.ErrTemporarilyUnavailable, "Request cancelled"
	}
	s.log.Error("oauth: internal error", "path", r.URL.Path, "err", err)
	return status, code, "Internal error"
}

// setRetryAfter sends Retry-After with a 429 or 503 answer.
func setRetryAfter(w http.ResponseWriter, status int, err error) {
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(service.RetryAfter(err).Seconds())), 10))
	}
}

// errForbidden marks a refused form (CSRF, origin).
var errForbidden = errors.New("forbidden")

// writeError writes an OAuth2 JSON error body.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, desc := s.classify(r, err)
	setRetryAfter(w, status, err)
	if status == http.StatusUnauthorized && strings.HasPrefix(strings.ToLower(r.Header.Get("Authorization")), "basic ") {
		w.Header().Set("WWW-Authenticate", `Basic realm="oauth2"`)
	}
	writeJSON(w, status, csc.Error{Code: code, Description: desc})
}

// redirectError sends an error back to the client's redirect URI.
func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state string, err error, status int) {
	_, code, desc := s.classify(r, err)
	q := url.Values{"error": {code}}
	if desc != "" {
		q.Set("error_description", desc)
	}
	s.redirectClient(w, r, redirectURI, state, q, status)
}

// redirectClient sends the answer to the client's redirect URI with state
// and iss (RFC 9207).
func (s *Server) redirectClient(w http.ResponseWriter, r *http.Request, redirectURI, state string, q url.Values, status int) {
	u, err := url.Parse(redirectURI)
	if err != nil {
		s.errorPage(w, r, fmt.Errorf("redirect URI %q: %w", redirectURI, err))
		return
	}
	v := u.Query()
	for k, vs := range q {
		v[k] = vs
	}
	if state != "" {
		v.Set("state", state)
	}
	v.Set("iss", s.BaseURL())
	u.RawQuery = v.Encode()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.String(), status)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
