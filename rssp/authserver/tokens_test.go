package authserver_test

import (
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/csctoken/csctoken/rssp/authserver"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
)

// TestPKCE: S256 is required at the request, and the code is exchanged
// only with the verifier of its challenge.
func TestPKCE(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		edit func(*authserver.AuthRequest)
		desc string
	}{
		{"fail no challenge", func(r *authserver.AuthRequest) { r.CodeChallenge = "" }, "PKCE"},
		{"fail plain", func(r *authserver.AuthRequest) { r.CodeChallengeMethod = "plain" }, "plain is not allowed"},
		{"fail no method", func(r *authserver.AuthRequest) { r.CodeChallengeMethod = "" }, "plain is not allowed"},
		{"fail unknown method", func(r *authserver.AuthRequest) { r.CodeChallengeMethod = "S512" }, "Unsupported"},
		{"fail short challenge", func(r *authserver.AuthRequest) { r.CodeChallenge = r.CodeChallenge[:42] }, "43 base64url"},
		{"fail challenge not base64url", func(r *authserver.AuthRequest) { r.CodeChallenge = r.CodeChallenge[:42] + "=" }, "43 base64url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := request()
			tc.edit(&r)
			a, err := f.as.StartAuthorization(t.Context(), r, "")
			want(t, err, service.ErrInvalidRequest, tc.desc)
			if a.RedirectURI != desktopRedirect {
				t.Errorf("the error goes to %q, not back to the client", a.RedirectURI)
			}
		})
	}
	for _, tc := range []struct {
		name     string
		verifier func(good string) string
		kind     error
		desc     string
	}{
		{"ok its verifier", func(v string) string { return v }, nil, ""},
		{"fail another verifier", func(string) string { return oauth2.GenerateVerifier() }, authserver.ErrInvalidGrant, "code_verifier does not match"},
		{"fail the challenge as verifier", func(v string) string { return oauth2.S256ChallengeFromVerifier(v) }, authserver.ErrInvalidGrant, "does not match"},
		{"fail no verifier", func(string) string { return "" }, service.ErrInvalidRequest, "Missing parameter code_verifier"},
		{"fail short verifier", func(v string) string { return v[:42] }, service.ErrInvalidRequest, "43 to 128"},
		{"fail verifier with a bad character", func(v string) string { return v[:42] + "+" }, service.ErrInvalidRequest, "43 to 128"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, v := request()
			_, err := f.as.ExchangeCode(t.Context(), f.desktop, f.code(t, r), desktopRedirect, tc.verifier(v))
			want(t, err, tc.kind, tc.desc)
		})
	}
}

