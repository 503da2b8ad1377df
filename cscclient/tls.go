package cscclient

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/csctoken/csctoken/internal/fsutil"
)

// ErrPinMismatch is wrapped by the TLS error of a server whose certificate
// chain matches none of the pinned SPKI hashes.
var ErrPinMismatch = errors.New("server certificate matches no pinned SPKI hash")

// SPKIPin returns the pin of cert as "sha256/<base64>", the form that
// ParseSPKIPin reads (and HPKP and curl's --pinnedpubkey use).
func SPKIPin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256/" + base64.StdEncoding.EncodeToString(sum[:])
}

// ParseSPKIPin parses a SHA-256 SPKI pin given as "sha256/<base64>", as 64
// hex digits (colons allowed), or as bare base64.
func ParseSPKIPin(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "sha256/")
	if h := strings.ReplaceAll(s, ":", ""); len(h) == 2*sha256.Size {
		if b, err := hex.DecodeString(h); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == sha256.Size {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%w: SPKI pin %q is not a SHA-256 hash in hex or base64", ErrInvalidArgument, s)
}

// maxCAFile bounds a CA file (a regular file; see internal/fsutil).
const maxCAFile = 1 << 20

// rootPool returns the trust roots of WithRootCAs (pool) plus caFile, and
// whether the system roots are to be added (pool is nil and caFile set).
// The system roots themselves are never loaded here: crypto/tls loads them
// at the first handshake when the result is nil, and lazyRoots only when
// a server's chain does not verify against caFile alone.
func rootPool(pool *x509.CertPool, caFile string) (roots *x509.CertPool, withSystem bool, err error) {
	if caFile == "" {
		return pool, false, nil // nil: crypto/tls uses the system roots
	}
	pem, err := fsutil.ReadFile(caFile, maxCAFile)
	if err != nil {
		return nil, false, fmt.Errorf("%w: CA file: %w", ErrInvalidArgument, err)
	}
	if pool == nil {
		pool, withSystem = x509.NewCertPool(), true
	} else {
		pool = pool.Clone()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, false, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrInvalidArgument, caFile)
	}
	return pool, withSystem, nil
}

// systemPlus returns the system roots plus the certificates of extra (the
// CA file's pool). x509 loads the system roots once per process; this
// clones them.
func systemPlus(extra *x509.CertPool, caFile string) *x509.CertPool {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		return extra
	}
	if pem, err := fsutil.ReadFile(caFile, maxCAFile); err == nil && pool.AppendCertsFromPEM(pem) {
		return pool
	}
	return extra
}

// newTransport builds the HTTP transport of a client: TLS 1.2+, the given
// roots, optional SPKI pinning, TLS session resumption, keep-alive with
// enough idle connections for parallel signers, HTTP/1.1. With a CA file over the system roots it is a lazyRoots.
func newTransport(cfg *config) (transport, error) {
	roots, withSystem, err := rootPool(cfg.roots, cfg.caFile)
	if err != nil {
		return nil, err
	}
	for _, p := range cfg.pins {
		if len(p) != sha256.Size {
			return nil, fmt.Errorf("%w: SPKI pin of %d bytes, want %d", ErrInvalidArgument, len(p), sha256.Size)
		}
	}
	if !withSystem {
		return roundTripper(cfg, roots), nil
	}
	caFile := cfg.caFile
	return &lazyRoots{
		primary:  roundTripper(cfg, roots),
		fallback: func() transport { return roundTripper(cfg, systemPlus(roots, caFile)) },
	}, nil
}

// roundTripper is httpTransport, or with WithCallerIO where it works the
// callerTransport over it (which sends it only proxied requests).
func roundTripper(cfg *config, roots *x509.CertPool) transport {
	ht, dialer := httpTransport(cfg, roots)
	if cfg.callerIO && CallerIOSupported {
		return newCallerTransport(ht, dialer)
	}
	return ht
}

// transport is what a Client keeps of its transport.
type transport interface {
	http.RoundTripper
	CloseIdleConnections()
}

