package authserver_test

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/authserver"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/service/servicetest"
	"github.com/csctoken/csctoken/rssp/store"
)

const (
	password = "correct horse battery"
	pin      = "123456"

	desktopRedirect = "http://127.0.0.1/callback"
	portalRedirect  = "https://portal.example/cb"
)

// fixture is an authorization server over a service with alice, her
// SCAL 2 oauth2code credential (PIN, multisign 5) and two clients: public
// "desktop" and confidential "portal", which acts for alice.
type fixture struct {
	*servicetest.Env
	as           *authserver.Server
	alice        store.User
	bob          store.User
	scal2        string
	desktop      store.OAuthClient
	portal       store.OAuthClient
	portalSecret string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	e := servicetest.New(t, nil)
	f := &fixture{Env: e, as: authserver.New(e.Service, e.Store, service.OAuthOptions{})}
	f.alice = e.AddUser(t, "alice", password)
	f.bob = e.AddUser(t, "bob", password)
	c, _ := e.AddCredential(t, service.CredentialSpec{User: "alice", KeyType: keystore.ECP256, PIN: pin, SCAL: 2,
		Multisign: 5, AuthMode: csc.AuthModeOAuth2Code})
	f.scal2 = c.ID
	var err error
	if f.desktop, _, err = e.Service.AddOAuthClient(t.Context(), service.ClientSpec{ID: "desktop",
		RedirectURIs: []string{desktopRedirect}, Public: true}); err != nil {
		t.Fatal(err)
	}
	if f.portal, f.portalSecret, err = e.Service.AddOAuthClient(t.Context(), service.ClientSpec{ID: "portal",
		RedirectURIs: []string{portalRedirect}, User: "alice"}); err != nil {
		t.Fatal(err)
	}
	return f
}

// request is an authorization request of the desktop client with a fresh
// PKCE pair; scope credential when hashes are given.
func request(hashes ...[]byte) (authserver.AuthRequest, string) {
	v := oauth2.GenerateVerifier()
	r := authserver.AuthRequest{ClientID: "desktop", ResponseType: "code", RedirectURI: desktopRedirect, State: "s",
		CodeChallenge: oauth2.S256ChallengeFromVerifier(v), CodeChallengeMethod: "S256", Scope: service.ScopeService}
	if len(hashes) > 0 {
		r.Scope, r.Hashes, r.NumSignatures, r.HashAlgorithm = service.ScopeCredential, hashes, len(hashes), csc.OIDSHA256
	}
	return r, v
}

func (f *fixture) credentialRequest(hashes ...[]byte) (authserver.AuthRequest, string) {
	r, v := request(hashes...)
	r.Scope, r.CredentialID = service.ScopeCredential, f.scal2
	return r, v
}

// code runs the browser part: start, consent as alice with factors.
func (f *fixture) code(t *testing.T, r authserver.AuthRequest, factors ...csc.AuthData) string {
	t.Helper()
	a, err := f.as.StartAuthorization(t.Context(), r, "")
	if err != nil {
		t.Fatalf("StartAuthorization: %v", err)
	}
	code, _, err := f.as.Approve(t.Context(), f.alice.ID, a.Handle, factors)
	if err != nil {
		t.Fatalf("Approve: %v", err)
	}
	return code
}

var pinFactor = csc.AuthData{ID: service.FactorPIN, Value: pin}

// tokens runs the whole flow for the desktop client.
func (f *fixture) tokens(t *testing.T, r authserver.AuthRequest, verifier string, factors ...csc.AuthData) authserver.Tokens {
	t.Helper()
	tok, err := f.as.ExchangeCode(t.Context(), f.desktop, f.code(t, r, factors...), desktopRedirect, verifier)
	if err != nil {
		t.Fatalf("ExchangeCode: %v", err)
	}
	return tok
}

// signWith signs hashes with a credential token as its own SAD.
func (f *fixture) signWith(t *testing.T, token string, hashes ...[]byte) error {
	t.Helper()
	p, err := f.Service.AuthenticateMethod(t.Context(), token, "signatures/signHash")
	if err != nil {
		return err
	}
	_, err = f.Service.SignHash(t.Context(), p, service.SignRequest{CredentialID: f.scal2, Hashes: hashes,
		HashAlgorithm: csc.OIDSHA256, SignAlgo: csc.OIDECDSAWithSHA256})
	return err
}

func digest(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// want fails unless err matches kind and says desc (kind nil: no error).
func want(t *testing.T, err, kind error, desc string) {
	t.Helper()
	switch {
	case kind == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case kind != nil && !errors.Is(err, kind):
		t.Fatalf("error %v, want kind %v", err, kind)
	case err != nil && !strings.Contains(err.Error(), desc):
		t.Errorf("error %q does not say %q", err, desc)
	}
}

func tokenHash(v string) []byte { return secret.TokenHash(v) }
