// Package objectstest makes CSC credentials with real certificates for the
// tests of package objects and of the module.
package objectstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/module/objects"
)

var (
	mu    sync.Mutex
	cache = map[int][]objects.Credential{}
)

// Generate returns n EC P-256 credentials shaped like rssp's: a
// certificate each from one issuing CA under one root, chain = leaf,
// issuing CA, root.
func Generate(tb testing.TB, n int) []objects.Credential {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if c, ok := cache[n]; ok {
		return c
	}
	mk := func(tmpl, parent *x509.Certificate, pub, signer any) *x509.Certificate {
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			tb.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	nb, na := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2035, 1, 1, 0, 0, 0, 0, time.UTC)
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rootT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Bench Root CA", Organization: []string{"csctoken"}},
		NotBefore: nb, NotAfter: na, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	root := mk(rootT, rootT, rootKey.Public(), rootKey)
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caT := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Bench Issuing CA", Organization: []string{"csctoken"}},
		NotBefore: nb, NotAfter: na, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	ca := mk(caT, root, caKey.Public(), rootKey)
	creds := make([]objects.Credential, n)
	for i := range creds {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		t := &x509.Certificate{SerialNumber: big.NewInt(int64(1000 + i)),
			Subject:   pkix.Name{CommonName: fmt.Sprintf("bench user %d", i), Organization: []string{"csctoken bench"}},
			NotBefore: nb, NotAfter: na, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment}
		leaf := mk(t, ca, k.Public(), caKey)
		creds[i] = objects.Credential{
			ID: fmt.Sprintf("cred-%04d-7f3a9c2e", i), Enabled: true,
			KeyAlgos: []string{"1.2.840.10045.4.3.2", "1.2.840.10045.4.3.3", "1.2.840.10045.4.3.4"},
			KeyLen:   256, CurveOID: "1.2.840.10045.3.1.7",
			Certificates: [][]byte{leaf.Raw, ca.Raw, root.Raw},
			SCAL:         1, Multisign: 10, Auth: objects.AuthPIN, PINID: "PIN", PINLabel: "PIN",
		}
	}
	cache[n] = creds
	return creds
}

// Mixed returns the EC credentials of Generate(tb, 3) plus an RSA one with
// a GeneralizedTime validity, a description and a disabled EC one.
func Mixed(t testing.TB) []objects.Credential {
	t.Helper()
	creds := append([]objects.Credential(nil), Generate(t, 3)...)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: new(big.Int).Lsh(big.NewInt(1), 130), Subject: pkix.Name{CommonName: "RSA user"},
		NotBefore: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2055, 1, 1, 0, 0, 0, 0, time.UTC)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	creds = append(creds, objects.Credential{ID: "rsa", Description: "An RSA key", Enabled: true, KeyLen: 2048,
		KeyAlgos: []string{"1.2.840.113549.1.1.11", "1.2.840.113549.1.1.10"}, Certificates: [][]byte{der},
		SCAL: 2, Multisign: 1, Auth: objects.AuthBrowser})
	creds[1].Enabled = false
	creds[2].KeyAlgos = nil
	return creds
}
