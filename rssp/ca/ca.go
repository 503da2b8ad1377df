// Package ca holds the RSSP's built-in certificate authorities: a two-level
// PKI (root CA and issuing CA, both ECDSA P-384) that issues the credentials'
// certificates and the time-stamping authority's certificate, and a separate
// small TLS CA for the server's HTTPS certificate.
//
// The credential certificates are made for the desktop programs that sign
// through the PKCS#11 module: NSS (Firefox, Thunderbird, TLS client
// authentication), Java jarsigner, osslsigncode, LibreOffice and PDF
// signers, OpenSSL. See IssueCredential for the profile.
//
// Files (in the directory given to Create / CreateTLS):
//
//	ca-root.pem         root CA certificate (the trust anchor for signatures)
//	ca-root-key.pem     its private key, PKCS#8 PEM, mode 0600
//	ca-issuing.pem      issuing CA certificate
//	ca-issuing-key.pem  its private key, PKCS#8 PEM, mode 0600
//	tls-ca.pem          TLS CA certificate (the trust anchor for HTTPS)
//	tls-ca-key.pem      its private key, mode 0600
//	tls-cert.pem        HTTPS server certificate
//	tls-key.pem         its private key, mode 0600
//
// A CA is immutable once created or loaded and safe for concurrent use.
package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

// File names inside the CA directory.
const (
	RootCertFile    = "ca-root.pem"
	RootKeyFile     = "ca-root-key.pem"
	IssuingCertFile = "ca-issuing.pem"
	IssuingKeyFile  = "ca-issuing-key.pem"
)

// maxCANameLen is the longest name Create accepts.
const maxCANameLen = 64 - len(" Issuing CA")

// DefaultOrganization is the O attribute of the built-in CAs' names when
// Create and CreateTLS are given none.
const DefaultOrganization = "csctoken"

func orgOr(org string) string {
	if org = strings.TrimSpace(org); org != "" {
		return org
	}
	return DefaultOrganization
}

// Validity periods.
const (
	RootValidity              = 20 * 365 * 24 * time.Hour
	IssuingValidity           = 10 * 365 * 24 * time.Hour
	DefaultCredentialValidity = 2 * 365 * 24 * time.Hour
	// backdate is subtracted from "now" for NotBefore, so that a relying
	// party whose clock is a little behind still accepts a fresh certificate.
	backdate = 5 * time.Minute
)

// OIDExtKeyUsageDocumentSigning is id-kp-documentSigning (RFC 9336).
var OIDExtKeyUsageDocumentSigning = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 36}

// Errors (wrapped with %w).
var (
	// ErrUnsupportedKey: a subject public key (or a key file) of a type or
	// size the CA does not certify.
	ErrUnsupportedKey = errors.New("unsupported key")
	// ErrInvalidSubject: a CredentialSubject or certificate template the CA
	// refuses.
	ErrInvalidSubject = errors.New("invalid certificate subject")
	// ErrInvalidCA: files that do not form a valid CA (wrong key for a
	// certificate, issuing CA not signed by the root, ...).
	ErrInvalidCA = errors.New("invalid CA files")
)

// CA is the credential PKI: a root CA and the issuing CA that signs
// credential (and TSA) certificates.
type CA struct {
	root       *x509.Certificate
	issuing    *x509.Certificate
	issuingKey crypto.Signer
}

