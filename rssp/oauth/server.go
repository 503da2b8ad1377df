package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"mime"
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
	// ServiceName is shown on the pages.
	ServiceName string
	// MaxBodyBytes bounds form bodies (default 64 KiB).
	MaxBodyBytes int64
	// Lifetimes of codes, pushed requests, pending authorizations and
	// login sessions (defaults in service.OAuthOptions).
	Lifetimes service.OAuthOptions
}

// Server is the authorization server's HTTP handler.
type Server struct {
	oauth  *authserver.Server
	opt    Options
	log    *slog.Logger
	issuer atomic.Pointer[string]
	mux    *http.ServeMux
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
	s := &Server{oauth: o, opt: opt, log: log}
	if err := s.SetIssuer(opt.Issuer); err != nil {
		return nil, err
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /oauth2/authorize", s.authorize)
	m.HandleFunc("POST /oauth2/pushed_authorize", s.pushedAuthorize)
	m.HandleFunc("POST /oauth2/token", s.token)
	m.HandleFunc("POST /oauth2/revoke", s.revoke)
	m.HandleFunc("GET /oauth2/login", s.loginPage)
	m.HandleFunc("POST /oauth2/login", s.loginSubmit)
	m.HandleFunc("GET /oauth2/consent", s.consentPage)
	m.HandleFunc("POST /oauth2/consent", s.consentSubmit)
	m.HandleFunc("GET /.well-known/oauth-authorization-server", s.metadata)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, invalid("No such endpoint: %s %s", r.Method, r.URL.Path))
	})
	s.mux = m
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
	return nil
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

// --- Forms and client authentication --------------------------------------

// readForm reads an application/x-www-form-urlencoded body, bounded. The
// query string is not part of it.
func (s *Server) readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, invalid("The body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.opt.MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		return nil, invalid("Cannot read the form (at most %d bytes)", s.opt.MaxBodyBytes)
	}
	return r.PostForm, nil
}

// clientCredentials reads the client's credentials (RFC 6749 §2.3.1): HTTP
// Basic, or client_id and client_secret in the form, not both.
func clientCredentials(r *http.Request, form url.Values) (id, secret string, err error) {
	formID, err := single(form, "client_id")
	if err != nil {
		return "", "", err
	}
	formSecret, err := single(form, "client_secret")
	if err != nil {
		return "", "", err
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return formID, formSecret, nil
	}
	scheme, payload, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", "", problem(authserver.ErrInvalidClient, "Unsupported Authorization scheme: use HTTP Basic or the form")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(payload))
	if err != nil {
		return "", "", problem(authserver.ErrInvalidClient, "Malformed HTTP Basic credentials")
	}
	u, p, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", problem(authserver.ErrInvalidClient, "Malformed HTTP Basic credentials")
	}
	if id, err = url.QueryUnescape(u); err == nil {
		secret, err = url.QueryUnescape(p)
	}
	if err != nil {
		return "", "", problem(authserver.ErrInvalidClient, "Malformed HTTP Basic credentials")
	}
	if formSecret != "" {
		return "", "", invalid("Use one client authentication method: HTTP Basic or client_secret in the form")
	}
	if formID != "" && formID != id {
		return "", "", invalid("client_id does not match the HTTP Basic credentials")
	}
	return id, secret, nil
}

func (s *Server) authenticateClient(r *http.Request, form url.Values) (store.OAuthClient, error) {
	id, secret, err := clientCredentials(r, form)
	if err != nil {
		return store.OAuthClient{}, err
	}
	return s.oauth.AuthenticateClient(r.Context(), id, secret)
}

// --- Endpoints -------------------------------------------------------------

// authorize is GET oauth2/authorize: it checks the request, stores it as a
// pending authorization and sends the browser to the login page, or to the
// consent page when it is logged in.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req, requestURI, err := parseAuthRequest(q)
	if err != nil {
		// The error goes back to the client when client and redirect URI
		// are good, to the user otherwise.
		clientID, e1 := single(q, "client_id")
		redirect, e2 := single(q, "redirect_uri")
		state, e3 := single(q, "state")
		if e1 == nil && e2 == nil && e3 == nil && requestURI == "" && q.Get("request_uri") == "" {
			if _, uri, rerr := s.oauth.ResolveRedirect(r.Context(), clientID, redirect); rerr == nil {
				s.redirectError(w, r, uri, state, err, http.StatusFound)
				return
			}
		}
		s.errorPage(w, r, err)
		return
	}
	a, err := s.oauth.StartAuthorization(r.Context(), req, requestURI)
	if err != nil {
		if a.RedirectURI != "" {
			s.redirectError(w, r, a.RedirectURI, a.Request.State, err, http.StatusFound)
			return
		}
		s.errorPage(w, r, err)
		return
	}
	next := "login"
	if sess, _, ok := s.session(r); ok && sess.UserID != "" {
		next = "consent"
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, next+"?request="+url.QueryEscape(a.Handle), http.StatusFound)
}

