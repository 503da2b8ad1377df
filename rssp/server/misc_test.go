package server_test

import (
	"crypto"
	"crypto/tls"
	"net/http"
	"testing"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
)

// TestDisabledCredential: a disabled credential is left out by onlyValid,
// reported disabled, and neither authorizes nor signs.
func TestDisabledCredential(t *testing.T) {
	f := newFixture(t)
	if err := f.srv.App.Service.SetDisabled(t.Context(), f.ec, true); err != nil {
		t.Fatal(err)
	}
	var all, valid csc.CredentialsListResponse
	rssptest.Must(t, f.srv.Call(t, "credentials/list", f.tok, map[string]any{"credentialInfo": true, "certificates": "none"})).Decode(t, &all)
	rssptest.Must(t, f.srv.Call(t, "credentials/list", f.tok, map[string]any{"onlyValid": true})).Decode(t, &valid)
	if len(all.CredentialIDs) != 3 || len(valid.CredentialIDs) != 2 || !valid.OnlyValid {
		t.Fatalf("list: all %v, valid %v", all.CredentialIDs, valid.CredentialIDs)
	}
	for _, ci := range all.CredentialInfos {
		if ci.Cert != nil && len(ci.Cert.Certificates) != 0 {
			t.Fatalf("certificates=none returned certificates")
		}
		if ci.CredentialID == f.ec && ci.Key.Status != "disabled" {
			t.Fatalf("disabled credential has key status %q", ci.Key.Status)
		}
	}
	r := f.srv.Call(t, "credentials/authorize", f.tok, map[string]any{"credentialID": f.ec, "numSignatures": 1,
		"authData": []map[string]string{{"id": "PIN", "value": pin}}})
	if r.Error().Code != "credential_disabled" {
		t.Fatalf("authorize disabled: %s", r.Body)
	}
	if err := f.srv.App.Service.SetDisabled(t.Context(), f.ec, false); err != nil {
		t.Fatal(err)
	}
	sad := f.authorize(t, f.ec, 1, nil)
	if err := f.srv.App.Service.SetDisabled(t.Context(), f.ec, true); err != nil {
		t.Fatal(err)
	}
	r = f.srv.Call(t, "signatures/signHash", f.tok, csc.SignHashRequest{CredentialID: f.ec, SAD: sad,
		Hashes: []csc.Bytes{digest(crypto.SHA256, "x")}, SignAlgo: csc.OIDECDSAWithSHA256})
	if r.Error().Code != "credential_disabled" {
		t.Fatalf("sign disabled: %s", r.Body)
	}
}

// TestTLSVersions: TLS 1.2 and 1.3 are served, 1.1 is refused.
func TestTLSVersions(t *testing.T) {
	srv := rssptest.Start(t, rssptest.Options{})
	for _, c := range []struct {
		name     string
		min, max uint16
		ok       bool
	}{
		{"TLS 1.3", tls.VersionTLS13, tls.VersionTLS13, true},
		{"TLS 1.2", tls.VersionTLS12, tls.VersionTLS12, true},
		{"TLS 1.1", tls.VersionTLS10, tls.VersionTLS11, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CAPool, MinVersion: c.min, MaxVersion: c.max}}}
			resp, err := cl.Get(srv.URL + "/info")
			if err == nil {
				resp.Body.Close()
			}
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

// TestSCAL2Batch: a SCAL2 SAD for two hashes signs exactly those two, in
// any order, once.
func TestSCAL2Batch(t *testing.T) {
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	id, _ := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.RSA3072, PIN: pin, SCAL: 2, Multisign: 2})
	tok := srv.Login(t, user, password)
	a, b := digest(crypto.SHA384, "a"), digest(crypto.SHA384, "b")
	var ar csc.AuthorizeResponse
	rssptest.Must(t, srv.Call(t, "credentials/authorize", tok, map[string]any{"credentialID": id, "numSignatures": 2,
		"hashes": []csc.Bytes{a, b}, "hashAlgorithmOID": csc.OIDSHA384, "authData": []map[string]string{{"id": "PIN", "value": pin}}})).Decode(t, &ar)
	sign := func(h ...csc.Bytes) rssptest.Response {
		return srv.Call(t, "signatures/signHash", tok, csc.SignHashRequest{CredentialID: id, SAD: ar.SAD, Hashes: h, SignAlgo: csc.OIDSHA384WithRSA})
	}
	if r := sign(a); r.Status != 400 {
		t.Fatalf("subset of the bound hashes accepted: %s", r.Body)
	}
	rssptest.Must(t, sign(b, a))
	if r := sign(b, a); r.Status != 400 {
		t.Fatalf("SCAL2 SAD reused: %s", r.Body)
	}
}

// TestSignatureQualifierWire: over HTTPS, credentials/list filters by
// signatureQualifier, credentials/info returns it, and signHash with
// another qualifier than the credential's is 400 invalid_request.
func TestSignatureQualifierWire(t *testing.T) {
	f := newFixture(t)
	qes, _ := f.srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.ECP256, PIN: pin,
		SignatureQualifier: "eu_eidas_qes"})
	var list csc.CredentialsListResponse
	rssptest.Must(t, f.srv.Call(t, "credentials/list", f.tok, map[string]any{"signatureQualifier": "eu_eidas_qes",
		"credentialInfo": true})).Decode(t, &list)
	if len(list.CredentialIDs) != 1 || list.CredentialIDs[0] != qes || list.CredentialInfos[0].SignatureQualifier != "eu_eidas_qes" {
		t.Fatalf("list by qualifier: %+v", list)
	}
	var info csc.CredentialInfo
	rssptest.Must(t, f.srv.Call(t, "credentials/info", f.tok, map[string]any{"credentialID": qes})).Decode(t, &info)
	if info.SignatureQualifier != "eu_eidas_qes" {
		t.Fatalf("info: qualifier %q", info.SignatureQualifier)
	}
	sad := f.authorize(t, qes, 1, nil)
	req := csc.SignHashRequest{CredentialID: qes, SAD: sad, SignatureQualifier: "eu_eidas_aes",
		Hashes: []csc.Bytes{digest(crypto.SHA256, "x")}, SignAlgo: csc.OIDECDSAWithSHA256}
	r := f.srv.Call(t, "signatures/signHash", f.tok, req)
	if r.Status != 400 || r.Error().Code != "invalid_request" {
		t.Fatalf("signHash with another qualifier: %d %s", r.Status, r.Body)
	}
	req.SignatureQualifier = "eu_eidas_qes"
	rssptest.Must(t, f.srv.Call(t, "signatures/signHash", f.tok, req))
}