// Create generates the root and issuing CAs for a service called name, of
// the organization org (O; "" for DefaultOrganization), and writes them into dir (created with mode 0700 if missing). It refuses to
// overwrite any existing file; on failure it removes what it wrote. The root
// key is written to disk (for a later re-issue of the issuing CA) but is not
// kept in memory.
func Create(dir, name, org string) (*CA, error) {
	name = strings.TrimSpace(name)
	// The longest CN, "<name> Issuing CA", must fit ub-common-name (64).
	if name == "" || utf8.RuneCountInString(name) > maxCANameLen {
		return nil, fmt.Errorf("ca: create: %w: name must have 1 to %d characters", ErrInvalidSubject, maxCANameLen)
	}
	paths := caPaths(dir)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("ca: create: %w", err)
	}
	if err := checkAbsent(paths.rootCert, paths.rootKey, paths.issuingCert, paths.issuingKey); err != nil {
		return nil, err
	}

	now := time.Now()
	rootKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca: generate root key: %w", err)
	}
	rootTmpl, err := caTemplate(pkix.Name{CommonName: name + " Root CA", Organization: []string{orgOr(org)}},
		now, RootValidity, -1)
	if err != nil {
		return nil, err
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("ca: create root certificate: %w", err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, fmt.Errorf("ca: parse root certificate: %w", err)
	}

	issKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca: generate issuing key: %w", err)
	}
	issTmpl, err := caTemplate(pkix.Name{CommonName: name + " Issuing CA", Organization: []string{orgOr(org)}},
		now, IssuingValidity, 0)
	if err != nil {
		return nil, err
	}
	issDER, err := x509.CreateCertificate(rand.Reader, issTmpl, root, issKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("ca: create issuing certificate: %w", err)
	}
	issuing, err := x509.ParseCertificate(issDER)
	if err != nil {
		return nil, fmt.Errorf("ca: parse issuing certificate: %w", err)
	}

	var files fileSet
	for _, step := range []func() error{
		func() error { return files.key(paths.rootKey, rootKey) },
		func() error { return files.key(paths.issuingKey, issKey) },
		func() error { return files.cert(paths.rootCert, rootDER) },
		func() error { return files.cert(paths.issuingCert, issDER) },
	} {
		if err := step(); err != nil {
			files.rollback()
			return nil, err
		}
	}
	return &CA{root: root, issuing: issuing, issuingKey: issKey}, nil
}

// Load reads the CA written by Create from dir. It checks that the issuing
// CA is signed by the root and that its key matches its certificate. The
// root's private key is not read.
func Load(dir string) (*CA, error) {
	paths := caPaths(dir)
	root, err := ReadCertFile(paths.rootCert)
	if err != nil {
		return nil, err
	}
	issuing, err := ReadCertFile(paths.issuingCert)
	if err != nil {
		return nil, err
	}
	key, err := ReadKeyFile(paths.issuingKey)
	if err != nil {
		return nil, err
	}
	if !root.IsCA || !issuing.IsCA {
		return nil, fmt.Errorf("ca: load %s: %w: not a CA certificate", dir, ErrInvalidCA)
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("ca: load %s: %w: root is not self-signed: %w", dir, ErrInvalidCA, err)
	}
	if err := issuing.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("ca: load %s: %w: issuing CA not signed by root: %w", dir, ErrInvalidCA, err)
	}
	if err := keyMatches(key, issuing); err != nil {
		return nil, fmt.Errorf("ca: load %s: %w", dir, err)
	}
	return &CA{root: root, issuing: issuing, issuingKey: key}, nil
}

// Root returns the root CA certificate.
func (c *CA) Root() *x509.Certificate { return c.root }

// Issuing returns the issuing CA certificate.
func (c *CA) Issuing() *x509.Certificate { return c.issuing }

// Chain returns the DER certificates above an issued certificate, nearest
// first: [issuing CA, root CA]. The slices are copies.
func (c *CA) Chain() [][]byte {
	return [][]byte{bytes.Clone(c.issuing.Raw), bytes.Clone(c.root.Raw)}
}

// CredentialSubject names the holder of a credential certificate.
type CredentialSubject struct {
	// Name is the user's name, the subject's commonName. Required.
	Name string
	// Organization (O) and Country (C, two letters), optional.
	Organization string
	Country      string
	// Email, optional, becomes an rfc822Name subjectAltName (S/MIME
	// programs look for the address there).
	Email string
	// CredentialID, optional, goes into the subject's serialNumber attribute
	// (2.5.4.5). It makes the subject names of one user's credentials
	// distinct, which keeps NSS from grouping different keys under one
	// nickname. PrintableString characters only, at most 64.
	CredentialID string
}

