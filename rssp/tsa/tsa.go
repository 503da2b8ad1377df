// Package tsa is the RSSP's RFC 3161 time-stamping authority, behind the
// CSC signatures/timestamp method.
//
// The TSA has an ECDSA P-256 key and a certificate from the built-in issuing
// CA (package ca) with keyUsage digitalSignature and a critical extKeyUsage
// of timeStamping only, as RFC 3161 §2.3 requires (OpenSSL and Java refuse
// other TSA certificates). Files, in the directory given to Create:
//
//	tsa-cert.pem  the TSA certificate, followed by the issuing CA certificate
//	              (the chain up to, not including, the root)
//	tsa-key.pem   its private key, PKCS#8 PEM, mode 0600
//
// Tokens carry the TSA certificate and the issuing CA certificate, so that a
// relying party needs only the root (ca-root.pem) as trust anchor.
//
// A TSA is safe for concurrent use.
package tsa

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/digitorus/timestamp"

	"github.com/csctoken/csctoken/rssp/ca"
)

// File names inside the TSA directory.
const (
	CertFile = "tsa-cert.pem"
	KeyFile  = "tsa-key.pem"
)

// cnSuffix follows the service name in the TSA certificate's CN.
const cnSuffix = " Time-Stamping Authority"

// Validity is the lifetime of the TSA certificate (cut to the issuing CA's).
const Validity = 5 * 365 * 24 * time.Hour

// Accuracy is the accuracy stated in every token: genTime is the signing
// time truncated to the second.
const Accuracy = time.Second

// DefaultPolicy is the TSA policy OID written into tokens unless TSA.Policy
// is set: 2.999.3161.1, under the ITU-T/ISO "example" arc
// {joint-iso-itu-t(2) example(999)} (ITU-T X.660), which is assigned to no
// one and marks this as the demo policy of csctoken's built-in TSA. A
// production TSA sets Policy to an OID under its own arc.
var DefaultPolicy = asn1.ObjectIdentifier{2, 999, 3161, 1}

var (
	oidExtKeyUsage     = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidKPTimeStamping  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}
	errUnexpectedReply = errors.New("unexpected time-stamp response")
)

// Errors that are the client's fault (the server answers 400
// invalid_request); wrapped with %w.
var (
	// ErrBadDigest: the digest's length does not match the hash algorithm.
	ErrBadDigest = errors.New("tsa: digest length does not match the hash algorithm")
	// ErrUnsupportedHash: a hash algorithm other than SHA-256, SHA-384 or
	// SHA-512.
	ErrUnsupportedHash = errors.New("tsa: unsupported hash algorithm (want SHA-256, SHA-384 or SHA-512)")
)

// ErrInvalidTSA: TSA files that do not fit together or a certificate that is
// no TSA certificate.
var ErrInvalidTSA = errors.New("tsa: invalid TSA files")

// Issuer issues the TSA certificate. *ca.CA implements it.
type Issuer interface {
	// IssueCertificate signs an end-entity certificate for pub from
	// template (see ca.CA.IssueCertificate) and returns its DER.
	IssueCertificate(template *x509.Certificate, pub crypto.PublicKey) ([]byte, error)
	// Chain returns the issuer's certificates, nearest first, root last.
	Chain() [][]byte
}

var _ Issuer = (*ca.CA)(nil)

// TSA is a time-stamping authority.
type TSA struct {
	// Policy is the TSA policy OID put into tokens; DefaultPolicy after
	// Create and Load. Set it before the first Timestamp call.
	Policy asn1.ObjectIdentifier

	cert  *x509.Certificate
	chain []*x509.Certificate // intermediates, nearest first; no root
	key   crypto.Signer
}

