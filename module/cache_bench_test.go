package module

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/module/config"
)

var (
	genMu    sync.Mutex
	genCache = map[int][]Credential{}
)

// genCredentials returns n EC P-256 credentials shaped like rssp's: a
// certificate each from one issuing CA under one root, chain = leaf,
// issuing CA, root.
func genCredentials(tb testing.TB, n int) []Credential {
	tb.Helper()
	genMu.Lock()
	defer genMu.Unlock()
	if c, ok := genCache[n]; ok {
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
	creds := make([]Credential, n)
	for i := range creds {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		t := &x509.Certificate{SerialNumber: big.NewInt(int64(1000 + i)),
			Subject:   pkix.Name{CommonName: fmt.Sprintf("bench user %d", i), Organization: []string{"csctoken bench"}},
			NotBefore: nb, NotAfter: na, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment}
		leaf := mk(t, ca, k.Public(), caKey)
		creds[i] = Credential{
			ID: fmt.Sprintf("cred-%04d-7f3a9c2e", i), Enabled: true,
			KeyAlgos: []string{"1.2.840.10045.4.3.2", "1.2.840.10045.4.3.3", "1.2.840.10045.4.3.4"},
			KeyLen:   256, CurveOID: "1.2.840.10045.3.1.7",
			Certificates: [][]byte{leaf.Raw, ca.Raw, root.Raw},
			SCAL:         1, Multisign: 10, Auth: AuthPIN, PINID: "PIN", PINLabel: "PIN",
		}
	}
	genCache[n] = creds
	return creds
}

// benchToken is a token of a fresh state, as Initialize makes it.
func benchToken(dir string) *token {
	st := &state{ctx: context.Background(), log: discard, opts: &Options{Now: time.Now}}
	sc := config.Service{Name: "bench", URL: "https://rssp.example/csc/v2", Auth: config.AuthBasic, Username: "bench"}
	return newToken(st, 0, sc, dir)
}

// BenchmarkLoadCache: loading the listing cache of n credentials, as
// C_Initialize does (read, decode, objects), and then finding every
// certificate.
func BenchmarkLoadCache(b *testing.B) {
	for _, n := range []int{2, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			creds := genCredentials(b, n)
			dir := b.TempDir()
			benchToken(dir).saveCache(creds)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				t := benchToken(dir)
				t.loadCache()
				if got := len(t.objects().list); got < 3*n {
					b.Fatalf("%d objects", got)
				}
			}
		})
	}
}
