package cscclient

import (
	"crypto/x509"
	"log/slog"
	"net/http"
	"time"
)

// Version is the CSC API version spoken on the wire.
type Version int

// Wire versions.
const (
	// V2 is CSC API v2.0.0.2 (base URL ending in /csc/v2).
	V2 Version = 2
	// V1 is CSC API v1.0.4.0 (base URL ending in /csc/v1).
	V1 Version = 1
)

func (v Version) String() string {
	switch v {
	case V1:
		return "v1"
	case V2:
		return "v2"
	}
	return "unknown"
}

// Defaults of the options.
const (
	// DefaultTimeout bounds one HTTP attempt (connect, send, receive).
	DefaultTimeout = 30 * time.Second
	// DefaultMaxResponseSize bounds every response body.
	DefaultMaxResponseSize = 4 << 20
	// DefaultMaxIdleConnsPerHost keeps enough kept-alive connections for
	// 64 signers in parallel over HTTP/1.1.
	DefaultMaxIdleConnsPerHost = 64
)

// RetryPolicy says how idempotent calls are retried (429, 503, connection
// refused). signHash, authorize and the other calls that consume something
// are retried only when the connection was refused, that is before anything
// was sent.
type RetryPolicy struct {
	// MaxAttempts counts the first attempt; 1 disables retries. Zero means 4.
	MaxAttempts int
	// BaseDelay is the first backoff, doubled each attempt, with jitter.
	// Zero means 200ms.
	BaseDelay time.Duration
	// MaxDelay caps one wait, Retry-After included: a server asking for a
	// longer wait gets the error instead. Zero means 10s.
	MaxDelay time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 4
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 200 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 10 * time.Second
	}
	return p
}

type config struct {
	version      Version // 0: from the URL, else V2
	roots        *x509.CertPool
	caFile       string
	pins         [][]byte
	timeout      time.Duration
	maxBody      int64
	maxIdle      int
	retry        RetryPolicy
	logger       *slog.Logger
	userAgent    string
	tokenSource  TokenSource
	insecureHTTP bool
	callerIO     bool
	transport    http.RoundTripper // tests only

	failover       []string
	failoverPolicy FailoverPolicy
}

// Option configures a Client.
type Option func(*config)

// WithVersion selects the wire version when the base URL does not end in
// /csc/v1 or /csc/v2 (the path is then appended). With a URL that names a
// version, a different one is an error of New.
func WithVersion(v Version) Option { return func(c *config) { c.version = v } }

// WithRootCAs replaces the trust roots (the system's by default) with pool.
// A nil pool keeps the system roots.
func WithRootCAs(pool *x509.CertPool) Option { return func(c *config) { c.roots = pool } }

// WithCAFile adds the PEM certificates of path to the trust roots (the
// system's, or those of WithRootCAs). An empty path is ignored.
func WithCAFile(path string) Option { return func(c *config) { c.caFile = path } }

// WithPinnedSPKI pins the server: the SHA-256 hash of the SubjectPublicKeyInfo
// of the server's certificate, or of another certificate of its verified
// chain, must be one of hashes (parse them with ParseSPKIPin). The chain is
// still verified against the trust roots.
func WithPinnedSPKI(hashes ...[]byte) Option {
	return func(c *config) { c.pins = append(c.pins, hashes...) }
}

// WithTimeout bounds each HTTP attempt (DefaultTimeout when zero). The
// context bounds the call as a whole.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithMaxResponseSize bounds response bodies (DefaultMaxResponseSize when
// zero or negative).
func WithMaxResponseSize(n int64) Option { return func(c *config) { c.maxBody = n } }

// WithMaxIdleConnsPerHost sets how many kept-alive connections are kept
// (DefaultMaxIdleConnsPerHost when zero or negative).
func WithMaxIdleConnsPerHost(n int) Option { return func(c *config) { c.maxIdle = n } }

// WithRetry sets the retry policy of idempotent calls.
func WithRetry(p RetryPolicy) Option { return func(c *config) { c.retry = p } }

// WithLogger sets the logger (nothing is logged by default). One Debug
// record per HTTP attempt: method, status, CSC error code, duration. No
// header, body, token, PIN or SAD is ever logged.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *config) { c.userAgent = ua } }

// WithTokenSource sets the source of the service access token, sent as
// Bearer on every method but info and auth/login (see also SetTokenSource).
func WithTokenSource(ts TokenSource) Option { return func(c *config) { c.tokenSource = ts } }

// WithInsecureHTTP allows a plain http:// base URL on a host other than the
// loopback (which is always allowed, for tests). Tokens and PINs then travel
// in clear text: never in production.
func WithInsecureHTTP() Option { return func(c *config) { c.insecureHTTP = true } }