// Create makes a TSA key and has issuer certify it (CN "<name> Time-Stamping
// Authority", O org, or ca.DefaultOrganization when ""), then writes
// tsa-key.pem and tsa-cert.pem
// into dir (created 0700 if missing). It refuses to overwrite either file.
func Create(dir string, issuer Issuer, name, org string) (*TSA, error) {
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name+cnSuffix) > 64 {
		return nil, fmt.Errorf("tsa: create: %w: name must have 1 to %d characters", ca.ErrInvalidSubject, 64-len(cnSuffix))
	}
	if issuer == nil {
		return nil, errors.New("tsa: create: no issuer")
	}
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tsa: create: %w", err)
	}
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("tsa: refusing to overwrite %s: %w", p, fs.ErrExist)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("tsa: create: %w", err)
		}
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tsa: generate key: %w", err)
	}
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{oidKPTimeStamping})
	if err != nil {
		return nil, fmt.Errorf("tsa: marshal extKeyUsage: %w", err)
	}
	if org = strings.TrimSpace(org); org == "" {
		org = ca.DefaultOrganization
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:   pkix.Name{CommonName: name + cnSuffix, Organization: []string{org}},
		NotBefore: now.Add(-5 * time.Minute),
		NotAfter:  now.Add(Validity),
		KeyUsage:  x509.KeyUsageDigitalSignature,
		// Go writes ExtKeyUsage non-critical; RFC 3161 wants it critical.
		ExtraExtensions: []pkix.Extension{{Id: oidExtKeyUsage, Critical: true, Value: eku}},
	}
	der, err := issuer.IssueCertificate(tmpl, key.Public())
	if err != nil {
		return nil, fmt.Errorf("tsa: issue certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("tsa: parse certificate: %w", err)
	}
	chainDER := issuer.Chain()
	if len(chainDER) > 0 {
		chainDER = chainDER[:len(chainDER)-1] // leave out the root
	}
	chain := make([]*x509.Certificate, 0, len(chainDER))
	for _, d := range chainDER {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, fmt.Errorf("tsa: parse issuer chain: %w", err)
		}
		chain = append(chain, c)
	}
	t, err := newTSA(cert, chain, key)
	if err != nil {
		return nil, err
	}

	var pemBuf bytes.Buffer
	for _, c := range append([]*x509.Certificate{cert}, chain...) {
		if err := pem.Encode(&pemBuf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}); err != nil {
			return nil, fmt.Errorf("tsa: encode certificate: %w", err)
		}
	}
	if err := ca.WriteKeyFile(keyPath, key); err != nil {
		return nil, fmt.Errorf("tsa: %w", err)
	}
	if err := writeNew(certPath, pemBuf.Bytes()); err != nil {
		_ = os.Remove(keyPath)
		return nil, err
	}
	return t, nil
}

// Load reads the TSA written by Create from dir.
func Load(dir string) (*TSA, error) {
	certPath := filepath.Join(dir, CertFile)
	data, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("tsa: load: %w", err)
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tsa: load %s: %w", certPath, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("tsa: load %s: %w: no certificate", certPath, ErrInvalidTSA)
	}
	key, err := ca.ReadKeyFile(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("tsa: load: %w", err)
	}
	return newTSA(certs[0], certs[1:], key)
}

func newTSA(cert *x509.Certificate, chain []*x509.Certificate, key crypto.Signer) (*TSA, error) {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := key.Public().(equaler); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: key does not match the certificate", ErrInvalidTSA)
	}
	if err := checkTSACert(cert); err != nil {
		return nil, err
	}
	issuer := cert
	for _, c := range chain {
		if err := issuer.CheckSignatureFrom(c); err != nil {
			return nil, fmt.Errorf("%w: chain: %w", ErrInvalidTSA, err)
		}
		issuer = c
	}
	return &TSA{Policy: DefaultPolicy, cert: cert, chain: chain, key: key}, nil
}

