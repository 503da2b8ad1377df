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
	"os"
	"strings"
	"time"
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

// rootPool returns the trust roots: pool or the system's, plus caFile.
func rootPool(pool *x509.CertPool, caFile string) (*x509.CertPool, error) {
	if caFile == "" {
		return pool, nil // nil: crypto/tls uses the system roots
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%w: CA file: %w", ErrInvalidArgument, err)
	}
	if pool == nil {
		pool, err = x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
	} else {
		pool = pool.Clone()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrInvalidArgument, caFile)
	}
	return pool, nil
}

// newTransport builds the one HTTP transport of a client: TLS 1.2+, the
// given roots, optional SPKI pinning, keep-alive with enough idle
// connections for parallel signers, HTTP/2 when the server offers it.
func newTransport(cfg *config) (*http.Transport, error) {
	roots, err := rootPool(cfg.roots, cfg.caFile)
	if err != nil {
		return nil, err
	}
	for _, p := range cfg.pins {
		if len(p) != sha256.Size {
			return nil, fmt.Errorf("%w: SPKI pin of %d bytes, want %d", ErrInvalidArgument, len(p), sha256.Size)
		}
	}
	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    roots,
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
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConf,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          2 * maxIdle,
		MaxIdleConnsPerHost:   maxIdle,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}, nil
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
