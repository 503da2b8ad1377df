package server_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/config"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
)

// TestExternalIssuer: an rssp behind an external authorization server (a
// fake one here: metadata and keys; ORY Hydra in tests/hydra) advertises
// it, serves none of its own OAuth2 endpoints, and takes the JWT access
// tokens of that server for the user of their subject, refusing the
// others with invalid_token.
func TestExternalIssuer(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var issuer string
	m := http.NewServeMux()
	m.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "jwks_uri": issuer + "/keys"})
	})
	m.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	is := httptest.NewServer(m)
	defer is.Close()
	issuer = is.URL
	const aud = "https://rssp.test"
	srv := rssptest.Start(t, rssptest.Options{Edit: func(c *config.Config) {
		c.OAuth2 = config.OAuth2{Issuer: issuer, Audience: aud}
	}})
	srv.AddUser(t, "alice", "a long password")
	if err := srv.App.Service.SetExternalSubject(t.Context(), "alice", "alice@idp"); err != nil {
		t.Fatal(err)
	}
	cred, _ := srv.AddCredential(t, service.CredentialSpec{User: "alice", KeyType: keystore.ECP256, PIN: "123456"})

	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	token := func(edit func(map[string]any)) string {
		cl := map[string]any{"iss": issuer, "sub": "alice@idp", "aud": aud, "exp": now.Add(time.Hour).Unix(),
			"iat": now.Unix(), "scope": "service", "client_id": "csctoken"}
		if edit != nil {
			edit(cl)
		}
		s, err := jwt.Signed(signer).Claims(cl).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	var info csc.InfoResponse
	rssptest.Must(t, srv.Call(t, "info", "", map[string]any{})).Decode(t, &info)
	if info.OAuth2Issuer != issuer || info.OAuth2 != "" || strings.Contains(strings.Join(info.Methods, " "), "oauth2/") {
		t.Fatalf("info: oauth2Issuer %q, oauth2 %q, methods %v", info.OAuth2Issuer, info.OAuth2, info.Methods)
	}
	resp, err := srv.Client.Get(strings.TrimSuffix(srv.URL, "/csc/v2") + "/oauth2/authorize?client_id=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("own oauth2/authorize: %s", resp.Status)
	}

	good := token(nil)
	var list csc.CredentialsListResponse
	rssptest.Must(t, srv.Call(t, "credentials/list", good, map[string]any{})).Decode(t, &list)
	if len(list.CredentialIDs) != 1 || list.CredentialIDs[0] != cred {
		t.Fatalf("list: %v", list.CredentialIDs)
	}
	h := sha256Digest("a document")
	tests := []struct {
		name, token, code string
	}{
		{"fail another issuer", token(func(c map[string]any) { c["iss"] = "https://other.example" }), "invalid_token"},
		{"fail wrong audience", token(func(c map[string]any) { c["aud"] = "https://other.example" }), "invalid_token"},
		{"fail expired", token(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }), "expired_token"},
		{"fail alg none", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + strings.Split(good, ".")[1] + ".", "invalid_token"},
		{"fail tampered", good[:len(good)-4] + "AAAA", "invalid_token"},
		{"fail unknown subject", token(func(c map[string]any) { c["sub"] = "mallory@idp" }), "access_denied"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := srv.Call(t, "credentials/list", tc.token, map[string]any{})
			if r.Error().Code != tc.code {
				t.Fatalf("answer %d %s, want %s", r.Status, r.Body, tc.code)
			}
		})
	}
	t.Run("credential token bound to its hash", func(t *testing.T) {
		ct := token(func(c map[string]any) {
			c["scope"] = "credential"
			c["authorization_details"] = []map[string]any{{"type": "credential", "credentialID": cred, "numSignatures": 1,
				"hashAlgorithmOID": csc.OIDSHA256, "documentDigests": []map[string]string{{"hash": base64.StdEncoding.EncodeToString(h)}}}}
		})
		other := srv.Call(t, "signatures/signHash", ct, csc.SignHashRequest{CredentialID: cred,
			Hashes: []csc.Bytes{sha256Digest("another document")}, HashAlgorithmOID: csc.OIDSHA256, SignAlgo: csc.OIDECDSAWithSHA256})
		if other.Error().Code != "invalid_request" {
			t.Fatalf("other hash: %d %s", other.Status, other.Body)
		}
		rssptest.Must(t, srv.Call(t, "signatures/signHash", ct, csc.SignHashRequest{CredentialID: cred,
			Hashes: []csc.Bytes{h}, HashAlgorithmOID: csc.OIDSHA256, SignAlgo: csc.OIDECDSAWithSHA256}))
		again := srv.Call(t, "signatures/signHash", ct, csc.SignHashRequest{CredentialID: cred,
			Hashes: []csc.Bytes{h}, HashAlgorithmOID: csc.OIDSHA256, SignAlgo: csc.OIDECDSAWithSHA256})
		if again.Error().Code != "invalid_request" {
			t.Fatalf("second use: %d %s", again.Status, again.Body)
		}
	})
}

func sha256Digest(s string) []byte {
	h := crypto.SHA256.New()
	h.Write([]byte(s))
	return h.Sum(nil)
}
