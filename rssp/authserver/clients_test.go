package authserver_test

import (
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/authserver"
	"github.com/csctoken/csctoken/rssp/service"
)

// TestAuthenticateClient: a confidential client with its secret, a public
// one by its ID alone.
func TestAuthenticateClient(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name, id, secret string
		desc             string // "" for success
	}{
		{"ok public", "desktop", "", ""},
		{"ok confidential", "portal", "", ""}, // secret filled in below
		{"fail public with a secret", "desktop", "x", "a public client has no secret"},
		{"fail confidential without secret", "portal", "", "must authenticate with its secret"},
		{"fail confidential wrong secret", "portal", "0123456789abcdef", "Client authentication failed"},
		{"fail unknown", "nobody", "0123456789abcdef", "Client authentication failed"},
		{"fail no ID", "", "", "Missing client_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secret := tc.secret
			if tc.name == "ok confidential" {
				secret = f.portalSecret
			}
			c, err := f.as.AuthenticateClient(t.Context(), tc.id, secret)
			if tc.desc == "" {
				if err != nil || c.ID != tc.id {
					t.Fatalf("client %q: %v", c.ID, err)
				}
				return
			}
			want(t, err, authserver.ErrInvalidClient, tc.desc)
		})
	}
}

// TestResolveRedirect: errors go back to a redirect URI only once client
// and URI are known to be good (RFC 6749 §4.1.2.1).
func TestResolveRedirect(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name, client, redirect, got string
		kind                        error
	}{
		{"ok registered", "desktop", desktopRedirect, desktopRedirect, nil},
		{"ok loopback on another port", "desktop", "http://127.0.0.1:49152/callback", "http://127.0.0.1:49152/callback", nil},
		{"ok omitted with one registered", "desktop", "", desktopRedirect, nil},
		{"fail another path", "desktop", "http://127.0.0.1/other", "", service.ErrInvalidRequest},
		{"fail another host", "desktop", "http://localhost/callback", "", service.ErrInvalidRequest},
		{"fail https port is not free", "portal", "https://portal.example:8443/cb", "", service.ErrInvalidRequest},
		{"fail unknown client", "nobody", desktopRedirect, "", authserver.ErrInvalidClient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, got, err := f.as.ResolveRedirect(t.Context(), tc.client, tc.redirect)
			want(t, err, tc.kind, "")
			if got != tc.got {
				t.Errorf("redirect %q, want %q", got, tc.got)
			}
		})
	}
}

// TestSessions: a browser session is anonymous until login, which replaces
// it; it ends at its expiry and at logout.
func TestSessions(t *testing.T) {
	f := newFixture(t)
	anon, _, err := f.as.NewSession(t.Context(), "")
	want(t, err, nil, "")
	bs, err := f.as.Session(t.Context(), anon)
	want(t, err, nil, "")
	if bs.UserID != "" {
		t.Fatalf("anonymous session of %q", bs.UserID)
	}
	_, err = f.as.Login(t.Context(), anon, "alice", "wrong password")
	want(t, err, service.ErrAuthentication, "")
	if _, err := f.as.Session(t.Context(), anon); err != nil {
		t.Errorf("a failed login ended the session: %v", err)
	}
	step, err := f.as.Login(t.Context(), anon, "alice", password)
	want(t, err, nil, "")
	logged, exp := step.Session, step.Expires
	if step.KeyOptions != nil {
		t.Fatal("a user without security keys was asked for one")
	}
	if logged == anon {
		t.Fatal("login kept the session value (fixation)")
	}
	_, err = f.as.Session(t.Context(), anon)
	want(t, err, service.ErrInvalidToken, "ended")
	bs, err = f.as.Session(t.Context(), logged)
	want(t, err, nil, "")
	if bs.UserID != f.alice.ID || bs.UserName != "alice" || !exp.Equal(f.Clock.Now().Add(f.as.Options().SessionTTL)) {
		t.Errorf("session %+v expires %v", bs, exp)
	}
	f.Clock.Advance(f.as.Options().SessionTTL - time.Second)
	_, err = f.as.Session(t.Context(), logged)
	want(t, err, nil, "")
	f.Clock.Advance(time.Second)
	_, err = f.as.Session(t.Context(), logged)
	want(t, err, service.ErrInvalidToken, "ended")

	t.Run("fail logout", func(t *testing.T) {
		step, err := f.as.Login(t.Context(), "", "alice", password)
		want(t, err, nil, "")
		v := step.Session
		want(t, f.as.EndSession(t.Context(), v), nil, "")
		_, err = f.as.Session(t.Context(), v)
		want(t, err, service.ErrInvalidToken, "")
	})
}

// TestDisabledAccount: a disabled account's browser session, code and
// refresh token stop working, and a client cannot act for it.
func TestDisabledAccount(t *testing.T) {
	f := newFixture(t)
	step, err := f.as.Login(t.Context(), "", "alice", password)
	want(t, err, nil, "")
	session := step.Session
	r, v := request()
	tok := f.tokens(t, r, v)
	r2, v2 := request()
	code := f.code(t, r2)
	if err := f.Service.SetUserDisabled(t.Context(), "alice", true); err != nil {
		t.Fatal(err)
	}
	_, err = f.as.Session(t.Context(), session)
	want(t, err, service.ErrInvalidToken, "no longer active")
	_, err = f.as.Login(t.Context(), "", "alice", password)
	want(t, err, service.ErrAuthentication, "disabled")
	_, err = f.as.ExchangeCode(t.Context(), f.desktop, code, desktopRedirect, v2)
	want(t, err, authserver.ErrInvalidGrant, "")
	_, err = f.as.Refresh(t.Context(), f.desktop, tok.RefreshToken, "")
	want(t, err, authserver.ErrInvalidGrant, "")
	_, err = f.as.ClientCredentials(t.Context(), f.portal, "")
	want(t, err, authserver.ErrUnauthorizedClient, "no longer active")
}
