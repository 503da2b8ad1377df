package server_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
)

const (
	user     = "alice"
	password = "correct horse battery"
	pin      = "123456"
)

func digest(h crypto.Hash, s string) []byte {
	w := h.New()
	w.Write([]byte(s))
	return w.Sum(nil)
}

// verify checks sig over d with the end-entity certificate and that the
// certificate chains to the root the API returned.
func verify(t *testing.T, chain []csc.Bytes, d []byte, signAlgo string, h crypto.Hash, sig []byte) {
	t.Helper()
	if len(chain) < 2 {
		t.Fatalf("chain has %d certificates", len(chain))
	}
	cert, err := x509.ParseCertificate(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for i, c := range chain[1:] {
		pc, err := x509.ParseCertificate(c)
		if err != nil {
			t.Fatal(err)
		}
		if i == len(chain)-2 {
			roots.AddCert(pc)
		} else {
			inter.AddCert(pc)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("certificate chain: %v", err)
	}
	if cert.Subject.CommonName != user {
		t.Fatalf("subject %q", cert.Subject)
	}
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if signAlgo == csc.OIDRSAPSS {
			err = rsa.VerifyPSS(pub, h, d, sig, &rsa.PSSOptions{SaltLength: h.Size()})
		} else {
			err = rsa.VerifyPKCS1v15(pub, h, d, sig)
		}
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, d, sig) {
			err = fmt.Errorf("ECDSA signature does not verify")
		}
	}
	if err != nil {
		t.Fatalf("signature (%s, %v): %v", signAlgo, h, err)
	}
}

type algoCase struct {
	signAlgo, hashOID string
	hash              crypto.Hash
	params            []byte
}

func algoCases(t *testing.T, kt keystore.KeyType) []algoCase {
	pss := func(h crypto.Hash) []byte {
		b, err := csc.MarshalPSSParams(csc.PSSParams{Hash: h, SaltLength: h.Size()})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if strings.HasPrefix(string(kt), "rsa") {
		return []algoCase{
			{csc.OIDRSA, csc.OIDSHA256, crypto.SHA256, nil},
			{csc.OIDRSA, csc.OIDSHA512, crypto.SHA512, nil},
			{csc.OIDSHA256WithRSA, "", crypto.SHA256, nil},
			{csc.OIDSHA384WithRSA, csc.OIDSHA384, crypto.SHA384, nil},
			{csc.OIDSHA512WithRSA, "", crypto.SHA512, nil},
			{csc.OIDRSAPSS, csc.OIDSHA256, crypto.SHA256, pss(crypto.SHA256)},
			{csc.OIDRSAPSS, "", crypto.SHA384, pss(crypto.SHA384)},
			{csc.OIDRSAPSS, csc.OIDSHA512, crypto.SHA512, nil},
		}
	}
	return []algoCase{
		{csc.OIDECDSAWithSHA256, "", crypto.SHA256, nil},
		{csc.OIDECDSAWithSHA384, csc.OIDSHA384, crypto.SHA384, nil},
		{csc.OIDECDSAWithSHA512, "", crypto.SHA512, nil},
	}
}

// TestSignFlow drives login → list → info → authorize → signHash over
// HTTPS for every key type and algorithm, on both backends, and verifies
// every signature with the certificate the API returned.
func TestSignFlow(t *testing.T) {
	for _, backend := range []rssptest.Backend{rssptest.Soft, rssptest.PKCS11} {
		t.Run(string(backend), func(t *testing.T) {
			srv := rssptest.Start(t, rssptest.Options{Backend: backend})
			srv.AddUser(t, user, password)
			ids := map[keystore.KeyType]string{}
			for _, kt := range keystore.KeyTypes {
				ids[kt], _ = srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: kt, PIN: pin, Multisign: 10, Description: string(kt)})
			}
			tok := srv.Login(t, user, password)

			var list csc.CredentialsListResponse
			rssptest.Must(t, srv.Call(t, "credentials/list", tok, map[string]any{
				"credentialInfo": true, "certificates": "chain", "certInfo": true, "authInfo": true})).Decode(t, &list)
			if len(list.CredentialIDs) != 4 || len(list.CredentialInfos) != 4 {
				t.Fatalf("list: %+v", list)
			}
			for _, kt := range keystore.KeyTypes {
				t.Run(string(kt), func(t *testing.T) {
					id := ids[kt]
					var info csc.CredentialInfo
					rssptest.Must(t, srv.Call(t, "credentials/info", tok, map[string]any{
						"credentialID": id, "certificates": "chain", "certInfo": true, "authInfo": true})).Decode(t, &info)
					if info.Auth == nil || info.Auth.Mode != "explicit" || len(info.Auth.Objects) != 1 || info.Auth.Objects[0].ID != "PIN" {
						t.Fatalf("auth: %+v", info.Auth)
					}
					if info.Cert == nil || info.Cert.SubjectDN == "" || len(info.Cert.Certificates) != 3 || info.Key.Status != "enabled" {
						t.Fatalf("cert: %+v key %+v", info.Cert, info.Key)
					}
					wantLen := map[keystore.KeyType]int{keystore.RSA2048: 2048, keystore.RSA3072: 3072, keystore.ECP256: 256, keystore.ECP384: 384}[kt]
					if info.Key.Len != wantLen {
						t.Fatalf("key len %d", info.Key.Len)
					}
					cases := algoCases(t, kt)
					var ar csc.AuthorizeResponse
					rssptest.Must(t, srv.Call(t, "credentials/authorize", tok, map[string]any{
						"credentialID": id, "numSignatures": len(cases),
						"authData": []map[string]string{{"id": "PIN", "value": pin}}})).Decode(t, &ar)
					for _, c := range cases {
						d := digest(c.hash, "document "+c.signAlgo)
						req := csc.SignHashRequest{CredentialID: id, SAD: ar.SAD, Hashes: []csc.Bytes{d},
							HashAlgorithmOID: c.hashOID, SignAlgo: c.signAlgo, SignAlgoParams: c.params}
						var sr csc.SignHashResponse
						rssptest.Must(t, srv.Call(t, "signatures/signHash", tok, req)).Decode(t, &sr)
						if len(sr.Signatures) != 1 {
							t.Fatalf("signatures: %d", len(sr.Signatures))
						}
						verify(t, info.Cert.Certificates, d, c.signAlgo, c.hash, sr.Signatures[0])
					}
					// The SAD is used up now.
					r := srv.Call(t, "signatures/signHash", tok, csc.SignHashRequest{CredentialID: id, SAD: ar.SAD,
						Hashes: []csc.Bytes{digest(crypto.SHA256, "x")}, HashAlgorithmOID: csc.OIDSHA256, SignAlgo: cases[0].signAlgo})
					if r.Status != 400 || r.Error().Code != "invalid_request" {
						t.Fatalf("used-up SAD: %d %s", r.Status, r.Body)
					}
				})
			}
			if n, err := srv.App.Service.VerifyAudit(t.Context()); err != nil || n == 0 {
				t.Fatalf("audit: %d %v", n, err)
			}
		})
	}
}

