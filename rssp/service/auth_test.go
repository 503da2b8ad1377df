package service_test

import (
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/service"
)

// TestAccessTokens: an access token works until it expires or is revoked,
// and not for a disabled account.
func TestAccessTokens(t *testing.T) {
	f := newFixture(t)
	login := func(t *testing.T) service.Tokens {
		tok, err := f.Service.Login(t.Context(), "alice", password, true)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	t.Run("fail wrong password", func(t *testing.T) {
		_, err := f.Service.Login(t.Context(), "alice", "wrong password", false)
		wantKind(t, err, service.ErrAuthentication)
	})
	t.Run("fail unknown user", func(t *testing.T) {
		_, err := f.Service.Login(t.Context(), "mallory", password, false)
		wantKind(t, err, service.ErrAuthentication)
	})
	t.Run("ok until expiry", func(t *testing.T) {
		tok := login(t)
		f.Clock.Advance(f.Options.AccessTokenTTL - time.Second)
		if _, err := f.Service.Authenticate(t.Context(), tok.AccessToken); err != nil {
			t.Fatalf("a second before expiry: %v", err)
		}
		f.Clock.Advance(time.Second)
		_, err := f.Service.Authenticate(t.Context(), tok.AccessToken)
		wantKind(t, err, service.ErrExpiredToken)
	})
	t.Run("fail refresh token as access token", func(t *testing.T) {
		tok := login(t)
		_, err := f.Service.Authenticate(t.Context(), tok.RefreshToken)
		wantKind(t, err, service.ErrInvalidToken)
	})
	t.Run("fail revoked", func(t *testing.T) {
		tok := login(t)
		p, err := f.Service.Authenticate(t.Context(), tok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Service.Revoke(t.Context(), p, tok.AccessToken, "access_token"); err != nil {
			t.Fatal(err)
		}
		_, err = f.Service.Authenticate(t.Context(), tok.AccessToken)
		wantKind(t, err, service.ErrExpiredToken)
		if _, err := f.Service.Refresh(t.Context(), tok.RefreshToken); err != nil {
			t.Errorf("revoking the access token ended its refresh token: %v", err)
		}
	})
	t.Run("fail revoke another user's token", func(t *testing.T) {
		tok := login(t)
		err := f.Service.Revoke(t.Context(), f.bob, tok.AccessToken, "")
		wantKind(t, err, service.ErrAccessDenied)
		if _, err := f.Service.Authenticate(t.Context(), tok.AccessToken); err != nil {
			t.Errorf("bob's refused revocation ended alice's token: %v", err)
		}
	})
	t.Run("ok revoking the refresh token ends the login", func(t *testing.T) {
		tok := login(t)
		p, _ := f.Service.Authenticate(t.Context(), tok.AccessToken)
		if err := f.Service.Revoke(t.Context(), p, tok.RefreshToken, "refresh_token"); err != nil {
			t.Fatal(err)
		}
		_, err := f.Service.Authenticate(t.Context(), tok.AccessToken)
		wantKind(t, err, service.ErrExpiredToken)
	})
}

// TestLoginRequireFIDO: auth/login (a password alone) is refused to a user
// who must log in with a security key (rssp admin user require-fido), who
// logs in on the OAuth2 login page only; a wrong password is refused as
// for anyone, so the refusal tells nothing without the password.
func TestLoginRequireFIDO(t *testing.T) {
	f := newFixture(t)
	before, err := f.Service.Login(t.Context(), "alice", password, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Service.SetRequireFIDO(t.Context(), "alice", true); err != nil {
		t.Fatal(err)
	}
	// A refresh token of a password login from before does not go on.
	_, err = f.Service.Refresh(t.Context(), before.RefreshToken)
	wantKind(t, err, service.ErrAccessDenied)
	_, err = f.Service.Login(t.Context(), "alice", "wrong password", false)
	wantKind(t, err, service.ErrAuthentication)
	_, err = f.Service.Login(t.Context(), "alice", password, true)
	wantKind(t, err, service.ErrAccessDenied)
	if err := f.Service.SetRequireFIDO(t.Context(), "alice", false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Service.Login(t.Context(), "alice", password, false); err != nil {
		t.Fatalf("require-fido lifted: %v", err)
	}
}

// TestRefreshRotation: a refresh token serves once; its successor works;
// presenting a spent one again revokes the whole family, successors
// included; an expired one is refused.
func TestRefreshRotation(t *testing.T) {
	f := newFixture(t)
	first, err := f.Service.Login(t.Context(), "alice", password, true)
	if err != nil {
		t.Fatal(err)
	}
	if first.RefreshToken == "" {
		t.Fatal("rememberMe gave no refresh token")
	}
	second, err := f.Service.Refresh(t.Context(), first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatal("refresh did not rotate the tokens")
	}
	steps := []struct {
		name   string
		do     func() error
		kind   error
		second bool // the successor's access token still works
	}{
		{"ok the first access token still works", func() error {
			_, err := f.Service.Authenticate(t.Context(), first.AccessToken)
			return err
		}, nil, true},
		{"fail the spent refresh token again", func() error {
			_, err := f.Service.Refresh(t.Context(), first.RefreshToken)
			return err
		}, service.ErrInvalidToken, false},
		{"fail the successor after the replay", func() error {
			_, err := f.Service.Refresh(t.Context(), second.RefreshToken)
			return err
		}, service.ErrInvalidToken, false},
		{"fail the first access token after the replay", func() error {
			_, err := f.Service.Authenticate(t.Context(), first.AccessToken)
			return err
		}, service.ErrExpiredToken, false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			wantKind(t, s.do(), s.kind)
			_, err := f.Service.Authenticate(t.Context(), second.AccessToken)
			if (err == nil) != s.second {
				t.Errorf("successor's access token: %v", err)
			}
		})
	}
	t.Run("fail expired refresh token", func(t *testing.T) {
		tok, err := f.Service.Login(t.Context(), "alice", password, true)
		if err != nil {
			t.Fatal(err)
		}
		f.Clock.Advance(f.Options.RefreshTokenTTL)
		_, err = f.Service.Refresh(t.Context(), tok.RefreshToken)
		wantKind(t, err, service.ErrExpiredToken)
	})
	t.Run("fail an access token as refresh token", func(t *testing.T) {
		_, err := f.Service.Refresh(t.Context(), second.AccessToken)
		wantKind(t, err, service.ErrInvalidToken)
	})
	t.Run("ok no refresh token without rememberMe", func(t *testing.T) {
		tok, err := f.Service.Login(t.Context(), "alice", password, false)
		if err != nil || tok.RefreshToken != "" {
			t.Fatalf("refresh token %q, %v", tok.RefreshToken, err)
		}
	})
}
