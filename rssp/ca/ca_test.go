package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
)

// testKeys caches generated subject keys: RSA generation is slow.
var testKeys = struct {
	sync.Mutex
	m map[string]crypto.Signer
}{m: map[string]crypto.Signer{}}

func testKey(t *testing.T, kind string) crypto.Signer {
	t.Helper()
	testKeys.Lock()
	defer testKeys.Unlock()
	if k, ok := testKeys.m[kind]; ok {
		return k
	}
	var k crypto.Signer
	var err error
	switch kind {
	case "rsa-1024":
		k, err = rsa.GenerateKey(rand.Reader, 1024)
	case "rsa-2048":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "rsa-3072":
		k, err = rsa.GenerateKey(rand.Reader, 3072)
	case "ec-p224":
		k, err = ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	case "ec-p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ec-p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	testKeys.m[kind] = k
	return k
}

// sharedCA is one CA for the tests that only issue.
var sharedCA = struct {
	once sync.Once
	dir  string
	ca   *CA
	err  error
}{}

func testCA(t *testing.T) (*CA, string) {
	t.Helper()
	sharedCA.once.Do(func() {
		dir, err := os.MkdirTemp("", "ca-test-")
		if err != nil {
			sharedCA.err = err
			return
		}
		sharedCA.dir = dir
		sharedCA.ca, sharedCA.err = Create(dir, "Test", "")
	})
	if sharedCA.err != nil {
		t.Fatal(sharedCA.err)
	}
	return sharedCA.ca, sharedCA.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedCA.dir != "" {
		_ = os.RemoveAll(sharedCA.dir)
	}
	os.Exit(code)
}

func openssl(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	return p
}

func findExt(c *x509.Certificate, oid asn1.ObjectIdentifier) (critical, ok bool) {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return e.Critical, true
		}
	}
	return false, false
}

func TestCreateProfiles(t *testing.T) {
	c, _ := testCA(t)
	now := time.Now()
	tests := []struct {
		name       string
		cert       *x509.Certificate
		cn         string
		validity   time.Duration
		maxPathLen int // -1: none
		issuer     *x509.Certificate
	}{
		{"root", c.Root(), "Test Root CA", RootValidity, -1, c.Root()},
		{"issuing", c.Issuing(), "Test Issuing CA", IssuingValidity, 0, c.Root()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert := tt.cert
			if cert.Subject.CommonName != tt.cn {
				t.Errorf("CN = %q, want %q", cert.Subject.CommonName, tt.cn)
			}
			if !slices.Equal(cert.Subject.Organization, []string{DefaultOrganization}) {
				t.Errorf("O = %q", cert.Subject.Organization)
			}
			pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
			if !ok || pub.Curve != elliptic.P384() {
				t.Errorf("public key %T, want ECDSA P-384", cert.PublicKey)
			}
			if cert.SignatureAlgorithm != x509.ECDSAWithSHA384 {
				t.Errorf("signature algorithm %v", cert.SignatureAlgorithm)
			}
			if !cert.BasicConstraintsValid || !cert.IsCA {
				t.Error("not a CA")
			}
			if crit, ok := findExt(cert, oidBasicConstraints); !ok || !crit {
				t.Error("basicConstraints missing or not critical")
			}
			if tt.maxPathLen < 0 && (cert.MaxPathLen != -1) {
				t.Errorf("pathlen %d, want none", cert.MaxPathLen)
			}
			if tt.maxPathLen == 0 && (cert.MaxPathLen != 0 || !cert.MaxPathLenZero) {
				t.Errorf("pathlen %d (zero %v), want 0", cert.MaxPathLen, cert.MaxPathLenZero)
			}
			if cert.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
				t.Errorf("key usage %b", cert.KeyUsage)
			}
			if len(cert.ExtKeyUsage) != 0 || len(cert.UnknownExtKeyUsage) != 0 {
				t.Error("CA certificate has an extKeyUsage: it would constrain the leaves")
			}
			if len(cert.SubjectKeyId) == 0 {
				t.Error("no subjectKeyIdentifier")
			}
			if cert != c.Root() && !bytes.Equal(cert.AuthorityKeyId, c.Root().SubjectKeyId) {
				t.Error("authorityKeyIdentifier does not name the root")
			}
			if err := cert.CheckSignatureFrom(tt.issuer); err != nil {
				t.Errorf("signature: %v", err)
			}
			if got := cert.NotAfter.Sub(now); got < tt.validity-time.Hour || got > tt.validity+time.Hour {
				t.Errorf("validity %v, want about %v", got, tt.validity)
			}
			if cert.SerialNumber.Sign() <= 0 || cert.SerialNumber.BitLen() > 128 {
				t.Errorf("serial %v", cert.SerialNumber)
			}
		})
	}
	chain := c.Chain()
	if len(chain) != 2 || !bytes.Equal(chain[0], c.Issuing().Raw) || !bytes.Equal(chain[1], c.Root().Raw) {
		t.Error("Chain() is not [issuing, root]")
	}
}