// IssueCredential issues a certificate for a credential's public key
// (*rsa.PublicKey of 2048 bits or more, or *ecdsa.PublicKey on P-256, P-384
// or P-521), valid for validity (DefaultCredentialValidity when <= 0, never
// beyond the issuing CA). Profile:
//
//   - subject: CN=Name, O=Organization, C=Country, serialNumber=CredentialID
//     (empty ones left out); subjectAltName rfc822Name=Email if given
//   - serial: 128 random bits
//   - keyUsage (critical): digitalSignature, contentCommitment
//   - extKeyUsage: clientAuth, emailProtection, codeSigning, documentSigning
//   - basicConstraints (critical): CA:FALSE
//   - subjectKeyIdentifier, authorityKeyIdentifier
//   - signed with ECDSA-SHA384 by the issuing CA
//
// It returns the DER certificate.
func (c *CA) IssueCredential(subject CredentialSubject, pub crypto.PublicKey, validity time.Duration) ([]byte, error) {
	name, err := subject.name()
	if err != nil {
		return nil, err
	}
	if validity <= 0 {
		validity = DefaultCredentialValidity
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:     name,
		NotBefore:   now.Add(-backdate),
		NotAfter:    now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageEmailProtection, x509.ExtKeyUsageCodeSigning},
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{
			OIDExtKeyUsageDocumentSigning,
		},
	}
	if e := strings.TrimSpace(subject.Email); e != "" {
		tmpl.EmailAddresses = []string{e}
	}
	return c.IssueCertificate(tmpl, pub)
}

// IssueCertificate issues an end-entity certificate from template for pub,
// signed by the issuing CA. It is the building block of IssueCredential and
// of the TSA certificate. The template is not modified; in the copy signed:
//
//   - SerialNumber is always a fresh random 128-bit number
//   - NotBefore defaults to now (minus a few minutes); NotAfter is required
//     and is cut to the issuing CA's NotAfter
//   - SubjectKeyId is computed if empty (RFC 7093 method 1)
//   - basicConstraints is CA:FALSE; a template with IsCA is refused
//   - the signature algorithm is ECDSA-SHA384
//
// Extensions such as keyUsage, extKeyUsage (or a critical extKeyUsage in
// ExtraExtensions) and subjectAltNames come from the template.
func (c *CA) IssueCertificate(template *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	if template == nil {
		return nil, fmt.Errorf("ca: issue: %w: nil template", ErrInvalidSubject)
	}
	if template.IsCA {
		return nil, fmt.Errorf("ca: issue: %w: the issuing CA has pathlen 0 and issues no CA certificates", ErrInvalidSubject)
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, fmt.Errorf("ca: issue: %w", err)
	}
	t := *template
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	t.SerialNumber = serial
	if t.NotBefore.IsZero() {
		t.NotBefore = time.Now().Add(-backdate)
	}
	if t.NotAfter.IsZero() {
		return nil, fmt.Errorf("ca: issue: %w: no NotAfter", ErrInvalidSubject)
	}
	if t.NotAfter.After(c.issuing.NotAfter) {
		t.NotAfter = c.issuing.NotAfter
	}
	if !t.NotAfter.After(t.NotBefore) {
		return nil, fmt.Errorf("ca: issue: %w: NotAfter %s not after NotBefore %s", ErrInvalidSubject, t.NotAfter, t.NotBefore)
	}
	if len(t.SubjectKeyId) == 0 {
		if t.SubjectKeyId, err = keyID(pub); err != nil {
			return nil, err
		}
	}
	t.BasicConstraintsValid = true
	t.IsCA = false
	t.MaxPathLen = 0
	t.MaxPathLenZero = false
	t.AuthorityKeyId = nil // taken from the issuing CA's SubjectKeyId
	t.SignatureAlgorithm = x509.ECDSAWithSHA384
	der, err := x509.CreateCertificate(rand.Reader, &t, c.issuing, pub, c.issuingKey)
	if err != nil {
		return nil, fmt.Errorf("ca: issue certificate: %w", err)
	}
	return der, nil
}

