package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File names of the TLS CA and the HTTPS server certificate.
const (
	TLSCACertFile = "tls-ca.pem"
	TLSCAKeyFile  = "tls-ca-key.pem"
	TLSCertFile   = "tls-cert.pem"
	TLSKeyFile    = "tls-key.pem"
)

// Validity periods of the TLS CA and of server certificates. Server
// certificates stay under the 825 days that Apple platforms accept for
// locally trusted roots.
const (
	TLSCAValidity     = 10 * 365 * 24 * time.Hour
	TLSServerValidity = 730 * 24 * time.Hour
)

// DefaultTLSHosts are the names of a server certificate when none are given.
var DefaultTLSHosts = []string{"127.0.0.1", "::1", "localhost"}

// TLSFiles describes the TLS CA and the server certificate in a directory.
type TLSFiles struct {
	// Paths of the four files.
	CACertPath, CAKeyPath, CertPath, KeyPath string
	// CA is the TLS CA certificate: clients trust it (CACertPath).
	CA *x509.Certificate
	// Certificate is the server certificate (Leaf set) with its key, for
	// tls.Config.Certificates.
	Certificate tls.Certificate
}

func tlsPaths(dir string) *TLSFiles {
	return &TLSFiles{
		CACertPath: filepath.Join(dir, TLSCACertFile),
		CAKeyPath:  filepath.Join(dir, TLSCAKeyFile),
		CertPath:   filepath.Join(dir, TLSCertFile),
		KeyPath:    filepath.Join(dir, TLSKeyFile),
	}
}

// CreateTLS creates a TLS CA (ECDSA P-256, its own trust root, separate from
// the credential PKI) and a server certificate for hosts (DefaultTLSHosts if
// empty; IP addresses become iPAddress names, the rest dNSName) in dir, both
// of the organization org (O; "" for DefaultOrganization). It
// refuses to overwrite any existing file; on failure it removes what it
// wrote.
func CreateTLS(dir string, hosts []string, org string) (*TLSFiles, error) {
	names, err := parseHosts(hosts)
	if err != nil {
		return nil, err
	}
	out := tlsPaths(dir)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("ca: create TLS: %w", err)
	}
	if err := checkAbsent(out.CACertPath, out.CAKeyPath, out.CertPath, out.KeyPath); err != nil {
		return nil, err
	}

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca: generate TLS CA key: %w", err)
	}
	// A random suffix keeps the names of two installations' CAs apart, so
	// a browser that trusts both does not mix them up.
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	caTmpl, err := caTemplate(pkix.Name{
		CommonName:   "csctoken TLS CA " + hex.EncodeToString(suffix[:]),
		Organization: []string{orgOr(org)},
	}, time.Now(), TLSCAValidity, 0)
	if err != nil {
		return nil, err
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("ca: create TLS CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("ca: parse TLS CA certificate: %w", err)
	}
	leaf, key, err := issueServer(caCert, caKey, names)
	if err != nil {
		return nil, err
	}

	var files fileSet
	for _, step := range []func() error{
		func() error { return files.key(out.CAKeyPath, caKey) },
		func() error { return files.cert(out.CACertPath, caDER) },
		func() error { return files.key(out.KeyPath, key) },
		func() error { return files.cert(out.CertPath, leaf.Raw) },
	} {
		if err := step(); err != nil {
			files.rollback()
			return nil, err
		}
	}
	out.CA = caCert
	out.Certificate = tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	return out, nil
}

