// Package server is the RSSP's HTTP front: the CSC API v2 under
// {prefix}/csc/v2/, routed with go-chi, each request decoded strictly,
// handed to rssp/service, and every error turned into the CSC error body
// {"error","error_description"} in one function, writeError.
package server

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
)

// Info is the static part of the info answer.
type Info struct {
	Name        string
	Description string
	Region      string
	Lang        string
	Logo        string
}

// Options configure the HTTP front.
type Options struct {
	Info         Info
	MaxBodyBytes int64
	// RequestTimeout bounds each request's work (default 30s).
	RequestTimeout time.Duration
	// OAuth is the OAuth2 authorization server (rssp/oauth), served under
	// /oauth2/ and /.well-known/ and advertised by info; nil: none.
	OAuth OAuthServer
	// ExternalIssuer, when set, is the external authorization server that
	// issues the access tokens (docs/external-as.md): info advertises it
	// as oauth2Issuer, and OAuth (if any) serves only login and consent
	// pages for it, neither listed nor advertised.
	ExternalIssuer string
	// Ready answers GET /readyz: nil when the node can serve (database,
	// key backend); nil Ready: always ready.
	Ready func(ctx context.Context) error
	// Metrics counts requests and failures (package rssp/metrics); nil:
	// none.
	Metrics Metrics
	// TrustedProxies are the balancers whose X-Forwarded-For is believed
	// (see clientAddr); empty: the client is the TCP peer.
	TrustedProxies []netip.Prefix
}

// Metrics receives what the HTTP front counts.
type Metrics interface {
	// ObserveRequest: one answer, by route pattern ("/csc/v2/signatures/signHash",
	// "other" when no route matched) and status.
	ObserveRequest(route string, status int, d time.Duration)
	// InternalError: a request failed on something the client cannot
	// fix (a database, key backend or program error): answered 500.
	InternalError()
}

// OAuthServer is an OAuth2 authorization server to mount.
type OAuthServer interface {
	http.Handler
	BaseURL() string // info.oauth2
}

// Server serves the CSC API.
type Server struct {
	svc *service.Service
	opt Options
	log *slog.Logger
	mux chi.Router
}

// New builds the handler tree.
func New(svc *service.Service, opt Options, log *slog.Logger) *Server {
	if opt.MaxBodyBytes <= 0 {
		opt.MaxBodyBytes = 1 << 20
	}
	if opt.RequestTimeout <= 0 {
		opt.RequestTimeout = 30 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{svc: svc, opt: opt, log: log}
	r := chi.NewRouter()
	r.Use(s.logRequests, s.recoverer, hsts)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, &service.Problem{Kind: errNotFound, Description: "No such method: " + r.URL.Path})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, &service.Problem{Kind: errMethod, Description: "Use POST"})
	})
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Route("/csc/v2", func(r chi.Router) {
		r.Get("/info", s.info)
		r.Post("/info", s.info)
		r.Post("/auth/login", s.login)
		r.With(s.authenticated).Post("/auth/revoke", s.revoke)
		r.Group(func(r chi.Router) {
			r.Use(s.authenticated)
			r.Post("/credentials/list", v2(s, s.credentialsList))
			r.Post("/credentials/info", v2(s, s.credentialsInfo))
			r.Post("/credentials/authorize", v2(s, s.credentialsAuthorize))
			r.Post("/credentials/extendTransaction", v2(s, s.extendTransaction))
			r.Post("/signatures/signHash", v2(s, s.signHash))
			r.Post("/signatures/timestamp", s.timestamp)
			if svc.HasPending() {
				r.Post("/credentials/authorizeCheck", v2(s, s.authorizeCheck))
				r.Post("/credentials/getChallenge", v2(s, s.getChallenge))
				r.Post("/signatures/signPolling", v2(s, s.signPolling))
			}
		})
		for _, m := range notServed {
			if !svc.HasPending() || !pendingMethods[m] {
				r.Post("/"+m, s.notImplemented)
			}
		}
	})
	r.Route("/csc/v1", s.routesV1)
	if svc.HasPending() {
		r.Get("/oob/approve", s.approvalPage)
		r.Post("/oob/approve", s.approvalDecision)
	}
	if opt.OAuth != nil {
		r.Mount("/oauth2", opt.OAuth)
		if opt.ExternalIssuer == "" {
			r.Handle("/.well-known/oauth-authorization-server", opt.OAuth)
		}
	}
	s.mux = r
	return s
}

