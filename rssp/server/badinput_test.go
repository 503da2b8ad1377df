package server_test

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/config"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
)

type fixture struct {
	srv              *rssptest.Server
	tok              string // alice's access token
	bobTok           string // another user's token
	rsa, ec, scal2   string // alice's credentials
	bobCred          string
	sad, sad2        string // SAD for rsa (SCAL1, 5 signatures), SAD for scal2 bound to h256
	h256, h384, h512 []byte
}

func newFixture(t *testing.T) *fixture {
	srv := rssptest.Start(t, rssptest.Options{Edit: func(c *config.Config) {
		c.Security.MaxHashes = 4
		c.Security.MaxBodyBytes = 64 << 10
	}})
	f := &fixture{srv: srv,
		h256: digest(crypto.SHA256, "doc"), h384: digest(crypto.SHA384, "doc"), h512: digest(crypto.SHA512, "doc")}
	srv.AddUser(t, user, password)
	srv.AddUser(t, "bob", "bob's password")
	f.rsa, _ = srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.RSA2048, PIN: pin, Multisign: 5})
	f.ec, _ = srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.ECP256, PIN: pin, Multisign: 5})
	f.scal2, _ = srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.ECP256, PIN: pin, SCAL: 2, Multisign: 2})
	f.bobCred, _ = srv.AddCredential(t, service.CredentialSpec{User: "bob", KeyType: keystore.ECP256, PIN: pin})
	f.tok = srv.Login(t, user, password)
	f.bobTok = srv.Login(t, "bob", "bob's password")
	f.sad = f.authorize(t, f.rsa, 5, nil)
	f.sad2 = f.authorize(t, f.scal2, 1, [][]byte{f.h256})
	return f
}

func (f *fixture) authorize(t *testing.T, cred string, n int, hashes [][]byte) string {
	t.Helper()
	req := map[string]any{"credentialID": cred, "numSignatures": n, "authData": []map[string]string{{"id": "PIN", "value": pin}}}
	if hashes != nil {
		req["hashes"] = csc.BytesList(hashes)
		req["hashAlgorithmOID"] = csc.OIDSHA256
	}
	var ar csc.AuthorizeResponse
	rssptest.Must(t, f.srv.Call(t, "credentials/authorize", f.tok, req)).Decode(t, &ar)
	return ar.SAD
}