// ReissueTLS issues a new server certificate and key for hosts (as in
// CreateTLS) from the TLS CA in dir, replacing tls-cert.pem and tls-key.pem
// (each file is replaced atomically). Use it when the server moves to
// another address; clients keep trusting tls-ca.pem.
func ReissueTLS(dir string, hosts []string) (*TLSFiles, error) {
	names, err := parseHosts(hosts)
	if err != nil {
		return nil, err
	}
	out := tlsPaths(dir)
	caCert, err := ReadCertFile(out.CACertPath)
	if err != nil {
		return nil, err
	}
	caKey, err := ReadKeyFile(out.CAKeyPath)
	if err != nil {
		return nil, err
	}
	if err := keyMatches(caKey, caCert); err != nil {
		return nil, fmt.Errorf("ca: reissue TLS: %w", err)
	}
	leaf, key, err := issueServer(caCert, caKey, names)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, fmt.Errorf("ca: reissue TLS: %w", err)
	}
	// Key first: a crash in between leaves a new key with the old
	// certificate, which LoadTLS reports, rather than silently serving
	// something else.
	if err := replaceFile(out.KeyPath, keyPEM, keyFileMode); err != nil {
		return nil, err
	}
	if err := replaceFile(out.CertPath, encodeCert(leaf.Raw), certFileMode); err != nil {
		return nil, err
	}
	out.CA = caCert
	out.Certificate = tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	return out, nil
}

// LoadTLS reads the TLS CA certificate and the server certificate and key
// from dir, checking that the key matches the certificate and that the TLS
// CA signed it. The TLS CA's key is not read.
func LoadTLS(dir string) (*TLSFiles, error) {
	out := tlsPaths(dir)
	caCert, err := ReadCertFile(out.CACertPath)
	if err != nil {
		return nil, err
	}
	leaf, err := ReadCertFile(out.CertPath)
	if err != nil {
		return nil, err
	}
	key, err := ReadKeyFile(out.KeyPath)
	if err != nil {
		return nil, err
	}
	if err := keyMatches(key, leaf); err != nil {
		return nil, fmt.Errorf("ca: load TLS %s: %w", dir, err)
	}
	if err := leaf.CheckSignatureFrom(caCert); err != nil {
		return nil, fmt.Errorf("ca: load TLS %s: %w: server certificate not signed by the TLS CA: %w", dir, ErrInvalidCA, err)
	}
	out.CA = caCert
	out.Certificate = tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	return out, nil
}

type hostNames struct {
	dns []string
	ips []net.IP
}

func (h hostNames) first() string {
	if len(h.dns) > 0 {
		return h.dns[0]
	}
	return h.ips[0].String()
}

// parseHosts splits hosts into IP addresses and DNS names, dropping
// duplicates. "[::1]" is accepted for "::1".
func parseHosts(hosts []string) (hostNames, error) {
	var h hostNames
	if len(hosts) == 0 {
		hosts = DefaultTLSHosts
	}
	for _, raw := range hosts {
		s := strings.TrimSpace(raw)
		if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			s = s[1 : len(s)-1]
		}
		if ip := net.ParseIP(s); ip != nil {
			if ip.IsUnspecified() {
				return h, fmt.Errorf("ca: %w: %q is the unspecified address; name the address clients connect to", ErrInvalidSubject, raw)
			}
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			if !slices.ContainsFunc(h.ips, ip.Equal) {
				h.ips = append(h.ips, ip)
			}
			continue
		}
		s = strings.ToLower(strings.TrimSuffix(s, "."))
		if !validDNSName(s) {
			return h, fmt.Errorf("ca: %w: %q is neither an IP address nor a DNS name", ErrInvalidSubject, raw)
		}
		if !slices.Contains(h.dns, s) {
			h.dns = append(h.dns, s)
		}
	}
	return h, nil
}

// validDNSName accepts LDH names with an optional leading "*." label.
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for i, l := range labels {
		if l == "*" && i == 0 && len(labels) > 1 {
			continue
		}
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
				return false
			}
		}
	}
	return true
}

// issueServer creates a P-256 key and a serverAuth certificate for names,
// signed by the TLS CA.
func issueServer(caCert *x509.Certificate, caKey crypto.Signer, names hostNames) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: generate TLS key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	skid, err := keyID(key.Public())
	if err != nil {
		return nil, nil, err
	}
	cn := names.first()
	if len(cn) > 64 {
		cn = ""
	}
	now := time.Now()
	notAfter := now.Add(TLSServerValidity)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: caCert.Subject.Organization},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		SubjectKeyId:          skid,
		DNSNames:              names.dns,
		IPAddresses:           names.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: create TLS server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: parse TLS server certificate: %w", err)
	}
	return leaf, key, nil
}
