package tsa

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/digitorus/timestamp"

	"github.com/csctoken/csctoken/rssp/ca"
)

type fixture struct {
	dir string
	ca  *ca.CA
	tsa *TSA
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	c, err := ca.Create(dir, "Test", "")
	if err != nil {
		t.Fatal(err)
	}
	a, err := Create(dir, c, "Test", "")
	if err != nil {
		t.Fatal(err)
	}
	return fixture{dir: dir, ca: c, tsa: a}
}

func openssl(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	return p
}

func TestCreate(t *testing.T) {
	f := newFixture(t)
	cert := f.tsa.Certificate()

	var ekuCritical, found bool
	for _, e := range cert.Extensions {
		if e.Id.Equal(oidExtKeyUsage) {
			found, ekuCritical = true, e.Critical
		}
	}
	if !found || !ekuCritical {
		t.Errorf("extKeyUsage found=%v critical=%v, want critical", found, ekuCritical)
	}
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageTimeStamping {
		t.Errorf("EKU %v", cert.ExtKeyUsage)
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage %b", cert.KeyUsage)
	}
	if cert.IsCA || cert.Subject.CommonName != "Test Time-Stamping Authority" {
		t.Errorf("IsCA %v CN %q", cert.IsCA, cert.Subject.CommonName)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(f.ca.Root())
	inter.AddCert(f.ca.Issuing())
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}}); err != nil {
		t.Errorf("verify: %v", err)
	}

	st, err := os.Stat(filepath.Join(f.dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", st.Mode().Perm())
	}
	pemData, err := os.ReadFile(filepath.Join(f.dir, CertFile))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for b, rest := pem.Decode(pemData); b != nil; b, rest = pem.Decode(rest) {
		n++
	}
	if n != 2 {
		t.Errorf("%s holds %d certificates, want 2 (TSA, issuing CA)", CertFile, n)
	}
	if ch := f.tsa.Chain(); len(ch) != 2 || !bytes.Equal(ch[1], f.ca.Issuing().Raw) {
		t.Error("Chain() is not [TSA, issuing]")
	}

	old, _ := os.ReadFile(filepath.Join(f.dir, KeyFile))
	if _, err := Create(f.dir, f.ca, "Again", ""); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Create again: err = %v, want fs.ErrExist", err)
	}
	if now, _ := os.ReadFile(filepath.Join(f.dir, KeyFile)); !bytes.Equal(old, now) {
		t.Error("key changed")
	}

	l, err := Load(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Certificate().Equal(cert) || len(l.chain) != 1 || !l.chain[0].Equal(f.ca.Issuing()) {
		t.Error("Load returned other certificates")
	}
	d := sha256.Sum256([]byte("after load"))
	tok, err := l.Timestamp(d[:], crypto.SHA256, nil)
	if err != nil {
		t.Fatal(err)
	}
	opensslVerifyToken(t, f, tok, d[:], true)
}

// nonCriticalIssuer issues the TSA certificate with a non-critical EKU.
type nonCriticalIssuer struct{ *ca.CA }

func (i nonCriticalIssuer) IssueCertificate(tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	t := *tmpl
	t.ExtraExtensions = nil
	t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageTimeStamping}
	return i.CA.IssueCertificate(&t, pub)
}

func TestCreateRejectsNonCriticalEKU(t *testing.T) {
	dir := t.TempDir()
	c, err := ca.Create(dir, "Test", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(dir, nonCriticalIssuer{c}, "Test", ""); !errors.Is(err, ErrInvalidTSA) {
		t.Fatalf("err = %v, want ErrInvalidTSA", err)
	}
	for _, f := range []string{CertFile, KeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind", f)
		}
	}
}