// notServed are CSC v2 methods this server knows but does not serve: they
// answer 501 and are not listed by info.
var notServed = []string{
	"credentials/authorizeCheck", "credentials/getChallenge", "credentials/sendOTP",
	"signatures/signDoc", "signatures/signPolling",
}

// pendingMethods are served when the service has its out-of-band channel
// and pending store.
var pendingMethods = map[string]bool{
	"credentials/authorizeCheck": true, "credentials/getChallenge": true, "signatures/signPolling": true,
}

// methods lists what info advertises.
func (s *Server) methods() []string {
	m := []string{"auth/login", "auth/revoke", "credentials/list", "credentials/info",
		"credentials/authorize", "credentials/extendTransaction", "signatures/signHash"}
	if s.svc.HasPending() {
		m = append(m, "credentials/authorizeCheck", "credentials/getChallenge", "signatures/signPolling")
	}
	if s.svc.HasTimestamp() {
		m = append(m, "signatures/timestamp")
	}
	if s.opt.OAuth != nil && s.opt.ExternalIssuer == "" {
		m = append(m, "oauth2/authorize", "oauth2/pushed_authorize", "oauth2/token", "oauth2/revoke")
	}
	return m
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// CipherSuites are the TLS 1.2 suites served: ECDHE key exchange with an
// AEAD only (no CBC, no SHA-1 MAC, no RSA key transport). TLS 1.3's suites
// are fixed by crypto/tls and are all AEAD.
var CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// HTTPServer wraps h in an *http.Server with the given timeouts and a TLS
// configuration that allows TLS 1.2 and 1.3 only.
func HTTPServer(h http.Handler, readTimeout, writeTimeout, idleTimeout time.Duration, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(readTimeout, 10*time.Second),
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    32 << 10,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: CipherSuites},
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// Kinds used only by the HTTP layer.
var (
	errNotFound    = errors.New("not found")
	errMethod      = errors.New("method not allowed")
	errBodyTooBig  = errors.New("request body too large")
	errUnavailable = errors.New("temporarily unavailable")
)

// reqState is per-request data the access log reads.
type reqState struct {
	code string // CSC error code written, if any
	user string
}

type stateKey struct{}

func state(r *http.Request) *reqState {
	st, _ := r.Context().Value(stateKey{}).(*reqState)
	if st == nil {
		return &reqState{}
	}
	return st
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// logRequests writes one line per request: method, path, status, duration,
// CSC error code. Never a header or a body.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		st := &reqState{}
		ctx := context.WithValue(r.Context(), stateKey{}, st)
		addr := clientAddr(r, s.opt.TrustedProxies)
		ctx = service.WithClientAddr(ctx, addr)
		ctx, cancel := context.WithTimeout(ctx, s.opt.RequestTimeout)
		defer cancel()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(ctx))
		end := time.Now()
		d := end.Sub(start)
		if sw.status == 0 {
			sw.status = http.StatusOK // net/http's answer to a handler that wrote nothing
		}
		if s.opt.Metrics != nil {
			s.opt.Metrics.ObserveRequest(routeOf(r), sw.status, d)
		}
		level := slog.LevelInfo
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			level = slog.LevelDebug // a balancer asks every few seconds
		}
		s.logRequest(r, level, end, d, addr, sw.status, st)
	})
}