func TestIssueCredential(t *testing.T) {
	c, dir := testCA(t)
	tests := []struct {
		name    string
		key     string
		subject CredentialSubject
	}{
		{"rsa-2048", "rsa-2048", CredentialSubject{Name: "Alice Example", CredentialID: "cred-0001"}},
		{"rsa-3072 full subject", "rsa-3072", CredentialSubject{Name: "Bob Example", Organization: "Example Org", Country: "de", Email: "bob@example.org", CredentialID: "7f3a9c2e-0d1b-4c55-9a8e-3b1f0c6d2e44"}},
		{"ec-p256", "ec-p256", CredentialSubject{Name: "Carol Example", CredentialID: "c2"}},
		{"ec-p384 name only", "ec-p384", CredentialSubject{Name: "Dave Example"}},
		{"utf-8 name", "ec-p256", CredentialSubject{Name: "Zoë Žáková"}},
		{"ed25519", "ed25519", CredentialSubject{Name: "Erin Example", CredentialID: "e1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := testKey(t, tt.key)
			before := time.Now()
			der, err := c.IssueCredential(tt.subject, key.Public(), 365*24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			checkCredentialCert(t, c, cert, tt.subject, before)
			opensslVerify(t, dir, der, "", "sslclient", "smimesign")
		})
	}
}

func checkCredentialCert(t *testing.T, c *CA, cert *x509.Certificate, s CredentialSubject, before time.Time) {
	t.Helper()
	pool := func(cs ...*x509.Certificate) *x509.CertPool {
		p := x509.NewCertPool()
		for _, c := range cs {
			p.AddCert(c)
		}
		return p
	}
	for _, eku := range []x509.ExtKeyUsage{x509.ExtKeyUsageAny, x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageEmailProtection, x509.ExtKeyUsageCodeSigning} {
		chains, err := cert.Verify(x509.VerifyOptions{
			Roots:         pool(c.Root()),
			Intermediates: pool(c.Issuing()),
			KeyUsages:     []x509.ExtKeyUsage{eku},
		})
		if err != nil {
			t.Errorf("verify for %v: %v", eku, err)
		} else if len(chains[0]) != 3 {
			t.Errorf("chain of %d certificates", len(chains[0]))
		}
	}
	// The root alone is not enough: the issuing CA is needed.
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool(c.Root()), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
		t.Error("verified without the intermediate")
	}

	if cert.Subject.CommonName != strings.TrimSpace(s.Name) {
		t.Errorf("CN %q", cert.Subject.CommonName)
	}
	if cert.Subject.SerialNumber != s.CredentialID {
		t.Errorf("serialNumber attribute %q, want %q", cert.Subject.SerialNumber, s.CredentialID)
	}
	if s.Organization != "" && !slices.Equal(cert.Subject.Organization, []string{s.Organization}) {
		t.Errorf("O %q", cert.Subject.Organization)
	}
	if s.Country != "" && !slices.Equal(cert.Subject.Country, []string{strings.ToUpper(s.Country)}) {
		t.Errorf("C %q", cert.Subject.Country)
	}
	if s.Email != "" && !slices.Equal(cert.EmailAddresses, []string{s.Email}) {
		t.Errorf("email SAN %q", cert.EmailAddresses)
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment {
		t.Errorf("key usage %b", cert.KeyUsage)
	}
	if crit, ok := findExt(cert, oidKeyUsage); !ok || !crit {
		t.Error("keyUsage missing or not critical")
	}
	for _, want := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageEmailProtection, x509.ExtKeyUsageCodeSigning} {
		if !slices.Contains(cert.ExtKeyUsage, want) {
			t.Errorf("extKeyUsage %v missing", want)
		}
	}
	if !slices.ContainsFunc(cert.UnknownExtKeyUsage, OIDExtKeyUsageDocumentSigning.Equal) {
		t.Error("extKeyUsage documentSigning missing")
	}
	if !cert.BasicConstraintsValid || cert.IsCA {
		t.Error("basicConstraints is not CA:FALSE")
	}
	if len(cert.SubjectKeyId) != 20 {
		t.Errorf("subjectKeyIdentifier %x", cert.SubjectKeyId)
	}
	if !bytes.Equal(cert.AuthorityKeyId, c.Issuing().SubjectKeyId) {
		t.Error("authorityKeyIdentifier does not name the issuing CA")
	}
	if cert.SignatureAlgorithm != x509.ECDSAWithSHA384 {
		t.Errorf("signature algorithm %v", cert.SignatureAlgorithm)
	}
	if cert.SerialNumber.Sign() <= 0 || cert.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %v", cert.SerialNumber)
	}
	if cert.NotBefore.After(before) {
		t.Errorf("NotBefore %v after issuance", cert.NotBefore)
	}
}

