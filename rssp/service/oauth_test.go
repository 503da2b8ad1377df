package service_test

import (
	"strings"
	"testing"

	"github.com/csctoken/csctoken/rssp/service"
)

// TestAddOAuthClient: the registration rules (RFC 6749 §3.1.2, RFC 8252
// §7): redirect URIs absolute without fragment, http only on loopback,
// private-use schemes as reverse domain names; a confidential client's
// secret is stored hashed and shown once.
func TestAddOAuthClient(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		spec service.ClientSpec
		desc string // "" for success
	}{
		{"ok public loopback", service.ClientSpec{ID: "a", Public: true, RedirectURIs: []string{"http://127.0.0.1/cb", "http://[::1]/cb", "http://localhost/cb"}}, ""},
		{"ok private-use scheme", service.ClientSpec{ID: "b", Public: true, RedirectURIs: []string{"com.example.app:/cb"}}, ""},
		{"ok confidential with its secret", service.ClientSpec{ID: "c", RedirectURIs: []string{"https://x.example/cb"}, Secret: "0123456789abcdef"}, ""},
		{"ok client_credentials only", service.ClientSpec{ID: "d", User: "alice"}, ""},
		{"fail http on a public host", service.ClientSpec{ID: "e", Public: true, RedirectURIs: []string{"http://x.example/cb"}}, "loopback"},
		{"fail fragment", service.ClientSpec{ID: "e", Public: true, RedirectURIs: []string{"https://x.example/cb#f"}}, "fragment"},
		{"fail relative", service.ClientSpec{ID: "e", Public: true, RedirectURIs: []string{"/cb"}}, "absolute"},
		{"fail user info", service.ClientSpec{ID: "e", Public: true, RedirectURIs: []string{"https://u:p@x.example/cb"}}, "user information"},
		{"fail scheme without a dot", service.ClientSpec{ID: "e", Public: true, RedirectURIs: []string{"myapp:/cb"}}, "reverse domain"},
		{"fail no redirect URI", service.ClientSpec{ID: "e", Public: true}, "at least one redirect URI"},
		{"fail public with a secret", service.ClientSpec{ID: "e", Public: true, Secret: "0123456789abcdef", RedirectURIs: []string{"https://x.example/cb"}}, "no secret"},
		{"fail public acting for a user", service.ClientSpec{ID: "e", Public: true, User: "alice", RedirectURIs: []string{"https://x.example/cb"}}, "only a confidential client"},
		{"fail short secret", service.ClientSpec{ID: "e", Secret: "short", RedirectURIs: []string{"https://x.example/cb"}}, "16 characters"},
		{"fail unknown user", service.ClientSpec{ID: "e", User: "mallory"}, "no user"},
		{"fail bad ID", service.ClientSpec{ID: "a b", Public: true, RedirectURIs: []string{"https://x.example/cb"}}, "invalid client ID"},
		{"fail taken ID", service.ClientSpec{ID: "a", Public: true, RedirectURIs: []string{"https://x.example/cb"}}, "already exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, secret, err := f.Service.AddOAuthClient(t.Context(), tc.spec)
			if tc.desc != "" {
				wantKind(t, err, service.ErrInvalidRequest)
				if !strings.Contains(err.Error(), tc.desc) {
					t.Errorf("error %q does not say %q", err, tc.desc)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.spec.Public != (secret == "") || c.Public() != tc.spec.Public {
				t.Errorf("public %v: secret %q, stored public %v", tc.spec.Public, secret, c.Public())
			}
			if tc.spec.Secret != "" && secret != tc.spec.Secret {
				t.Errorf("secret %q, want the one given", secret)
			}
			stored, err := f.Store.OAuthClient(t.Context(), c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if secret != "" && strings.Contains(stored.SecretHash, secret) {
				t.Error("the secret is stored in clear")
			}
		})
	}
}

// TestRedirectMatches: exact, except a loopback http URI on any port
// (RFC 8252 §7.3).
func TestRedirectMatches(t *testing.T) {
	for _, tc := range []struct {
		registered, requested string
		ok                    bool
	}{
		{"https://x.example/cb", "https://x.example/cb", true},
		{"https://x.example/cb", "https://x.example:443/cb", false},
		{"https://x.example/cb", "https://x.example/cb?a=1", false},
		{"http://127.0.0.1/cb", "http://127.0.0.1:8080/cb", true},
		{"http://127.0.0.1/cb", "http://127.0.0.1:8080/cb2", false},
		{"http://127.0.0.1/cb", "http://127.0.0.1:8080/cb#x", false},
		{"http://127.0.0.1/cb", "http://127.0.0.1:0/cb", false},
		{"http://127.0.0.1/cb", "http://127.0.0.1:65536/cb", false},
		{"http://127.0.0.1/cb", "http://127.0.0.1:080/cb", false},
		{"http://127.0.0.1/cb", "http://u@127.0.0.1:8080/cb", false},
		{"http://127.0.0.1/cb", "http://[::1]:8080/cb", false},
		{"http://[::1]/cb", "http://[::1]:8080/cb", true},
		{"http://localhost/cb", "http://localhost:8080/cb", false},
		{"http://127.0.0.1/cb?a=1", "http://127.0.0.1:9/cb?a=1", true},
		{"http://127.0.0.1/cb?a=1", "http://127.0.0.1:9/cb?a=2", false},
	} {
		if got := service.RedirectMatches(tc.registered, tc.requested); got != tc.ok {
			t.Errorf("RedirectMatches(%q, %q) = %v", tc.registered, tc.requested, got)
		}
	}
}

// TestCredentialToken: a credential-scope token is bound to its credential
// and signs as its own SAD only.
func TestCredentialToken(t *testing.T) {
	f := newFixture(t)
	id, _ := f.credential(t, nil)
	other, _ := f.credential(t, nil)
	const value = "credential-token-value-0123456789abcdef"
	ttl, err := f.Service.IssueCredentialToken(t.Context(), value, service.CredentialGrant{UserID: f.alice.UserID,
		ClientID: "", Family: "fam", CredentialID: id, NumSignatures: 2, HashAlgo: "", Hashes: nil})
	if err != nil || ttl != f.Options.SADTTL {
		t.Fatalf("ttl %v: %v", ttl, err)
	}
	p, err := f.Service.AuthenticateMethod(t.Context(), value, "signatures/signHash")
	if err != nil || p.CredentialID != id || p.Scope != service.ScopeCredential {
		t.Fatalf("principal %+v: %v", p, err)
	}
	_, err = f.sign(t.Context(), p, other, "", digest("x"))
	wantKind(t, err, service.ErrAccessDenied)
	sad := f.mustAuthorize(t, id, 1)
	_, err = f.sign(t.Context(), p, id, sad, digest("x"))
	wantKind(t, err, service.ErrAccessDenied)
	for i := range 2 {
		if _, err := f.sign(t.Context(), p, id, "", digest("x")); err != nil {
			t.Fatalf("signature %d: %v", i+1, err)
		}
	}
	_, err = f.sign(t.Context(), p, id, value, digest("x"))
	wantKind(t, err, service.ErrInvalidRequest)
	_, err = f.Service.AuthenticateMethod(t.Context(), value, "credentials/list")
	wantKind(t, err, service.ErrAccessDenied)
}