func (s CredentialSubject) name() (pkix.Name, error) {
	var n pkix.Name
	n.CommonName = strings.TrimSpace(s.Name)
	if n.CommonName == "" {
		return n, fmt.Errorf("ca: %w: empty name", ErrInvalidSubject)
	}
	if utf8.RuneCountInString(n.CommonName) > 64 {
		return n, fmt.Errorf("ca: %w: name longer than 64 characters", ErrInvalidSubject)
	}
	if o := strings.TrimSpace(s.Organization); o != "" {
		if utf8.RuneCountInString(o) > 64 {
			return n, fmt.Errorf("ca: %w: organization longer than 64 characters", ErrInvalidSubject)
		}
		n.Organization = []string{o}
	}
	if cc := strings.TrimSpace(s.Country); cc != "" {
		if len(cc) != 2 || !isAlpha(cc) {
			return n, fmt.Errorf("ca: %w: country %q is not a two-letter code", ErrInvalidSubject, cc)
		}
		n.Country = []string{strings.ToUpper(cc)}
	}
	if id := s.CredentialID; id != "" {
		if len(id) > 64 || !isPrintableString(id) {
			return n, fmt.Errorf("ca: %w: credential ID %q is not a PrintableString of at most 64 characters", ErrInvalidSubject, id)
		}
		n.SerialNumber = id
	}
	return n, nil
}

func isAlpha(s string) bool {
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
			return false
		}
	}
	return true
}

// isPrintableString reports whether s fits ASN.1 PrintableString (X.680).
func isPrintableString(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune(" '()+,-./:=?", r):
		default:
			return false
		}
	}
	return true
}

type caFiles struct{ rootCert, rootKey, issuingCert, issuingKey string }

func caPaths(dir string) caFiles {
	return caFiles{
		rootCert:    filepath.Join(dir, RootCertFile),
		rootKey:     filepath.Join(dir, RootKeyFile),
		issuingCert: filepath.Join(dir, IssuingCertFile),
		issuingKey:  filepath.Join(dir, IssuingKeyFile),
	}
}

// caTemplate is a CA certificate template; maxPathLen < 0 means no limit.
func caTemplate(subject pkix.Name, now time.Time, validity time.Duration, maxPathLen int) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	t := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            maxPathLen,
		MaxPathLenZero:        maxPathLen == 0,
	}
	return t, nil
}

// serialLimit is 2^128: serials are uniformly random in [1, 2^128).
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

func randomSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("ca: serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// keyID is the subjectKeyIdentifier of pub: the leftmost 160 bits of the
// SHA-256 of the subjectPublicKey BIT STRING (RFC 7093, method 1).
func keyID(pub crypto.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("ca: %w: %w", ErrUnsupportedKey, err)
	}
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &info); err != nil {
		return nil, fmt.Errorf("ca: parse public key: %w", err)
	}
	sum := sha256.Sum256(info.PublicKey.Bytes)
	return sum[:20], nil
}

// checkPublicKey accepts the subject keys the RSSP creates (RSA 2048+,
// ECDSA P-256/384/521) and Ed25519.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("%w: RSA key of %d bits (want 2048 or more)", ErrUnsupportedKey, k.N.BitLen())
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Errorf("%w: curve %s", ErrUnsupportedKey, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
	}
	return nil
}

// keyMatches checks that key is the private key of cert.
func keyMatches(key crypto.Signer, cert *x509.Certificate) error {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(equaler)
	if !ok || !pub.Equal(cert.PublicKey) {
		return fmt.Errorf("%w: private key does not match certificate %q", ErrInvalidCA, cert.Subject.CommonName)
	}
	return nil
}