// TestCodeSingleUse: a code is exchanged once, by its client, at its
// redirect URI, before it expires; any exchange spends it, and presenting
// it again revokes what the first exchange issued.
func TestCodeSingleUse(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name     string
		client   func() store.OAuthClient
		redirect string
		wait     time.Duration
		desc     string
	}{
		{"fail another client", func() store.OAuthClient { return f.portal }, desktopRedirect, 0, "another client"},
		{"fail another redirect URI", func() store.OAuthClient { return f.desktop }, "http://127.0.0.1/other", 0, "redirect_uri does not match"},
		{"fail expired", func() store.OAuthClient { return f.desktop }, desktopRedirect, f.as.Options().CodeTTL, "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, v := request()
			code := f.code(t, r)
			f.Clock.Advance(tc.wait)
			_, err := f.as.ExchangeCode(t.Context(), tc.client(), code, tc.redirect, v)
			want(t, err, authserver.ErrInvalidGrant, tc.desc)
			_, err = f.as.ExchangeCode(t.Context(), f.desktop, code, desktopRedirect, v)
			want(t, err, authserver.ErrInvalidGrant, "")
		})
	}
	t.Run("fail unknown code", func(t *testing.T) {
		_, err := f.as.ExchangeCode(t.Context(), f.desktop, "nope", desktopRedirect, oauth2.GenerateVerifier())
		want(t, err, authserver.ErrInvalidGrant, "Invalid authorization code")
	})
	t.Run("fail replay revokes the service tokens", func(t *testing.T) {
		r, v := request()
		code := f.code(t, r)
		tok, err := f.as.ExchangeCode(t.Context(), f.desktop, code, desktopRedirect, v)
		want(t, err, nil, "")
		if _, err := f.Service.Authenticate(t.Context(), tok.AccessToken); err != nil {
			t.Fatal(err)
		}
		_, err = f.as.ExchangeCode(t.Context(), f.desktop, code, desktopRedirect, v)
		want(t, err, authserver.ErrInvalidGrant, "already used")
		_, err = f.Service.Authenticate(t.Context(), tok.AccessToken)
		want(t, err, service.ErrExpiredToken, "revoked")
		_, err = f.as.Refresh(t.Context(), f.desktop, tok.RefreshToken, "")
		want(t, err, authserver.ErrInvalidGrant, "revoked")
	})
	t.Run("fail replay revokes the credential token and its SAD", func(t *testing.T) {
		r, v := f.credentialRequest(digest("a"), digest("b"))
		code := f.code(t, r, pinFactor)
		tok, err := f.as.ExchangeCode(t.Context(), f.desktop, code, desktopRedirect, v)
		want(t, err, nil, "")
		_, err = f.as.ExchangeCode(t.Context(), f.desktop, code, desktopRedirect, v)
		want(t, err, authserver.ErrInvalidGrant, "already used")
		if err := f.signWith(t, tok.AccessToken, digest("a")); err == nil {
			t.Error("the credential token signs after its code was replayed")
		}
		if _, err := f.Store.SAD(t.Context(), tokenHash(tok.AccessToken)); err == nil {
			t.Error("the credential token's SAD survived the replay")
		}
	})
	t.Run("ok concurrent exchanges: one wins", func(t *testing.T) {
		r, v := request()
		code := f.code(t, r)
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for range 6 {
			wg.Go(func() {
				if _, err := f.as.ExchangeCode(t.Context(), f.desktop, code, desktopRedirect, v); err == nil {
					mu.Lock()
					won++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if won != 1 {
			t.Errorf("%d exchanges of one code succeeded", won)
		}
	})
}

// TestRefreshRotation: an OAuth2 refresh token serves once and only its
// client; a spent one presented again revokes the family; scope service
// only.
func TestRefreshRotation(t *testing.T) {
	f := newFixture(t)
	r, v := request()
	first := f.tokens(t, r, v)
	second, err := f.as.Refresh(t.Context(), f.desktop, first.RefreshToken, "")
	want(t, err, nil, "")
	if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		t.Fatal("refresh did not rotate the refresh token")
	}
	steps := []struct {
		name   string
		do     func() error
		kind   error
		desc   string
		second bool // the successor still works
	}{
		{"fail another client", func() error {
			_, err := f.as.Refresh(t.Context(), f.portal, second.RefreshToken, "")
			return err
		}, authserver.ErrInvalidGrant, "another client", true},
		{"fail scope credential", func() error {
			_, err := f.as.Refresh(t.Context(), f.desktop, second.RefreshToken, "credential")
			return err
		}, authserver.ErrInvalidScope, "service only", true},
		{"fail at auth/login", func() error {
			_, err := f.Service.Refresh(t.Context(), second.RefreshToken)
			return err
		}, service.ErrInvalidToken, "oauth2/token", true},
		{"fail the spent token again", func() error {
			_, err := f.as.Refresh(t.Context(), f.desktop, first.RefreshToken, "")
			return err
		}, authserver.ErrInvalidGrant, "revoked", false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			want(t, s.do(), s.kind, s.desc)
			_, err := f.Service.Authenticate(t.Context(), second.AccessToken)
			if (err == nil) != s.second {
				t.Errorf("successor's access token: %v", err)
			}
		})
	}
	t.Run("fail expired", func(t *testing.T) {
		r, v := request()
		tok := f.tokens(t, r, v)
		f.Clock.Advance(f.Options.RefreshTokenTTL)
		_, err := f.as.Refresh(t.Context(), f.desktop, tok.RefreshToken, "")
		want(t, err, authserver.ErrInvalidGrant, "expired")
	})
	t.Run("fail a credential token has no refresh token", func(t *testing.T) {
		r, v := f.credentialRequest(digest("a"))
		if tok := f.tokens(t, r, v, pinFactor); tok.RefreshToken != "" {
			t.Error("a credential token came with a refresh token")
		}
	})
	t.Run("ok concurrent refreshes: one wins", func(t *testing.T) {
		r, v := request()
		tok := f.tokens(t, r, v)
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for range 6 {
			wg.Go(func() {
				if _, err := f.as.Refresh(t.Context(), f.desktop, tok.RefreshToken, ""); err == nil {
					mu.Lock()
					won++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if won != 1 {
			t.Errorf("%d refreshes of one token succeeded", won)
		}
	})
}

// TestClientCredentials: only a confidential client registered for a
// user, scope service only.
func TestClientCredentials(t *testing.T) {
	f := newFixture(t)
	tok, err := f.as.ClientCredentials(t.Context(), f.portal, "")
	want(t, err, nil, "")
	p, err := f.Service.Authenticate(t.Context(), tok.AccessToken)
	if err != nil || p.UserID != f.alice.ID || tok.RefreshToken != "" {
		t.Fatalf("principal %+v refresh %q: %v", p, tok.RefreshToken, err)
	}
	_, err = f.as.ClientCredentials(t.Context(), f.desktop, "")
	want(t, err, authserver.ErrUnauthorizedClient, "confidential")
	_, err = f.as.ClientCredentials(t.Context(), f.portal, "credential")
	want(t, err, authserver.ErrInvalidScope, "consent")
}

// TestRevoke: a client revokes its own tokens only; a refresh token takes
// its family with it, a credential token its SAD.
func TestRevoke(t *testing.T) {
	f := newFixture(t)
	r, v := request()
	tok := f.tokens(t, r, v)
	want(t, f.as.Revoke(t.Context(), f.portal, tok.AccessToken, ""), authserver.ErrUnauthorizedClient, "another client")
	if _, err := f.Service.Authenticate(t.Context(), tok.AccessToken); err != nil {
		t.Fatalf("another client's refused revocation ended the token: %v", err)
	}
	want(t, f.as.Revoke(t.Context(), f.desktop, "unknown", ""), nil, "")
	want(t, f.as.Revoke(t.Context(), f.desktop, tok.RefreshToken, "refresh_token"), nil, "")
	_, err := f.Service.Authenticate(t.Context(), tok.AccessToken)
	want(t, err, service.ErrExpiredToken, "revoked")

	cr, cv := f.credentialRequest(digest("a"))
	ctok := f.tokens(t, cr, cv, pinFactor)
	want(t, f.as.Revoke(t.Context(), f.desktop, ctok.AccessToken, ""), nil, "")
	if _, err := f.Store.SAD(t.Context(), tokenHash(ctok.AccessToken)); err == nil {
		t.Error("the revoked credential token's SAD survived")
	}
}
