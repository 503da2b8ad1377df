package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
)

// The fuzz targets of the server's handlers (make fuzz): every JSON method
// of CSC v2 and v1 and the OAuth2 form endpoints, called in process with a
// valid access token, a hostile body must get an answer that is not a 500
// and, for an error, a JSON error body; never a panic. Findings stay in
// testdata/fuzz as seeds.

// fuzzServer starts a server with alice, a credential, and her token.
func fuzzServer(f *testing.F) (*rssptest.Server, string, string) {
	srv := rssptest.Start(f, rssptest.Options{})
	srv.AddUser(f, user, password)
	id, _ := srv.AddCredential(f, service.CredentialSpec{User: user, KeyType: keystore.ECP256, PIN: pin, Multisign: 5})
	return srv, srv.Login(f, user, password), id
}

// serve runs one request through the handler and checks the answer.
func serve(t *testing.T, h http.Handler, req *http.Request) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code >= 500 && w.Code != http.StatusNotImplemented && w.Code != http.StatusServiceUnavailable {
		t.Fatalf("%s %s: %d %s", req.Method, req.URL.Path, w.Code, w.Body)
	}
	if w.Code >= 400 && strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		var e struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
			t.Fatalf("%s %s: %d with a body that is no error: %q", req.Method, req.URL.Path, w.Code, w.Body)
		}
	}
}

var (
	v2Methods = []string{"info", "auth/login", "auth/revoke", "credentials/list", "credentials/info",
		"credentials/authorize", "credentials/extendTransaction", "signatures/signHash", "signatures/timestamp"}
	v1Methods = []string{"info", "auth/login", "auth/revoke", "credentials/list", "credentials/info",
		"credentials/authorize", "credentials/extendTransaction", "signatures/signHash", "signatures/timestamp"}
)

func fuzzAPI(f *testing.F, prefix string, methods []string, seeds []string) {
	srv, tok, id := fuzzServer(f)
	for i := range methods {
		for _, s := range seeds {
			f.Add(uint8(i), strings.ReplaceAll(s, "CRED", id))
		}
	}
	f.Fuzz(func(t *testing.T, m uint8, body string) {
		method := methods[int(m)%len(methods)]
		req := httptest.NewRequest(http.MethodPost, prefix+method, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if method == "auth/login" {
			req.SetBasicAuth(user, body)
		} else {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		serve(t, srv.App.Handler, req)
	})
}

func FuzzV2Handlers(f *testing.F) {
	fuzzAPI(f, "/csc/v2/", v2Methods, []string{
		`{}`, `{"credentialID":"CRED"}`, `{"credentialID":"CRED","certificates":"chain","certInfo":true,"authInfo":true}`,
		`{"credentialID":"CRED","numSignatures":1,"authData":[{"id":"PIN","value":"123456"}]}`,
		`{"credentialID":"CRED","SAD":"x","hashes":["q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="],"hashAlgorithmOID":"2.16.840.1.101.3.4.2.1","signAlgo":"1.2.840.10045.4.3.2"}`,
		`{"hash":"q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=","hashAlgo":"2.16.840.1.101.3.4.2.1"}`,
		`{"token":"abc","token_type_hint":"refresh_token"}`, `{"maxResults":-1}`, `[]`, `null`, `{"a":`,
	})
}

func FuzzV1Handlers(f *testing.F) {
	fuzzAPI(f, "/csc/v1/", v1Methods, []string{
		`{}`, `{"credentialID":"CRED"}`, `{"credentialID":"CRED","certificates":"chain","certInfo":true,"authInfo":true}`,
		`{"credentialID":"CRED","numSignatures":1,"PIN":"123456"}`,
		`{"credentialID":"CRED","SAD":"x","hash":["q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="],"hashAlgo":"2.16.840.1.101.3.4.2.1","signAlgo":"1.2.840.10045.4.3.2"}`,
		`{"maxResults":0,"pageToken":"zz"}`, `[]`, `null`,
	})
}

// FuzzOAuthForms: the authorization server's form endpoints (token, PAR,
// revoke) and the authorization endpoint's query.
func FuzzOAuthForms(f *testing.F) {
	srv, _, _ := fuzzServer(f)
	endpoints := []string{"token", "pushed_authorize", "revoke", "authorize"}
	for i := range endpoints {
		for _, s := range []string{"", "grant_type=authorization_code&code=x&code_verifier=y&client_id=desktop",
			"grant_type=refresh_token&refresh_token=x&client_id=desktop",
			"grant_type=client_credentials&client_id=portal&client_secret=s",
			"response_type=code&client_id=desktop&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&code_challenge=abc&code_challenge_method=S256&scope=service",
			"token=x&token_type_hint=refresh_token", "client_id=%ff%fe&a=b&a=c", "authorization_details=%5B%7B%7D%5D"} {
			f.Add(uint8(i), s)
		}
	}
	f.Fuzz(func(t *testing.T, e uint8, form string) {
		ep := endpoints[int(e)%len(endpoints)]
		var req *http.Request
		if ep == "authorize" {
			req = httptest.NewRequest(http.MethodGet, "/oauth2/authorize", nil)
			req.URL.RawQuery = form
		} else {
			req = httptest.NewRequest(http.MethodPost, "/oauth2/"+ep, strings.NewReader(form))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		serve(t, srv.App.Handler, req)
	})
}