// logRequest writes the line of one request. It hands the record to the
// handler itself rather than through Logger.Log, which records the
// caller's program counter (a stack walk per request, for a source
// location no handler of the rssp prints) and boxes every attribute.
func (s *Server) logRequest(r *http.Request, level slog.Level, end time.Time, d time.Duration, addr string, status int, st *reqState) {
	ctx := r.Context()
	h := s.log.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	rec := slog.NewRecord(end, level, "request", 0)
	rec.AddAttrs(slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", status), slog.Duration("duration", d.Round(time.Microsecond)),
		slog.String("remote", addr))
	if st.code != "" {
		rec.AddAttrs(slog.String("error", st.code))
	}
	if st.user != "" {
		rec.AddAttrs(slog.String("user", st.user))
	}
	_ = h.Handle(ctx, rec) // as Logger.Log does: a handler's error has nowhere to go
}

// clientAddr is the client's address of r: the TCP peer's, unless the
// peer is a trusted proxy; then the rightmost X-Forwarded-For address that
// is not a trusted proxy (each proxy appends the address it was reached
// from, so what is left of the last untrusted one may be the client's
// invention). When every listed address is trusted, the leftmost; when an
// entry does not parse, the trusted hop that appended it.
func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || len(trusted) == 0 || !isTrusted(peer.Unmap(), trusted) {
		return host
	}
	hop := peer.Unmap()
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		entries := strings.Split(hops[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			a, ok := parseForwarded(strings.TrimSpace(entries[j]))
			if !ok {
				return hop.String()
			}
			if !isTrusted(a, trusted) {
				return a.String()
			}
			hop = a
		}
	}
	return hop.String()
}