func TestTimestamp(t *testing.T) {
	f := newFixture(t)
	data := []byte("the data to time-stamp")
	s256 := sha256.Sum256(data)
	s384 := sha512.Sum384(data)
	s512 := sha512.Sum512(data)
	big160, _ := new(big.Int).SetString("ffffffffffffffffffffffffffffffffffffffff", 16)
	tests := []struct {
		name   string
		digest []byte
		hash   crypto.Hash
		nonce  *big.Int
	}{
		{"sha256 with nonce", s256[:], crypto.SHA256, big.NewInt(0x1234567890)},
		{"sha256 no nonce", s256[:], crypto.SHA256, nil},
		{"sha384 big nonce", s384[:], crypto.SHA384, big160},
		{"sha512 nonce 1", s512[:], crypto.SHA512, big.NewInt(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			tok, err := f.tsa.Timestamp(tt.digest, tt.hash, tt.nonce)
			if err != nil {
				t.Fatal(err)
			}
			after := time.Now()
			ts, err := timestamp.Parse(tok) // also checks the CMS signature
			if err != nil {
				t.Fatal(err)
			}
			if ts.HashAlgorithm != tt.hash || !bytes.Equal(ts.HashedMessage, tt.digest) {
				t.Errorf("imprint %v %x", ts.HashAlgorithm, ts.HashedMessage)
			}
			if (tt.nonce == nil) != (ts.Nonce == nil) || (tt.nonce != nil && tt.nonce.Cmp(ts.Nonce) != 0) {
				t.Errorf("nonce %v, want %v", ts.Nonce, tt.nonce)
			}
			if ts.Time.Before(before.Add(-time.Second)) || ts.Time.After(after) {
				t.Errorf("genTime %v not in [%v, %v]", ts.Time, before, after)
			}
			if ts.Accuracy != time.Second {
				t.Errorf("accuracy %v", ts.Accuracy)
			}
			if !ts.Policy.Equal(DefaultPolicy) {
				t.Errorf("policy %v", ts.Policy)
			}
			if ts.SerialNumber == nil || ts.SerialNumber.Sign() <= 0 {
				t.Errorf("serial %v", ts.SerialNumber)
			}
			if len(ts.Certificates) != 2 || !ts.Certificates[0].Equal(f.tsa.Certificate()) || !ts.Certificates[1].Equal(f.ca.Issuing()) {
				t.Errorf("token carries %d certificates, want TSA + issuing", len(ts.Certificates))
			}
			opensslVerifyToken(t, f, tok, tt.digest, true)
			// The wrong digest must not verify.
			wrong := bytes.Clone(tt.digest)
			wrong[0] ^= 1
			opensslVerifyToken(t, f, tok, wrong, false)
		})
	}

	// Serial numbers differ.
	a, _ := f.tsa.Timestamp(s256[:], crypto.SHA256, nil)
	b, _ := f.tsa.Timestamp(s256[:], crypto.SHA256, nil)
	ta, _ := timestamp.Parse(a)
	tb, _ := timestamp.Parse(b)
	if ta.SerialNumber.Cmp(tb.SerialNumber) == 0 {
		t.Error("two tokens with one serial number")
	}

	// Another policy.
	f.tsa.Policy = asn1.ObjectIdentifier{1, 2, 3, 4, 5}
	c, err := f.tsa.Timestamp(s256[:], crypto.SHA256, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tc, _ := timestamp.Parse(c); !tc.Policy.Equal(f.tsa.Policy) {
		t.Errorf("policy %v", tc.Policy)
	}
}

// opensslVerifyToken runs openssl ts -verify on a DER token.
func opensslVerifyToken(t *testing.T, f fixture, token, digest []byte, wantOK bool) {
	t.Helper()
	bin := openssl(t)
	tmp := t.TempDir()
	tokPath := filepath.Join(tmp, "token.der")
	if err := os.WriteFile(tokPath, token, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"ts", "-verify", "-digest", hex.EncodeToString(digest), "-token_in", "-in", tokPath,
		"-CAfile", filepath.Join(f.dir, ca.RootCertFile),
		"-untrusted", filepath.Join(f.dir, CertFile)}
	out, err := exec.Command(bin, args...).CombinedOutput()
	ok := err == nil && strings.Contains(string(out), "Verification: OK")
	if ok != wantOK {
		t.Errorf("openssl %s: ok=%v, want %v: %v\n%s", strings.Join(args, " "), ok, wantOK, err, out)
	}
	if testing.Verbose() && wantOK {
		t.Logf("openssl ts -verify: %s", strings.TrimSpace(string(out)))
	}
}

// TestOpenSSLQuery answers a request made by openssl ts -query and has
// openssl check the reply against that request (imprint, nonce, policy not
// asked) and print it.
func TestOpenSSLQuery(t *testing.T) {
	f := newFixture(t)
	bin := openssl(t)
	tmp := t.TempDir()
	dataPath := filepath.Join(tmp, "data.txt")
	if err := os.WriteFile(dataPath, []byte("hello, time"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{"sha256", "sha384", "sha512"} {
		t.Run(alg, func(t *testing.T) {
			tsq := filepath.Join(tmp, alg+".tsq")
			if out, err := exec.Command(bin, "ts", "-query", "-data", dataPath, "-"+alg, "-cert", "-out", tsq).CombinedOutput(); err != nil {
				t.Fatalf("openssl ts -query: %v\n%s", err, out)
			}
			reqDER, err := os.ReadFile(tsq)
			if err != nil {
				t.Fatal(err)
			}
			req, err := timestamp.ParseRequest(reqDER)
			if err != nil {
				t.Fatal(err)
			}
			if req.Nonce == nil {
				t.Fatal("openssl sent no nonce")
			}
			tok, err := f.tsa.Timestamp(req.HashedMessage, req.HashAlgorithm, req.Nonce)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := asn1.Marshal(struct {
				Status struct{ Status int }
				Token  asn1.RawValue
			}{Token: asn1.RawValue{FullBytes: tok}})
			if err != nil {
				t.Fatal(err)
			}
			tsr := filepath.Join(tmp, alg+".tsr")
			if err := os.WriteFile(tsr, resp, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "ts", "-verify", "-queryfile", tsq, "-in", tsr,
				"-CAfile", filepath.Join(f.dir, ca.RootCertFile), "-untrusted", filepath.Join(f.dir, CertFile)).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Verification: OK") {
				t.Errorf("openssl ts -verify -queryfile: %v\n%s", err, out)
			}
			text, err := exec.Command(bin, "ts", "-reply", "-in", tsr, "-text").CombinedOutput()
			if err != nil {
				t.Fatalf("openssl ts -reply -text: %v\n%s", err, text)
			}
			for _, want := range []string{"Status: Granted.", "Policy OID: 2.999.3161.1", "Accuracy: 0x01 seconds", "Nonce: 0x" + strings.ToUpper(hex.EncodeToString(req.Nonce.Bytes()))} {
				if !strings.Contains(string(text), want) {
					t.Errorf("openssl ts -reply -text lacks %q:\n%s", want, text)
				}
			}
			if testing.Verbose() {
				t.Logf("%s", text)
			}
		})
	}
}

func TestTimestampRejects(t *testing.T) {
	f := newFixture(t)
	s256 := sha256.Sum256(nil)
	tests := []struct {
		name   string
		digest []byte
		hash   crypto.Hash
		want   error
	}{
		{"short", s256[:31], crypto.SHA256, ErrBadDigest},
		{"long", append(s256[:], 0), crypto.SHA256, ErrBadDigest},
		{"sha256 digest as sha384", s256[:], crypto.SHA384, ErrBadDigest},
		{"empty", nil, crypto.SHA512, ErrBadDigest},
		{"sha1", s256[:20], crypto.SHA1, ErrUnsupportedHash},
		{"sha224", s256[:28], crypto.SHA224, ErrUnsupportedHash},
		{"sha3-256", s256[:], crypto.SHA3_256, ErrUnsupportedHash},
		{"zero", s256[:], 0, ErrUnsupportedHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := f.tsa.Timestamp(tt.digest, tt.hash, nil)
			if !errors.Is(err, tt.want) || tok != nil {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestTimestampConcurrent(t *testing.T) {
	f := newFixture(t)
	const n = 16
	var wg sync.WaitGroup
	digests := make([][]byte, n)
	tokens := make([][]byte, n)
	errs := make([]error, n)
	for i := range n {
		digests[i] = make([]byte, 32)
		_, _ = rand.Read(digests[i])
		wg.Go(func() {
			tokens[i], errs[i] = f.tsa.Timestamp(digests[i], crypto.SHA256, big.NewInt(int64(i)))
		})
	}
	wg.Wait()
	// Parse sequentially: digitorus/pkcs7's BER parser updates a package
	// variable (a debug counter) and is not safe for concurrent use.
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		ts, err := timestamp.Parse(tokens[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ts.HashedMessage, digests[i]) || ts.Nonce.Int64() != int64(i) {
			t.Errorf("token %d is for another request", i)
		}
	}
}