func httpTransport(cfg *config, roots *x509.CertPool) (*http.Transport, *net.Dialer) {
	tlsConf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            roots,
		ClientSessionCache: tls.NewLRUClientSessionCache(0),
	}
	if len(cfg.pins) > 0 {
		pins := cfg.pins
		tlsConf.VerifyConnection = func(cs tls.ConnectionState) error {
			return checkPins(cs, pins)
		}
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	maxIdle := cfg.maxIdle
	if maxIdle <= 0 {
		maxIdle = DefaultMaxIdleConnsPerHost
	}
	// HTTP/1.1 only, although most CSC services offer HTTP/2 too: a CSC
	// call is one small request and answer, which HTTP/1.1 sends in one
	// write each way, on the calling goroutine, and which the server
	// answers on its connection's goroutine; HTTP/2 starts a goroutine per
	// request on both sides and hands frames between goroutines. Measured
	// through the module with the rssp (docs/performance.md): less CPU per
	// signature in the host and in the server. The price is a connection
	// per call under way (HTTP/2 multiplexes them): concurrent calls open
	// connections as needed (no MaxConnsPerHost, so a consent page's
	// long poll never queues a signature behind it), and up to maxIdle of
	// them stay open between calls.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	return &http.Transport{
		Proxy:                 proxyFunc,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConf,
		Protocols:             &protocols,
		MaxIdleConns:          2 * maxIdle,
		MaxIdleConnsPerHost:   maxIdle,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}, dialer
}

// proxyFunc is the proxy of every transport (tests swap it).
var proxyFunc = http.ProxyFromEnvironment

// lazyRoots is the transport of a client whose trust is the system roots
// plus a CA file (the config's ca_file). Loading the system roots costs
// tens of milliseconds (every certificate of the system bundle is parsed),
// while a service with a ca_file normally chains to it: so a connection is
// first verified against the CA file alone, with the standard verification
// of crypto/tls (chain, validity, key usage, host name, pins). Only when
// that fails for a reason other roots could change (the chain does not
// verify, or matches no pin) is the request sent again over the fallback
// transport, which trusts the system roots plus the CA file, as a client
// without this optimisation would from the start; nothing was sent then,
// as the handshake failed. A host that needed the fallback keeps using it.
// The set of servers trusted is exactly that of the union of the roots.
type lazyRoots struct {
	primary  transport
	fallback func() transport

	mu sync.Mutex
	fb transport // built at the first need
	// system holds the hosts (host:port) that verified only with the
	// system roots.
	system sync.Map
}

func (l *lazyRoots) fallbackTransport() transport {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fb == nil {
		l.fb = l.fallback()
	}
	return l.fb
}

// RoundTrip implements http.RoundTripper.
func (l *lazyRoots) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	if _, ok := l.system.Load(host); ok {
		return l.fallbackTransport().RoundTrip(req)
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		// Cannot be sent twice: decide on the union of the roots.
		return l.fallbackTransport().RoundTrip(req)
	}
	resp, err := l.primary.RoundTrip(req)
	if err == nil || !otherRootsMayHelp(err) || req.Context().Err() != nil {
		return resp, err
	}
	again := req.Clone(req.Context())
	if req.GetBody != nil {
		body, gerr := req.GetBody()
		if gerr != nil {
			return nil, err
		}
		again.Body = body
	}
	resp, err2 := l.fallbackTransport().RoundTrip(again)
	if err2 == nil {
		l.system.Store(host, true)
	}
	return resp, err2
}

// CloseIdleConnections closes the idle connections of both transports.
func (l *lazyRoots) CloseIdleConnections() {
	l.primary.CloseIdleConnections()
	l.mu.Lock()
	fb := l.fb
	l.mu.Unlock()
	if fb != nil {
		fb.CloseIdleConnections()
	}
}

// otherRootsMayHelp reports whether a failed handshake could succeed with
// more trust roots: a chain that did not verify (but not a host name that
// does not match the certificate) or a pin matching no verified chain.
func otherRootsMayHelp(err error) bool {
	if errors.Is(err, ErrPinMismatch) {
		return true
	}
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &cve) {
		return false
	}
	var hn x509.HostnameError
	return !errors.As(cve.Err, &hn)
}

// checkPins runs after the chain was verified: one certificate of the
// verified chains (the leaf first) must have a pinned SPKI hash.
func checkPins(cs tls.ConnectionState, pins [][]byte) error {
	var certs []*x509.Certificate
	for _, chain := range cs.VerifiedChains {
		certs = append(certs, chain...)
	}
	if len(certs) == 0 {
		certs = cs.PeerCertificates
	}
	for _, c := range certs {
		sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		for _, p := range pins {
			if bytes.Equal(sum[:], p) {
				return nil
			}
		}
	}
	if len(cs.PeerCertificates) > 0 {
		return fmt.Errorf("%w (server's is %s)", ErrPinMismatch, SPKIPin(cs.PeerCertificates[0]))
	}
	return ErrPinMismatch
}

// isTLSError reports whether err is a certificate verification failure.
func isTLSError(err error) bool {
	var cve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var ad tls.AlertError
	return errors.As(err, &cve) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) ||
		errors.As(err, &ad) || errors.Is(err, ErrPinMismatch)
}
