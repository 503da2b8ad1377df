package oauth_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/csctoken/csctoken/csc"
)

// TestRevokeAndRefreshBoundaries: a credential token revoked through the
// CSC auth/revoke no longer works, neither as Bearer nor as SAD; an OAuth2
// client's refresh token is refused by auth/login (it belongs at
// oauth2/token, where the client is authenticated).
func TestRevokeAndRefreshBoundaries(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	h1 := digest("revoked doc")
	code, verifier := e.codeFor(t, b, url.Values{"scope": {"credential"}, "credentialID": {e.scal2},
		"numSignatures": {"1"}, "hashes": {b64url(h1)}, "hashAlgorithmOID": {csc.OIDSHA256}}, url.Values{"pin": {pin}})
	tok := e.exchange(t, code, verifier)
	if tok.status != 200 {
		t.Fatalf("token: %+v", tok)
	}
	service := e.srv.Login(t, user, password)
	if r := e.srv.Call(t, "auth/revoke", service, map[string]any{"token": tok.Access}); r.Status != 204 {
		t.Fatalf("auth/revoke: %d %s", r.Status, r.Body)
	}
	if r := e.signHash(t, service, tok.Access, e.scal2, h1); r.Status != 400 {
		t.Fatalf("revoked credential token still works as SAD: %d %s", r.Status, r.Body)
	}
	if r := e.signHash(t, tok.Access, "", e.scal2, h1); r.Status != 401 {
		t.Fatalf("revoked credential token still works as Bearer: %d %s", r.Status, r.Body)
	}

	code, verifier = e.codeFor(t, b, url.Values{"scope": {"service"}}, nil)
	st := e.exchange(t, code, verifier)
	if st.Refresh == "" {
		t.Fatalf("no refresh token: %+v", st)
	}
	r := e.srv.Do(t, "auth/login", "", []byte(`{"refresh_token":"`+st.Refresh+`"}`))
	if r.Status != 401 || !strings.Contains(r.Error().Description, "oauth2/token") {
		t.Fatalf("OAuth refresh token at auth/login: %d %s", r.Status, r.Body)
	}
}