// parseForwarded parses one X-Forwarded-For entry: an address, possibly
// with a port (IPv6 then in brackets).
func parseForwarded(v string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(v); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(v); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// hsts sends Strict-Transport-Security on every answer over TLS: a
// browser that reached the service once (approval and consent pages) never
// talks to it in clear text again.
func hsts(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// recoverer turns a panic into a detail-free 500 and logs it.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic in handler", "path", r.URL.Path, "panic", v)
				s.writeError(w, r, errors.New("panic"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type principalKey struct{}

// authenticated requires a valid Bearer access token.
func (s *Server) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r)
		if !ok {
			s.writeError(w, r, &service.Problem{Kind: service.ErrInvalidToken, Description: "Missing or malformed Authorization header (Bearer token required)"})
			return
		}
		p, err := s.svc.AuthenticateMethod(r.Context(), tok, methodName(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		state(r).user = p.UserID
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

func principal(r *http.Request) service.Principal {
	p, _ := r.Context().Value(principalKey{}).(service.Principal)
	return p
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// basicAuth parses an HTTP Basic header strictly.
func basicAuth(r *http.Request) (user, pass string, present, ok bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", "", false, false
	}
	scheme, payload, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", true, false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(payload))
	if err != nil {
		return "", "", true, false
	}
	user, pass, found = strings.Cut(string(raw), ":")
	if !found || user == "" {
		return "", "", true, false
	}
	return user, pass, true, true
}

// decode reads the body (bounded) and decodes it strictly into v.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opt.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.writeError(w, r, &service.Problem{Kind: errBodyTooBig, Description: "Request body larger than " + itoa(s.opt.MaxBodyBytes) + " bytes"})
			return false
		}
		s.writeError(w, r, &service.Problem{Kind: service.ErrInvalidRequest, Description: "Cannot read the request body", Err: err})
		return false
	}
	if err := csc.Decode(body, v); err != nil {
		s.writeError(w, r, &service.Problem{Kind: service.ErrInvalidRequest, Description: strings.TrimPrefix(err.Error(), "malformed JSON body: ")})
		return false
	}
	return true
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// writeJSON writes v with status 200.
func writeJSON(w http.ResponseWriter, v any) { writeJSONStatus(w, http.StatusOK, v) }

// writeJSONStatus writes v with the given status.
func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// methodName is the CSC method of a request path ("credentials/list").
func methodName(r *http.Request) string {
	p := strings.TrimPrefix(r.URL.Path, "/csc/v2/")
	return strings.TrimPrefix(p, "/csc/v1/")
}

// retryAfter is the Retry-After header value of err: whole seconds, at
// least 1.
func retryAfter(err error) string {
	return strconv.FormatInt(int64(math.Ceil(service.RetryAfter(err).Seconds())), 10)
}

// writeError is the one place where errors become CSC error bodies.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := http.StatusInternalServerError, csc.ErrServerError
	desc := "Internal error"
	var p *service.Problem
	if errors.As(err, &p) {
		desc = p.Description
	}
	switch {
	case errors.Is(err, service.ErrInvalidRequest):
		status, code = http.StatusBadRequest, csc.ErrInvalidRequest
	case errors.Is(err, errBodyTooBig):
		status, code = http.StatusRequestEntityTooLarge, csc.ErrInvalidRequest
	case errors.Is(err, service.ErrInvalidToken):
		status, code = http.StatusUnauthorized, csc.ErrInvalidToken
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	case errors.Is(err, service.ErrExpiredToken):
		status, code = http.StatusUnauthorized, csc.ErrExpiredToken
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	case errors.Is(err, service.ErrAuthentication):
		status, code = http.StatusBadRequest, csc.ErrAuthenticationError
	case errors.Is(err, service.ErrInvalidPIN):
		status, code = http.StatusBadRequest, csc.ErrInvalidPIN
	case errors.Is(err, service.ErrInvalidOTP):
		status, code = http.StatusBadRequest, csc.ErrInvalidOTP
	case errors.Is(err, service.ErrLocked):
		status, code = http.StatusBadRequest, csc.ErrCredentialLocked
	case errors.Is(err, service.ErrDisabled):
		status, code = http.StatusBadRequest, csc.ErrCredentialDisabled
	case errors.Is(err, service.ErrAccessDenied):
		status, code = http.StatusForbidden, csc.ErrAccessDenied
	case errors.Is(err, service.ErrNotImplemented):
		status, code = http.StatusNotImplemented, csc.ErrNotImplemented
	case errors.Is(err, errNotFound):
		status, code = http.StatusNotFound, csc.ErrInvalidRequest
	case errors.Is(err, errMethod):
		status, code = http.StatusMethodNotAllowed, csc.ErrInvalidRequest
	case errors.Is(err, service.ErrThrottled):
		status, code = http.StatusTooManyRequests, csc.ErrTemporarilyUnavailable
	case errors.Is(err, service.ErrUnavailable):
		status, code = http.StatusServiceUnavailable, csc.ErrTemporarilyUnavailable
	case errors.Is(err, keystore.ErrUnavailable):
		status, code, desc = http.StatusServiceUnavailable, csc.ErrTemporarilyUnavailable,
			"The signing key store (HSM) is unavailable; the service is reconnecting to it, try again later"
		s.log.Warn("keystore unavailable", "path", r.URL.Path, "err", err)
	case errors.Is(err, keystore.ErrBusy):
		status, code, desc = http.StatusServiceUnavailable, csc.ErrTemporarilyUnavailable,
			"The signing key store (HSM) is busy; try again"
		s.log.Warn("keystore busy", "path", r.URL.Path, "err", err)
	case errors.Is(err, store.ErrFull):
		status, code, desc = http.StatusServiceUnavailable, csc.ErrTemporarilyUnavailable, "The service is out of storage; try again later"
		s.log.Error("storage full", "path", r.URL.Path, "err", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, errUnavailable):
		status, code, desc = http.StatusServiceUnavailable, csc.ErrTemporarilyUnavailable, "The service is busy; try again"
	case errors.Is(err, context.Canceled):
		status, code, desc = http.StatusServiceUnavailable, csc.ErrTemporarilyUnavailable, "Request cancelled"
	default:
		s.log.Error("internal error", "path", r.URL.Path, "err", err)
		if s.opt.Metrics != nil {
			s.opt.Metrics.InternalError()
		}
	}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfter(err))
	}
	state(r).code = code
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(csc.Error{Code: code, Description: desc})
}