// TestBatch signs several hashes in one call, in order.
func TestBatch(t *testing.T) {
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	id, _ := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.ECP256, PIN: pin, Multisign: 3})
	tok := srv.Login(t, user, password)
	var ar csc.AuthorizeResponse
	rssptest.Must(t, srv.Call(t, "credentials/authorize", tok, map[string]any{
		"credentialID": id, "numSignatures": 3, "authData": []map[string]string{{"id": "PIN", "value": pin}}})).Decode(t, &ar)
	var info csc.CredentialInfo
	rssptest.Must(t, srv.Call(t, "credentials/info", tok, map[string]any{"credentialID": id, "certificates": "chain"})).Decode(t, &info)
	hs := []csc.Bytes{digest(crypto.SHA256, "a"), digest(crypto.SHA256, "b"), digest(crypto.SHA256, "c")}
	var sr csc.SignHashResponse
	rssptest.Must(t, srv.Call(t, "signatures/signHash", tok, csc.SignHashRequest{CredentialID: id, SAD: ar.SAD, Hashes: hs, SignAlgo: csc.OIDECDSAWithSHA256})).Decode(t, &sr)
	if len(sr.Signatures) != 3 {
		t.Fatalf("got %d signatures", len(sr.Signatures))
	}
	for i := range hs {
		verify(t, info.Cert.Certificates, hs[i], csc.OIDECDSAWithSHA256, crypto.SHA256, sr.Signatures[i])
	}
}

func TestInfo(t *testing.T) {
	srv := rssptest.Start(t, rssptest.Options{})
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		req, _ := http.NewRequest(method, srv.URL+"/info", strings.NewReader("{}"))
		resp, err := srv.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var info csc.InfoResponse
		err = json.NewDecoder(resp.Body).Decode(&info)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil || info.Specs != csc.SpecV2 {
			t.Fatalf("info by %s: %d %v", method, resp.StatusCode, err)
		}
	}
	var info csc.InfoResponse
	rssptest.Must(t, srv.Call(t, "info", "", map[string]any{"lang": "en-US"})).Decode(t, &info)
	if info.Specs != csc.SpecV2 || strings.Join(info.AuthType, " ") != "basic oauth2code oauth2client" ||
		!strings.HasPrefix(info.OAuth2, "https://127.0.0.1:") || info.SignAlgorithms == nil {
		t.Fatalf("info: %+v", info)
	}
	served := map[string]bool{}
	for _, m := range info.Methods {
		served[m] = true
	}
	for _, m := range []string{"auth/login", "auth/revoke", "credentials/list", "credentials/info", "credentials/authorize",
		"credentials/extendTransaction", "signatures/signHash", "signatures/timestamp",
		"credentials/authorizeCheck", "credentials/getChallenge", "signatures/signPolling"} {
		if !served[m] {
			t.Errorf("info does not list %s", m)
		}
	}
	for _, m := range []string{"signatures/signDoc"} {
		if served[m] {
			t.Errorf("info lists %s, which is not served", m)
		}
		if r := srv.Call(t, m, "", map[string]any{}); r.Status != 501 {
			t.Errorf("%s: status %d, want 501", m, r.Status)
		}
	}
}