// opensslVerify runs openssl verify on der against the CA in dir, once
// without a purpose and once for each purpose.
func opensslVerify(t *testing.T, dir string, der []byte, extraUntrusted string, purposes ...string) {
	t.Helper()
	bin := openssl(t)
	certPath := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(certPath, encodeCert(der), 0o644); err != nil {
		t.Fatal(err)
	}
	untrusted := filepath.Join(dir, IssuingCertFile)
	if extraUntrusted != "" {
		untrusted = extraUntrusted
	}
	for _, p := range append([]string{""}, purposes...) {
		args := []string{"verify", "-CAfile", filepath.Join(dir, RootCertFile), "-untrusted", untrusted}
		if p != "" {
			args = append(args, "-purpose", p)
		}
		args = append(args, certPath)
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), certPath+": OK") {
			t.Errorf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestIssueCredentialRejects(t *testing.T) {
	c, _ := testCA(t)
	ec := testKey(t, "ec-p256").Public()
	tests := []struct {
		name    string
		subject CredentialSubject
		pub     crypto.PublicKey
		want    error
	}{
		{"empty name", CredentialSubject{Name: "  "}, ec, ErrInvalidSubject},
		{"long name", CredentialSubject{Name: strings.Repeat("x", 65)}, ec, ErrInvalidSubject},
		{"bad country", CredentialSubject{Name: "A", Country: "DEU"}, ec, ErrInvalidSubject},
		{"country not letters", CredentialSubject{Name: "A", Country: "1a"}, ec, ErrInvalidSubject},
		{"credential ID not printable", CredentialSubject{Name: "A", CredentialID: "a_b"}, ec, ErrInvalidSubject},
		{"credential ID too long", CredentialSubject{Name: "A", CredentialID: strings.Repeat("1", 65)}, ec, ErrInvalidSubject},
		{"rsa-1024", CredentialSubject{Name: "A"}, testKey(t, "rsa-1024").Public(), ErrUnsupportedKey},
		{"p-224", CredentialSubject{Name: "A"}, testKey(t, "ec-p224").Public(), ErrUnsupportedKey},
		{"private key", CredentialSubject{Name: "A"}, testKey(t, "ec-p256"), ErrUnsupportedKey},
		{"nil key", CredentialSubject{Name: "A"}, nil, ErrUnsupportedKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.IssueCredential(tt.subject, tt.pub, time.Hour)
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := c.IssueCertificate(&x509.Certificate{IsCA: true, NotAfter: time.Now().Add(time.Hour)}, ec); !errors.Is(err, ErrInvalidSubject) {
		t.Errorf("CA template: err = %v", err)
	}
	if _, err := c.IssueCertificate(&x509.Certificate{}, ec); !errors.Is(err, ErrInvalidSubject) {
		t.Errorf("no NotAfter: err = %v", err)
	}
}

func TestIssueValidity(t *testing.T) {
	c, _ := testCA(t)
	pub := testKey(t, "ec-p256").Public()
	now := time.Now()
	tests := []struct {
		name     string
		validity time.Duration
		want     time.Time
	}{
		{"given", 30 * 24 * time.Hour, now.Add(30 * 24 * time.Hour)},
		{"default", 0, now.Add(DefaultCredentialValidity)},
		{"capped by issuing CA", 100 * 365 * 24 * time.Hour, c.Issuing().NotAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, err := c.IssueCredential(CredentialSubject{Name: "V"}, pub, tt.validity)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			if d := cert.NotAfter.Sub(tt.want); d < -time.Minute || d > time.Minute {
				t.Errorf("NotAfter %v, want %v", cert.NotAfter, tt.want)
			}
		})
	}
	// Serials differ.
	seen := map[string]bool{}
	for range 20 {
		der, err := c.IssueCredential(CredentialSubject{Name: "S"}, pub, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(der)
		if seen[cert.SerialNumber.String()] {
			t.Fatal("repeated serial")
		}
		seen[cert.SerialNumber.String()] = true
	}
}

func TestCreateLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	c, err := Create(dir, "Round Trip", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		file string
		mode fs.FileMode
	}{
		{RootKeyFile, 0o600},
		{IssuingKeyFile, 0o600},
		{RootCertFile, 0o644},
		{IssuingCertFile, 0o644},
	} {
		st, err := os.Stat(filepath.Join(dir, tt.file))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != tt.mode {
			t.Errorf("%s: mode %v, want %v", tt.file, st.Mode().Perm(), tt.mode)
		}
	}
	// The root key is the root's.
	rootKey, err := ReadKeyFile(filepath.Join(dir, RootKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := keyMatches(rootKey, c.Root()); err != nil {
		t.Error(err)
	}

	l, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(c.Chain(), l.Chain(), bytes.Equal) {
		t.Error("loaded chain differs")
	}
	der, err := l.IssueCredential(CredentialSubject{Name: "After Load"}, testKey(t, "ec-p256").Public(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	checkCredentialCert(t, c, cert, CredentialSubject{Name: "After Load"}, time.Now())
	opensslVerify(t, dir, der, "")

	// No overwriting, and nothing touched.
	old, _ := os.ReadFile(filepath.Join(dir, IssuingKeyFile))
	if _, err := Create(dir, "Again", ""); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create over an existing CA: err = %v, want fs.ErrExist", err)
	}
	if now, _ := os.ReadFile(filepath.Join(dir, IssuingKeyFile)); !bytes.Equal(old, now) {
		t.Error("issuing key changed")
	}
}

func TestCreateRejectsName(t *testing.T) {
	for _, name := range []string{"", "  ", strings.Repeat("n", maxCANameLen+1)} {
		dir := t.TempDir()
		if _, err := Create(dir, name, ""); !errors.Is(err, ErrInvalidSubject) {
			t.Errorf("%q: err = %v, want ErrInvalidSubject", name, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%q: files written", name)
		}
	}
	c, err := Create(t.TempDir(), strings.Repeat("n", maxCANameLen), "")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Issuing().Subject.CommonName); n != 64 {
		t.Errorf("CN of %d characters", n)
	}
}

func TestCreateRefusesPartial(t *testing.T) {
	for _, f := range []string{RootCertFile, RootKeyFile, IssuingCertFile, IssuingKeyFile} {
		t.Run(f, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Create(dir, "X", ""); !errors.Is(err, fs.ErrExist) {
				t.Fatalf("err = %v, want fs.ErrExist", err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("Create left %d files", len(entries))
			}
		})
	}
}

func TestLoadRejects(t *testing.T) {
	_, dir := testCA(t)
	other := t.TempDir()
	if _, err := Create(other, "Other", ""); err != nil {
		t.Fatal(err)
	}
	copyFile := func(t *testing.T, from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		swap string // file taken from the other CA
		want error
	}{
		{"foreign issuing key", IssuingKeyFile, ErrInvalidCA},
		{"foreign root", RootCertFile, ErrInvalidCA},
		{"missing issuing", "", fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			for _, f := range []string{RootCertFile, IssuingCertFile, IssuingKeyFile} {
				src := filepath.Join(dir, f)
				if f == tt.swap {
					src = filepath.Join(other, f)
				}
				if tt.swap == "" && f == IssuingCertFile {
					continue
				}
				copyFile(t, src, filepath.Join(d, f))
			}
			if _, err := Load(d); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}