func b64(b []byte) string    { return base64.StdEncoding.EncodeToString(b) }
func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TestBadInput sends malformed and hostile requests; each gets the right
// status and CSC error code, and none changes state: after the table, the
// SADs it tried to misuse still sign.
func TestBadInput(t *testing.T) {
	f := newFixture(t)
	bearer := "Bearer " + f.tok
	sign := func(mod func(m map[string]any)) string {
		m := map[string]any{"credentialID": f.rsa, "SAD": f.sad, "hashes": []string{b64(f.h256)},
			"hashAlgorithmOID": csc.OIDSHA256, "signAlgo": csc.OIDRSA}
		mod(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	authz := func(mod func(m map[string]any)) string {
		m := map[string]any{"credentialID": f.rsa, "numSignatures": 1, "authData": []map[string]string{{"id": "PIN", "value": pin}}}
		mod(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	tests := []struct {
		name   string
		method string
		auth   string
		body   string
		status int
		code   string
		desc   string // substring of error_description
	}{
		// Transport-level.
		{"broken JSON", "credentials/list", bearer, `{"credentialInfo":`, 400, "invalid_request", ""},
		{"not an object", "credentials/list", bearer, `[]`, 400, "invalid_request", "object"},
		{"trailing data", "credentials/list", bearer, `{} {}`, 400, "invalid_request", "trailing"},
		{"wrong type", "credentials/list", bearer, `{"credentialInfo":"yes"}`, 400, "invalid_request", "credentialInfo"},
		{"repeated field", "credentials/info", bearer, `{"credentialID":"a","credentialID":"b"}`, 400, "invalid_request", "repeated"},
		{"oversize body", "credentials/list", bearer, `{"clientData":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "invalid_request", "larger"},
		{"unknown method", "credentials/nothing", bearer, `{}`, 404, "invalid_request", ""},
		// Service authentication.
		{"no token", "credentials/list", "", `{}`, 401, "invalid_token", ""},
		{"unknown token", "credentials/list", "Bearer nope", `{}`, 401, "invalid_token", ""},
		{"basic instead of bearer", "credentials/list", "Basic YTpi", `{}`, 401, "invalid_token", ""},
		{"login wrong password", "auth/login", "Basic " + b64([]byte(user+":wrong")), `{}`, 400, "authentication_error", ""},
		{"login unknown user", "auth/login", "Basic " + b64([]byte("mallory:x")), `{}`, 400, "authentication_error", ""},
		{"login malformed basic", "auth/login", "Basic %%%", `{}`, 401, "invalid_token", ""},
		{"login nothing", "auth/login", "", `{}`, 401, "invalid_token", ""},
		{"login bad refresh token", "auth/login", "", `{"refresh_token":"nope"}`, 401, "invalid_token", ""},
		{"login access token as refresh", "auth/login", "", `{"refresh_token":"` + f.tok + `"}`, 401, "invalid_token", ""},
		{"revoke no token param", "auth/revoke", bearer, `{}`, 400, "invalid_request", "token"},
		{"revoke bad hint", "auth/revoke", bearer, `{"token":"x","token_type_hint":"sad"}`, 400, "invalid_request", "hint"},
		{"revoke another user's token", "auth/revoke", bearer, `{"token":"` + f.bobTok + `"}`, 403, "access_denied", ""},
		// credentials/list and info.
		{"list other userID", "credentials/list", bearer, `{"userID":"bob"}`, 400, "invalid_request", "userID"},
		{"list bad certificates", "credentials/list", bearer, `{"credentialInfo":true,"certificates":"all"}`, 400, "invalid_request", "certificates"},
		{"info missing ID", "credentials/info", bearer, `{}`, 400, "invalid_request", "credentialID"},
		{"info unknown ID", "credentials/info", bearer, `{"credentialID":"nope"}`, 400, "invalid_request", "credentialID"},
		{"info another user's credential", "credentials/info", bearer, `{"credentialID":"` + f.bobCred + `"}`, 400, "invalid_request", "credentialID"},
		// credentials/authorize.
		{"authorize numSignatures 0", "credentials/authorize", bearer, authz(func(m map[string]any) { m["numSignatures"] = 0 }), 400, "invalid_request", "numSignatures"},
		{"authorize numSignatures over multisign", "credentials/authorize", bearer, authz(func(m map[string]any) { m["numSignatures"] = 6 }), 400, "invalid_request", "numSignatures"},
		{"authorize numSignatures negative", "credentials/authorize", bearer, authz(func(m map[string]any) { m["numSignatures"] = -1 }), 400, "invalid_request", "numSignatures"},
		{"authorize numSignatures string", "credentials/authorize", bearer, authz(func(m map[string]any) { m["numSignatures"] = "1" }), 400, "invalid_request", "numSignatures"},
		{"authorize missing PIN", "credentials/authorize", bearer, authz(func(m map[string]any) { delete(m, "authData") }), 400, "invalid_request", "PIN"},
		{"authorize unknown factor", "credentials/authorize", bearer, authz(func(m map[string]any) {
			m["authData"] = []map[string]string{{"id": "PIN", "value": pin}, {"id": "FACE", "value": "x"}}
		}), 400, "invalid_request", "FACE"},
		{"authorize repeated factor", "credentials/authorize", bearer, authz(func(m map[string]any) {
			m["authData"] = []map[string]string{{"id": "PIN", "value": pin}, {"id": "PIN", "value": pin}}
		}), 400, "invalid_request", "repeated"},
		{"authorize unknown credential", "credentials/authorize", bearer, authz(func(m map[string]any) { m["credentialID"] = "x" }), 400, "invalid_request", "credentialID"},
		{"authorize another user's credential", "credentials/authorize", bearer, authz(func(m map[string]any) { m["credentialID"] = f.bobCred }), 400, "invalid_request", "credentialID"},
		{"authorize SCAL2 without hashes", "credentials/authorize", bearer, authz(func(m map[string]any) { m["credentialID"] = f.scal2 }), 400, "invalid_request", "hashes"},
		{"authorize hash count mismatch", "credentials/authorize", bearer, authz(func(m map[string]any) {
			m["credentialID"], m["numSignatures"], m["hashes"], m["hashAlgorithmOID"] = f.scal2, 2, []string{b64(f.h256)}, csc.OIDSHA256
		}), 400, "invalid_request", "numSignatures"},
		{"authorize hash without OID", "credentials/authorize", bearer, authz(func(m map[string]any) { m["hashes"] = []string{b64(f.h256)} }), 400, "invalid_request", "hashAlgorithmOID"},
		{"authorize hash length mismatch", "credentials/authorize", bearer, authz(func(m map[string]any) {
			m["hashes"], m["hashAlgorithmOID"] = []string{b64(f.h384)}, csc.OIDSHA256
		}), 400, "invalid_request", "bytes"},
		{"authorize SHA-1", "credentials/authorize", bearer, authz(func(m map[string]any) {
			m["hashes"], m["hashAlgorithmOID"] = []string{b64(f.h256[:20])}, csc.OIDSHA1
		}), 400, "invalid_request", "not supported"},
		{"authorize bad base64", "credentials/authorize", bearer, authz(func(m map[string]any) {
			m["hashes"], m["hashAlgorithmOID"] = []string{"***"}, csc.OIDSHA256
		}), 400, "invalid_request", "base64"},
		// signatures/signHash.
		{"sign missing hashes", "signatures/signHash", bearer, sign(func(m map[string]any) { delete(m, "hashes") }), 400, "invalid_request", "hashes"},
		{"sign empty hashes", "signatures/signHash", bearer, sign(func(m map[string]any) { m["hashes"] = []string{} }), 400, "invalid_request", "hashes"},
		{"sign too many hashes", "signatures/signHash", bearer, sign(func(m map[string]any) {
			m["hashes"] = []string{b64(f.h256), b64(f.h256), b64(f.h256), b64(f.h256), b64(f.h256)}
		}), 400, "invalid_request", "Too many"},
		{"sign missing SAD", "signatures/signHash", bearer, sign(func(m map[string]any) { delete(m, "SAD") }), 400, "invalid_request", "SAD"},
		{"sign unknown SAD", "signatures/signHash", bearer, sign(func(m map[string]any) { m["SAD"] = "forged" }), 400, "invalid_request", "SAD"},
		{"sign SAD of another credential", "signatures/signHash", bearer, sign(func(m map[string]any) {
			m["credentialID"], m["signAlgo"] = f.ec, csc.OIDECDSAWithSHA256
		}), 400, "invalid_request", "SAD"},
		{"sign SAD by another user", "signatures/signHash", "Bearer " + f.bobTok, sign(func(m map[string]any) {}), 400, "invalid_request", "credentialID"},
		{"sign missing signAlgo", "signatures/signHash", bearer, sign(func(m map[string]any) { delete(m, "signAlgo") }), 400, "invalid_request", "signAlgo"},
		{"sign unknown signAlgo", "signatures/signHash", bearer, sign(func(m map[string]any) { m["signAlgo"] = "1.2.3.4" }), 400, "invalid_request", "signAlgo"},
		{"sign EC algo on RSA key", "signatures/signHash", bearer, sign(func(m map[string]any) { m["signAlgo"] = csc.OIDECDSAWithSHA256 }), 400, "invalid_request", "signAlgo"},
		{"sign generic RSA without hash OID", "signatures/signHash", bearer, sign(func(m map[string]any) { delete(m, "hashAlgorithmOID") }), 400, "invalid_request", "hashAlgorithmOID"},
		{"sign unknown hash OID", "signatures/signHash", bearer, sign(func(m map[string]any) { m["hashAlgorithmOID"] = "1.2.3" }), 400, "invalid_request", "hashAlgorithmOID"},
		{"sign hash OID contradicts signAlgo", "signatures/signHash", bearer, sign(func(m map[string]any) {
			m["signAlgo"], m["hashAlgorithmOID"] = csc.OIDSHA512WithRSA, csc.OIDSHA256
		}), 400, "invalid_request", "match"},
		{"sign hash length mismatch", "signatures/signHash", bearer, sign(func(m map[string]any) { m["hashes"] = []string{b64(f.h512)} }), 400, "invalid_request", "bytes"},
		{"sign bad PSS params", "signatures/signHash", bearer, sign(func(m map[string]any) {
			m["signAlgo"], m["signAlgoParams"] = csc.OIDRSAPSS, b64([]byte{4, 1, 0})
		}), 400, "invalid_request", "signAlgoParams"},
		{"sign bad base64 hash", "signatures/signHash", bearer, sign(func(m map[string]any) { m["hashes"] = []string{"a+b_"} }), 400, "invalid_request", "base64"},
		{"sign async with response_uri", "signatures/signHash", bearer, sign(func(m map[string]any) {
			m["operationMode"], m["response_uri"] = "A", "https://example.invalid/cb"
		}), 400, "invalid_request", "response_uri"},
		{"sign async validity too long", "signatures/signHash", bearer, sign(func(m map[string]any) {
			m["operationMode"], m["validity_period"] = "A", 1<<40
		}), 400, "invalid_request", "validity_period"},
		{"sign validity_period in mode S", "signatures/signHash", bearer, sign(func(m map[string]any) { m["validity_period"] = 1000 }), 400, "invalid_request", "validity_period"},
		{"sign bad operationMode", "signatures/signHash", bearer, sign(func(m map[string]any) { m["operationMode"] = "Z" }), 400, "invalid_request", "operationMode"},
		{"sign SCAL2 other hash", "signatures/signHash", bearer, sign(func(m map[string]any) {
			m["credentialID"], m["SAD"], m["signAlgo"], m["hashes"] = f.scal2, f.sad2, csc.OIDECDSAWithSHA256, []string{b64(digest(crypto.SHA256, "other"))}
		}), 400, "invalid_request", "not authorized"},
		{"sign SCAL2 other hash algorithm", "signatures/signHash", bearer, sign(func(m map[string]any) {
			m["credentialID"], m["SAD"], m["signAlgo"], m["hashes"], m["hashAlgorithmOID"] = f.scal2, f.sad2, csc.OIDECDSAWithSHA384, []string{b64(f.h384)}, csc.OIDSHA384
		}), 400, "invalid_request", "authorized"},
		{"sign SCAL2 two hashes for one", "signatures/signHash", bearer, sign(func(m map[string]any) {
			m["credentialID"], m["SAD"], m["signAlgo"], m["hashes"] = f.scal2, f.sad2, csc.OIDECDSAWithSHA256, []string{b64(f.h256), b64(f.h256)}
		}), 400, "invalid_request", ""},
		{"sign more than the SAD allows", "signatures/signHash", bearer, sign(func(m map[string]any) {
			m["hashes"] = []string{b64(f.h256), b64(f.h256), b64(f.h256), b64(f.h256)}
			m["SAD"] = f.authorize(t, f.rsa, 3, nil)
		}), 400, "invalid_request", "allows"},
		// extendTransaction and timestamp.
		{"extend unknown SAD", "credentials/extendTransaction", bearer, `{"credentialID":"` + f.rsa + `","SAD":"x"}`, 400, "invalid_request", "SAD"},
		{"extend missing SAD", "credentials/extendTransaction", bearer, `{"credentialID":"` + f.rsa + `"}`, 400, "invalid_request", "SAD"},
		{"timestamp missing hash", "signatures/timestamp", bearer, `{"hashAlgo":"` + csc.OIDSHA256 + `"}`, 400, "invalid_request", "hash"},
		{"timestamp length mismatch", "signatures/timestamp", bearer, `{"hash":"` + b64(f.h384) + `","hashAlgo":"` + csc.OIDSHA256 + `"}`, 400, "invalid_request", "bytes"},
		{"timestamp bad nonce", "signatures/timestamp", bearer, `{"hash":"` + b64(f.h256) + `","hashAlgo":"` + csc.OIDSHA256 + `","nonce":"xyz"}`, 400, "invalid_request", "nonce"},
		{"timestamp no token", "signatures/timestamp", "", `{}`, 401, "invalid_token", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.srv.Do(t, tc.method, tc.auth, []byte(tc.body))
			e := r.Error()
			if r.Status != tc.status || e.Code != tc.code {
				t.Fatalf("got %d %s, want %d %s: %s", r.Status, e.Code, tc.status, tc.code, r.Body)
			}
			if !strings.Contains(e.Description, tc.desc) {
				t.Fatalf("description %q does not mention %q", e.Description, tc.desc)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("content type %q", ct)
			}
			if bytes.Contains(r.Body, []byte("goroutine")) || bytes.Contains(r.Body, []byte(pin)) {
				t.Fatalf("body leaks internals: %s", r.Body)
			}
		})
	}
	// Nothing above consumed anything: both SADs still sign.
	rssptest.Must(t, f.srv.Call(t, "signatures/signHash", f.tok, csc.SignHashRequest{CredentialID: f.rsa, SAD: f.sad,
		Hashes: []csc.Bytes{f.h256}, HashAlgorithmOID: csc.OIDSHA256, SignAlgo: csc.OIDRSA}))
	rssptest.Must(t, f.srv.Call(t, "signatures/signHash", f.tok, csc.SignHashRequest{CredentialID: f.scal2, SAD: f.sad2,
		Hashes: []csc.Bytes{f.h256}, SignAlgo: csc.OIDECDSAWithSHA256}))
	// And SCAL2's SAD is single-use.
	r := f.srv.Call(t, "signatures/signHash", f.tok, csc.SignHashRequest{CredentialID: f.scal2, SAD: f.sad2,
		Hashes: []csc.Bytes{f.h256}, SignAlgo: csc.OIDECDSAWithSHA256})
	if r.Status != 400 || r.Error().Code != "invalid_request" {
		t.Fatalf("SAD replay: %d %s", r.Status, r.Body)
	}
	// Logs never carry a token, a PIN or a SAD.
	logs := f.srv.Logs.String()
	for _, s := range []string{f.tok, f.bobTok, f.sad, f.sad2, pin, password} {
		if strings.Contains(logs, s) {
			t.Fatalf("a secret is in the server log")
		}
	}
}

// TestBase64Alphabets: hashes are accepted in both alphabets, padded or not.
func TestBase64Alphabets(t *testing.T) {
	f := newFixture(t)
	// Find a digest whose base64 has + or / so the alphabets differ.
	var d []byte
	for i := 0; ; i++ {
		d = digest(crypto.SHA256, fmt.Sprint(i))
		if s := b64(d); strings.ContainsAny(s, "+/") {
			break
		}
	}
	sad := f.authorize(t, f.ec, 4, nil)
	for _, enc := range []string{b64(d), strings.TrimRight(b64(d), "="), b64url(d), b64url(d) + "="} {
		body := fmt.Sprintf(`{"credentialID":%q,"SAD":%q,"hashes":[%q],"signAlgo":%q}`, f.ec, sad, enc, csc.OIDECDSAWithSHA256)
		rssptest.Must(t, f.srv.Do(t, "signatures/signHash", "Bearer "+f.tok, []byte(body)))
	}
}

// TestPINLock: wrong PINs count down and lock; a locked credential neither
// authorizes nor signs, even with a SAD issued before; unlock restores it.
func TestPINLock(t *testing.T) {
	f := newFixture(t)
	earlier := f.authorize(t, f.ec, 1, nil)
	try := func(p string) rssptest.Response {
		return f.srv.Call(t, "credentials/authorize", f.tok, map[string]any{"credentialID": f.ec, "numSignatures": 1,
			"authData": []map[string]string{{"id": "PIN", "value": p}}})
	}
	for i := 1; i <= 4; i++ {
		r := try("000000")
		if r.Status != 400 || r.Error().Code != "invalid_pin" || !strings.Contains(r.Error().Description, fmt.Sprintf("%d attempts left", 5-i)) {
			t.Fatalf("try %d: %d %s", i, r.Status, r.Body)
		}
	}
	// A good PIN resets the count.
	f.authorize(t, f.ec, 1, nil)
	for i := 1; i <= 5; i++ {
		r := try("000000")
		want := "invalid_pin"
		if i == 5 {
			want = "credential_locked"
		}
		if r.Error().Code != want {
			t.Fatalf("try %d: %s", i, r.Body)
		}
	}
	if r := try(pin); r.Error().Code != "credential_locked" {
		t.Fatalf("correct PIN on a locked credential: %s", r.Body)
	}
	r := f.srv.Call(t, "signatures/signHash", f.tok, csc.SignHashRequest{CredentialID: f.ec, SAD: earlier, Hashes: []csc.Bytes{f.h256}, SignAlgo: csc.OIDECDSAWithSHA256})
	if r.Error().Code != "credential_locked" {
		t.Fatalf("sign with a locked credential: %s", r.Body)
	}
	// Parallel guesses cannot overtake the counter.
	if err := f.srv.App.Service.Unlock(t.Context(), f.ec); err != nil {
		t.Fatal(err)
	}
	results := make(chan string, 20)
	for range 20 {
		go func() { results <- try("999999").Error().Code }()
	}
	wrong := 0
	for range 20 {
		if <-results == "invalid_pin" {
			wrong++
		}
	}
	if wrong != 4 {
		t.Fatalf("%d parallel guesses were checked, want 4 before the lock", wrong)
	}
	if err := f.srv.App.Service.Unlock(t.Context(), f.ec); err != nil {
		t.Fatal(err)
	}
	rssptest.Must(t, f.srv.Call(t, "signatures/signHash", f.tok, csc.SignHashRequest{CredentialID: f.ec, SAD: f.authorize(t, f.ec, 1, nil),
		Hashes: []csc.Bytes{f.h256}, SignAlgo: csc.OIDECDSAWithSHA256}))
}

// TestExtendTransaction replaces a SAD; the old one stops working.
func TestExtendTransaction(t *testing.T) {
	f := newFixture(t)
	var ar csc.AuthorizeResponse
	rssptest.Must(t, f.srv.Call(t, "credentials/extendTransaction", f.tok, map[string]any{"credentialID": f.rsa, "SAD": f.sad})).Decode(t, &ar)
	if ar.SAD == "" || ar.SAD == f.sad || ar.ExpiresIn <= 0 {
		t.Fatalf("extend: %+v", ar)
	}
	sign := func(sad string) rssptest.Response {
		return f.srv.Call(t, "signatures/signHash", f.tok, csc.SignHashRequest{CredentialID: f.rsa, SAD: sad, Hashes: []csc.Bytes{f.h256, f.h256},
			HashAlgorithmOID: csc.OIDSHA256, SignAlgo: csc.OIDRSA})
	}
	if r := sign(f.sad); r.Status != 400 {
		t.Fatalf("old SAD still works: %s", r.Body)
	}
	rssptest.Must(t, sign(ar.SAD))
	// SCAL2: the binding carries over and must be restated.
	r := f.srv.Call(t, "credentials/extendTransaction", f.tok, map[string]any{"credentialID": f.scal2, "SAD": f.sad2,
		"hashes": []csc.Bytes{digest(crypto.SHA256, "other")}, "hashAlgorithmOID": csc.OIDSHA256})
	if r.Status != 400 {
		t.Fatalf("extend SCAL2 with other hash: %s", r.Body)
	}
	rssptest.Must(t, f.srv.Call(t, "credentials/extendTransaction", f.tok, map[string]any{"credentialID": f.scal2, "SAD": f.sad2,
		"hashes": []csc.Bytes{f.h256}, "hashAlgorithmOID": csc.OIDSHA256}))
}

// TestTokens: rememberMe, refresh rotation, replay of a rotated refresh
// token revoking the family, revoke, expiry.
func TestTokens(t *testing.T) {
	srv := rssptest.Start(t, rssptest.Options{Edit: func(c *config.Config) { c.Security.AccessTokenTTL.Duration = 1500 * time.Millisecond }})
	srv.AddUser(t, user, password)
	login := func(body string) csc.LoginResponse {
		var lr csc.LoginResponse
		rssptest.Must(t, srv.Do(t, "auth/login", "Basic "+b64([]byte(user+":"+password)), []byte(body))).Decode(t, &lr)
		return lr
	}
	if lr := login(`{}`); lr.RefreshToken != "" || lr.ExpiresIn != 1 {
		t.Fatalf("login without rememberMe: %+v", lr)
	}
	lr := login(`{"rememberMe":true}`)
	if lr.RefreshToken == "" {
		t.Fatal("rememberMe gave no refresh token")
	}
	var lr2 csc.LoginResponse
	rssptest.Must(t, srv.Do(t, "auth/login", "", []byte(`{"refresh_token":"`+lr.RefreshToken+`"}`))).Decode(t, &lr2)
	if lr2.AccessToken == "" || lr2.RefreshToken == "" || lr2.RefreshToken == lr.RefreshToken {
		t.Fatalf("refresh: %+v", lr2)
	}
	rssptest.Must(t, srv.Call(t, "credentials/list", lr2.AccessToken, map[string]any{}))
	// Replaying the rotated refresh token revokes the whole login.
	if r := srv.Do(t, "auth/login", "", []byte(`{"refresh_token":"`+lr.RefreshToken+`"}`)); r.Status != 401 {
		t.Fatalf("replayed refresh token: %s", r.Body)
	}
	if r := srv.Call(t, "credentials/list", lr2.AccessToken, map[string]any{}); r.Status != 401 || r.Error().Code != "expired_token" {
		t.Fatalf("family not revoked: %d %s", r.Status, r.Body)
	}
	// auth/revoke of an access token.
	tok := srv.Login(t, user, password)
	if r := srv.Call(t, "auth/revoke", tok, map[string]any{"token": tok, "token_type_hint": "access_token"}); r.Status != 204 {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	if r := srv.Call(t, "credentials/list", tok, map[string]any{}); r.Error().Code != "expired_token" {
		t.Fatalf("revoked token works: %s", r.Body)
	}
	// Expiry.
	tok = srv.Login(t, user, password)
	time.Sleep(1600 * time.Millisecond)
	if r := srv.Call(t, "credentials/list", tok, map[string]any{}); r.Status != 401 || r.Error().Code != "expired_token" {
		t.Fatalf("expired token: %d %s", r.Status, r.Body)
	}
}