// checkTSACert checks what RFC 3161 §2.3 asks of a TSA certificate: one
// extKeyUsage, timeStamping, critical.
func checkTSACert(cert *x509.Certificate) error {
	for _, e := range cert.Extensions {
		if e.Id.Equal(oidExtKeyUsage) {
			if !e.Critical || len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageTimeStamping || len(cert.UnknownExtKeyUsage) != 0 {
				return fmt.Errorf("%w: extKeyUsage must be timeStamping only and critical", ErrInvalidTSA)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: no extKeyUsage", ErrInvalidTSA)
}

// Certificate returns the TSA certificate.
func (t *TSA) Certificate() *x509.Certificate { return t.cert }

// Chain returns the DER certificates put into tokens: the TSA certificate,
// then the intermediates up to (not including) the root.
func (t *TSA) Chain() [][]byte {
	out := [][]byte{bytes.Clone(t.cert.Raw)}
	for _, c := range t.chain {
		out = append(out, bytes.Clone(c.Raw))
	}
	return out
}

// Timestamp returns a DER TimeStampToken (RFC 3161 §2.4.2: a CMS
// ContentInfo with SignedData over a TSTInfo) for digest, the hashAlg hash
// of the data to time-stamp. hashAlg is SHA-256, SHA-384 or SHA-512
// (ErrUnsupportedHash otherwise) and digest must have its length
// (ErrBadDigest). nonce, if not nil, is echoed in the token.
//
// The TSTInfo has policy t.Policy, a random 160-bit serial number, genTime
// now (UTC, to the second) and accuracy 1s; the token is signed with
// ECDSA-SHA256, carries a SigningCertificateV2 attribute and includes the
// TSA certificate and the issuing CA certificate.
func (t *TSA) Timestamp(digest []byte, hashAlg crypto.Hash, nonce *big.Int) ([]byte, error) {
	switch hashAlg {
	case crypto.SHA256, crypto.SHA384, crypto.SHA512:
	default:
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedHash, hashAlg)
	}
	if len(digest) != hashAlg.Size() {
		return nil, fmt.Errorf("%w: %d bytes for %v (want %d)", ErrBadDigest, len(digest), hashAlg, hashAlg.Size())
	}
	policy := t.Policy
	if len(policy) == 0 {
		policy = DefaultPolicy
	}
	ts := &timestamp.Timestamp{
		HashAlgorithm:     hashAlg,
		HashedMessage:     bytes.Clone(digest),
		Time:              time.Now().UTC().Truncate(time.Second),
		Accuracy:          Accuracy,
		Policy:            policy,
		AddTSACertificate: true,
		Certificates:      t.chain,
	}
	if nonce != nil {
		ts.Nonce = new(big.Int).Set(nonce)
	}
	resp, err := ts.CreateResponseWithOpts(t.cert, t.key, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("tsa: create token: %w", err)
	}
	return tokenFromResponse(resp)
}

// tokenFromResponse takes the TimeStampToken out of a granted TimeStampResp.
func tokenFromResponse(resp []byte) ([]byte, error) {
	var r struct {
		Status asn1.RawValue // PKIStatusInfo
		Token  asn1.RawValue `asn1:"optional"`
	}
	rest, err := asn1.Unmarshal(resp, &r)
	if err != nil {
		return nil, fmt.Errorf("tsa: %w: %w", errUnexpectedReply, err)
	}
	var status int
	if _, err := asn1.Unmarshal(r.Status.Bytes, &status); err != nil {
		return nil, fmt.Errorf("tsa: %w: status: %w", errUnexpectedReply, err)
	}
	if len(rest) != 0 || status != int(timestamp.Granted) || len(r.Token.FullBytes) == 0 {
		return nil, fmt.Errorf("tsa: %w: status %d", errUnexpectedReply, status)
	}
	return bytes.Clone(r.Token.FullBytes), nil
}

// writeNew creates path (mode 0644) with data, failing if it exists.
func writeNew(path string, data []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("tsa: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	// Chmod explicitly: the umask must not narrow a certificate's mode.
	if err = f.Chmod(0o644); err == nil {
		if _, err = f.Write(data); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("tsa: write %s: %w", path, err)
	}
	return nil
}