// pushedAuthorize is POST oauth2/pushed_authorize (RFC 9126).
func (s *Server) pushedAuthorize(w http.ResponseWriter, r *http.Request) {
	form, err := s.readForm(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	client, err := s.authenticateClient(r, form)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	req, requestURI, err := parseAuthRequest(form)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if requestURI != "" {
		s.writeError(w, r, invalid("request_uri must not be pushed (RFC 9126 §2.1)"))
		return
	}
	uri, ttl, err := s.oauth.PushAuthorization(r.Context(), client, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, struct {
		RequestURI string `json:"request_uri"`
		ExpiresIn  int64  `json:"expires_in"`
	}{uri, int64(ttl.Seconds())})
}

// tokenResponse is the answer of oauth2/token (RFC 6749 §5.1 and the CSC
// fields).
type tokenResponse struct {
	AccessToken          string          `json:"access_token"`
	TokenType            string          `json:"token_type"`
	ExpiresIn            int64           `json:"expires_in"`
	RefreshToken         string          `json:"refresh_token,omitempty"`
	Scope                string          `json:"scope,omitempty"`
	CredentialID         string          `json:"credentialID,omitempty"`
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
}

// token is POST oauth2/token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	form, err := s.readForm(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p := map[string]string{}
	for _, name := range []string{"grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "scope"} {
		if p[name], err = single(form, name); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	client, err := s.authenticateClient(r, form)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var tok authserver.Tokens
	switch p["grant_type"] {
	case "authorization_code":
		tok, err = s.oauth.ExchangeCode(r.Context(), client, p["code"], p["redirect_uri"], p["code_verifier"])
	case "refresh_token":
		tok, err = s.oauth.Refresh(r.Context(), client, p["refresh_token"], p["scope"])
	case "client_credentials":
		tok, err = s.oauth.ClientCredentials(r.Context(), client, p["scope"])
	case "":
		err = invalid("Missing parameter grant_type")
	default:
		err = problem(authserver.ErrUnsupportedGrantType, "grant_type must be authorization_code, refresh_token or client_credentials")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	details, err := echoDetails(tok.Details, tok.CredentialID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: tok.AccessToken, TokenType: "Bearer", ExpiresIn: int64(tok.ExpiresIn.Seconds()),
		RefreshToken: tok.RefreshToken, Scope: tok.Scope, CredentialID: tok.CredentialID, AuthorizationDetails: details,
	})
}

// revoke is POST oauth2/revoke (RFC 7009): 200 with an empty body.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	form, err := s.readForm(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	token, err := single(form, "token")
	if err == nil {
		var hint string
		if hint, err = single(form, "token_type_hint"); err == nil {
			var client store.OAuthClient
			if client, err = s.authenticateClient(r, form); err == nil {
				err = s.oauth.Revoke(r.Context(), client, token, hint)
			}
		}
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// metadata is the RFC 8414 document.
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	iss := s.BaseURL()
	auth := []string{"client_secret_basic", "client_secret_post", "none"}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"issuer":                                         iss,
		"authorization_endpoint":                         iss + "/oauth2/authorize",
		"token_endpoint":                                 iss + "/oauth2/token",
		"pushed_authorization_request_endpoint":          iss + "/oauth2/pushed_authorize",
		"revocation_endpoint":                            iss + "/oauth2/revoke",
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"grant_types_supported":                          []string{"authorization_code", "refresh_token", "client_credentials"},
		"code_challenge_methods_supported":               []string{"S256"},
		"token_endpoint_auth_methods_supported":          auth,
		"revocation_endpoint_auth_methods_supported":     auth,
		"scopes_supported":                               []string{service.ScopeService, service.ScopeCredential},
		"authorization_details_types_supported":          []string{RARTypeCredential, RARTypeCredentialV2},
		"authorization_response_iss_parameter_supported": true,
		"require_pushed_authorization_requests":          false,
	})
}

// --- Browser sessions and CSRF ----------------------------------------------

func (s *Server) cookieName() string {
	if s.secure() {
		return "__Host-rssp_oauth"
	}
	return "rssp_oauth"
}

// session returns the browser's session and its cookie value.
func (s *Server) session(r *http.Request) (authserver.BrowserSession, string, bool) {
	c, err := r.Cookie(s.cookieName())
	if err != nil || c.Value == "" {
		return authserver.BrowserSession{}, "", false
	}
	bs, err := s.oauth.Session(r.Context(), c.Value)
	if err != nil {
		return authserver.BrowserSession{}, "", false
	}
	return bs, c.Value, true
}

func (s *Server) setSessionCookie(w http.ResponseWriter, value string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: s.cookieName(), Value: value, Path: "/", Expires: expires,
		MaxAge: max(1, int(time.Until(expires).Seconds())), Secure: s.secure(), HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
}

// csrfToken is the forms' per-session CSRF token: a hash of the session
// cookie, which pages of other sites can neither read nor compute.
func csrfToken(session string) string {
	h := sha256.Sum256([]byte("csctoken oauth2 csrf\x00" + session))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// checkForm refuses a form posted from another origin or without the
// session's CSRF token.
func (s *Server) checkForm(r *http.Request, form url.Values, session string) error {
	if o := r.Header.Get("Origin"); o != "" && o != s.origin() {
		return problem(errForbidden, "The form was sent from another site")
	}
	token, err := single(form, "csrf")
	if err != nil || session == "" || token == "" ||
		subtle.ConstantTimeCompare([]byte(token), []byte(csrfToken(session))) != 1 {
		return problem(errForbidden, "The form has expired or was not sent by this site; start again from the application")
	}
	return nil
}
