package service_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/extauth"
	"github.com/csctoken/csctoken/rssp/service"
)

// fakeExternal answers Validate from a table (the validator itself is
// tested in rssp/extauth).
type fakeExternal struct {
	mu     sync.Mutex
	tokens map[string]extauth.Token
	errs   map[string]error
	opaque bool
}

func (f *fakeExternal) Validate(_ context.Context, raw string) (extauth.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err, ok := f.errs[raw]; ok {
		return extauth.Token{}, err
	}
	t, ok := f.tokens[raw]
	if !ok {
		return extauth.Token{}, fmt.Errorf("%w: unknown to the fake", extauth.ErrInvalid)
	}
	return t, nil
}

func (f *fakeExternal) Introspects() bool { return f.opaque }

func (f *fakeExternal) set(raw string, t extauth.Token, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens[raw] = t
	if err != nil {
		f.errs[raw] = err
	} else {
		delete(f.errs, raw)
	}
}

func TestExternalTokens(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	if err := f.Service.SetExternalSubject(ctx, "alice", "sub-alice"); err != nil {
		t.Fatal(err)
	}
	if err := f.Service.SetExternalSubject(ctx, "bob", "sub-bob"); err != nil {
		t.Fatal(err)
	}
	c1, _ := f.credential(t, nil)
	c2, _ := f.credential(t, nil)
	bobCred, _ := f.credential(t, func(s *service.CredentialSpec) { s.User = "bob" })
	scal2, _ := f.credential(t, func(s *service.CredentialSpec) { s.SCAL = 2 })
	fe := &fakeExternal{tokens: map[string]extauth.Token{}, errs: map[string]error{}, opaque: true}
	f.Service.SetExternal(service.External{Tokens: fe, Leeway: 30 * time.Second})

	exp := time.Now().Add(time.Hour)
	svcTok := func(sub string, scopes ...string) extauth.Token {
		return extauth.Token{Subject: sub, ClientID: "csctoken", Scopes: scopes, ExpiresAt: exp}
	}
	credTok := func(sub, cred string, n int, hashes ...[]byte) extauth.Token {
		t := svcTok(sub, "credential")
		t.Credentials = []extauth.CredentialDetail{{CredentialID: cred, NumSignatures: n, Hashes: hashes}}
		if len(hashes) > 0 {
			t.Credentials[0].HashAlgorithmOID = csc.OIDSHA256
		}
		return t
	}
	h1, h2 := digest("document one"), digest("document two")
	fe.set("a.service.jwt", svcTok("sub-alice", "service", "openid"), nil)
	fe.set("a.nobody.jwt", svcTok("sub-nobody", "service"), nil)
	fe.set("a.noscope.jwt", svcTok("sub-alice", "openid"), nil)
	fe.set("a.expired.jwt", extauth.Token{}, fmt.Errorf("%w: exp", extauth.ErrExpired))
	fe.set("a.bad.jwt", extauth.Token{}, fmt.Errorf("%w: signature", extauth.ErrInvalid))
	fe.set("a.down.jwt", extauth.Token{}, fmt.Errorf("%w: jwks", extauth.ErrUnavailable))
	fe.set("a.cred.jwt", credTok("sub-alice", c1, 1, h1), nil)
	fe.set("a.cred2.jwt", credTok("sub-alice", c1, 2), nil)
	fe.set("a.bobcred.jwt", credTok("sub-alice", bobCred, 1), nil)
	fe.set("a.nodetails.jwt", svcTok("sub-alice", "credential"), nil)
	fe.set("a.badcount.jwt", credTok("sub-alice", c1, 3, h1), nil)
	fe.set("opaque-alice", svcTok("sub-alice", "service"), nil)
	fe.set("a.scal2nohash.jwt", credTok("sub-alice", scal2, 1), nil)
	fe.set("a.scal2.jwt", credTok("sub-alice", scal2, 1, h1), nil)
	fe.set("a.overmultisign.jwt", credTok("sub-alice", c1, 4), nil) // c1's multisign is 3

	auth := []struct {
		name, token, method string
		wantUser            string
		wantKind            error
	}{
		{"ok service token", "a.service.jwt", "credentials/list", "alice", nil},
		{"ok opaque token", "opaque-alice", "credentials/list", "alice", nil},
		{"ok credential token for its methods", "a.cred.jwt", "signatures/signHash", "alice", nil},
		{"fail unknown subject", "a.nobody.jwt", "credentials/list", "", service.ErrAccessDenied},
		{"fail no CSC scope", "a.noscope.jwt", "credentials/list", "", service.ErrAccessDenied},
		{"fail expired", "a.expired.jwt", "credentials/list", "", service.ErrExpiredToken},
		{"fail invalid", "a.bad.jwt", "credentials/list", "", service.ErrInvalidToken},
		{"fail issuer unreachable", "a.down.jwt", "credentials/list", "", service.ErrUnavailable},
		{"fail unknown opaque", "opaque-unknown", "credentials/list", "", service.ErrInvalidToken},
		{"fail credential token for another method", "a.cred2.jwt", "credentials/list", "", service.ErrAccessDenied},
		{"fail credential of another user", "a.bobcred.jwt", "signatures/signHash", "", service.ErrInvalidToken},
		{"fail credential scope without details", "a.nodetails.jwt", "signatures/signHash", "", service.ErrInvalidToken},
		{"fail numSignatures not the hashes'", "a.badcount.jwt", "signatures/signHash", "", service.ErrInvalidToken},
		{"fail numSignatures over the credential's multisign", "a.overmultisign.jwt", "signatures/signHash", "", service.ErrInvalidToken},
		// SCAL 2: the token binds the hashes, or it would sign any.
		{"fail SCAL 2 credential token without hashes", "a.scal2nohash.jwt", "signatures/signHash", "", service.ErrInvalidToken},
		{"ok SCAL 2 credential token with hashes", "a.scal2.jwt", "signatures/signHash", "alice", nil},
	}
	for _, tc := range auth {
		t.Run(tc.name, func(t *testing.T) {
			p, err := f.Service.AuthenticateMethod(ctx, tc.token, tc.method)
			wantKind(t, err, tc.wantKind)
			if tc.wantKind == nil && p.UserName != tc.wantUser {
				t.Fatalf("user %q, want %q", p.UserName, tc.wantUser)
			}
		})
	}

	signWith := func(token, cred string, hashes ...[]byte) error {
		p, err := f.Service.AuthenticateMethod(ctx, token, "signatures/signHash")
		if err != nil {
			return err
		}
		_, err = f.sign(ctx, p, cred, "", hashes...)
		return err
	}
	t.Run("credential token signs what it authorizes, once", func(t *testing.T) {
		wantKind(t, signWith("a.cred.jwt", c1, h2), service.ErrInvalidRequest) // other hashes
		wantKind(t, signWith("a.cred.jwt", c2, h1), service.ErrAccessDenied)   // another credential
		wantKind(t, signWith("a.cred.jwt", c1, h1), nil)
		wantKind(t, signWith("a.cred.jwt", c1, h1), service.ErrInvalidRequest) // used up
	})
	t.Run("credential token without hashes: numSignatures", func(t *testing.T) {
		wantKind(t, signWith("a.cred2.jwt", c1, h1), nil)
		wantKind(t, signWith("a.cred2.jwt", c1, h2), nil)
		wantKind(t, signWith("a.cred2.jwt", c1, h2), service.ErrInvalidRequest)
	})
	t.Run("service token: credentials/authorize with the PIN", func(t *testing.T) {
		p, err := f.Service.AuthenticateMethod(ctx, "a.service.jwt", "credentials/authorize")
		if err != nil {
			t.Fatal(err)
		}
		sad, err := f.authorize(t, p, c1, 1, h2)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.sign(ctx, p, c1, sad.Value, h2); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("revoked credential token", func(t *testing.T) {
		fe.set("a.cred3.jwt", credTok("sub-alice", c1, 2), nil)
		p, err := f.Service.AuthenticateMethod(ctx, "a.cred3.jwt", "signatures/signHash")
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Service.Revoke(ctx, p, "a.cred3.jwt", "access_token"); err != nil {
			t.Fatal(err)
		}
		wantKind(t, signWith("a.cred3.jwt", c1, h1), service.ErrInvalidToken)
	})
	t.Run("opaque credential token revoked at the issuer after first use", func(t *testing.T) {
		fe.set("opaque-cred", credTok("sub-alice", c1, 2), nil)
		wantKind(t, signWith("opaque-cred", c1, h1), nil)
		fe.set("opaque-cred", extauth.Token{}, fmt.Errorf("%w: inactive", extauth.ErrInvalid))
		wantKind(t, signWith("opaque-cred", c1, h1), service.ErrInvalidToken)
	})
	t.Run("disabled user", func(t *testing.T) {
		fe.set("a.bob.jwt", svcTok("sub-bob", "service"), nil)
		if err := f.Service.SetUserDisabled(ctx, "bob", true); err != nil {
			t.Fatal(err)
		}
		_, err := f.Service.AuthenticateMethod(ctx, "a.bob.jwt", "credentials/list")
		wantKind(t, err, service.ErrInvalidToken)
	})
	t.Run("own tokens still work", func(t *testing.T) {
		tok, err := f.Service.Login(ctx, "alice", password, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Service.AuthenticateMethod(ctx, tok.AccessToken, "credentials/list"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("auto-created users", func(t *testing.T) {
		f.Service.SetExternal(service.External{Tokens: fe, AutoCreateUsers: true})
		fe.set("a.carol.jwt", svcTok("https://idp.example/carol", "service"), nil)
		p, err := f.Service.AuthenticateMethod(ctx, "a.carol.jwt", "credentials/list")
		if err != nil {
			t.Fatal(err)
		}
		p2, err := f.Service.AuthenticateMethod(ctx, "a.carol.jwt", "credentials/list")
		if err != nil || p2.UserID != p.UserID {
			t.Fatalf("second use: %+v, %v", p2, err)
		}
		users, err := f.Service.Users(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, u := range users {
			found = found || (u.ExternalSubject == "https://idp.example/carol" && u.ID == p.UserID)
		}
		if !found {
			t.Fatalf("no user for the new subject: %+v", users)
		}
		// The auto-created user has no password: no login here.
		_, err = f.Service.Login(ctx, p.UserName, "", false)
		if !errors.Is(err, service.ErrAuthentication) {
			t.Fatalf("login of an external user: %v", err)
		}
	})
}
