package authserver_test

import (
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/authserver"
	"github.com/csctoken/csctoken/rssp/service"
)

// TestConsentBinding: the credential token signs exactly what the user
// consented to: its credential, its hashes, its count, until its expiry,
// and only through credentials/info and signatures/signHash.
func TestConsentBinding(t *testing.T) {
	f := newFixture(t)
	a, b, c := digest("a"), digest("b"), digest("c")
	for _, tc := range []struct {
		name    string
		consent [][]byte
		sign    [][][]byte // calls, in order
		fails   int        // index of the first call that must fail; -1: none
	}{
		{"ok both hashes at once", [][]byte{a, b}, [][][]byte{{a, b}}, -1},
		{"ok both hashes in another order", [][]byte{a, b}, [][][]byte{{b, a}}, -1},
		{"fail a hash not consented to", [][]byte{a, b}, [][][]byte{{c}}, 0},
		{"fail one of two hashes", [][]byte{a, b}, [][][]byte{{a}}, 0},
		{"fail one hash twice", [][]byte{a, b}, [][][]byte{{a, a}}, 0},
		{"fail after the consented signatures", [][]byte{a}, [][][]byte{{a}, {a}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, v := f.credentialRequest(tc.consent...)
			tok := f.tokens(t, r, v, pinFactor)
			if tok.CredentialID != f.scal2 || tok.Scope != service.ScopeCredential || tok.RefreshToken != "" {
				t.Fatalf("tokens %+v", tok)
			}
			for i, hashes := range tc.sign {
				err := f.signWith(t, tok.AccessToken, hashes...)
				if i == tc.fails {
					want(t, err, service.ErrInvalidRequest, "")
					return
				}
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
		})
	}
	t.Run("fail expired", func(t *testing.T) {
		r, v := f.credentialRequest(a)
		tok := f.tokens(t, r, v, pinFactor)
		if tok.ExpiresIn != f.Options.SADTTL {
			t.Errorf("expires in %v, want the SAD lifetime %v", tok.ExpiresIn, f.Options.SADTTL)
		}
		f.Clock.Advance(f.Options.SADTTL)
		_, err := f.Service.AuthenticateMethod(t.Context(), tok.AccessToken, "signatures/signHash")
		want(t, err, service.ErrExpiredToken, "expired")
	})
	t.Run("fail other methods", func(t *testing.T) {
		r, v := f.credentialRequest(a)
		tok := f.tokens(t, r, v, pinFactor)
		for _, m := range []string{"credentials/list", "credentials/authorize", "auth/revoke", "signatures/timestamp"} {
			_, err := f.Service.AuthenticateMethod(t.Context(), tok.AccessToken, m)
			want(t, err, service.ErrAccessDenied, "credential-scope token")
		}
		p, err := f.Service.AuthenticateMethod(t.Context(), tok.AccessToken, "credentials/info")
		want(t, err, nil, "")
		if p.CredentialID != f.scal2 {
			t.Errorf("bound to %q", p.CredentialID)
		}
	})
	t.Run("fail another SAD with the credential token", func(t *testing.T) {
		r, v := f.credentialRequest(a)
		tok := f.tokens(t, r, v, pinFactor)
		r2, v2 := f.credentialRequest(b)
		other := f.tokens(t, r2, v2, pinFactor)
		p, err := f.Service.AuthenticateMethod(t.Context(), tok.AccessToken, "signatures/signHash")
		want(t, err, nil, "")
		_, err = f.Service.SignHash(t.Context(), p, service.SignRequest{CredentialID: f.scal2, SAD: other.AccessToken,
			Hashes: [][]byte{b}, HashAlgorithm: csc.OIDSHA256, SignAlgo: csc.OIDECDSAWithSHA256})
		want(t, err, service.ErrAccessDenied, "its own authorization")
	})
}

// TestConsentRequest: what a credential-scope request may ask, checked
// before the user sees it and again against the credential at consent.
func TestConsentRequest(t *testing.T) {
	f := newFixture(t) // multisign 5, SCAL 2
	for _, tc := range []struct {
		name  string
		edit  func(*authserver.AuthRequest)
		start error // at StartAuthorization
		desc  string
	}{
		{"fail numSignatures above the service's limit", func(r *authserver.AuthRequest) { r.Hashes = nil; r.NumSignatures = 11 }, service.ErrInvalidRequest, "between 1 and 10"},
		{"fail numSignatures is not the hashes'", func(r *authserver.AuthRequest) { r.NumSignatures = 2 }, service.ErrInvalidRequest, "does not match"},
		{"fail hashes without algorithm", func(r *authserver.AuthRequest) { r.HashAlgorithm = "" }, service.ErrInvalidRequest, "hashAlgorithmOID"},
		{"fail hash of the wrong size", func(r *authserver.AuthRequest) { r.Hashes = [][]byte{{1, 2, 3}} }, service.ErrInvalidRequest, "bytes long"},
		{"fail no credential", func(r *authserver.AuthRequest) { r.CredentialID = "" }, service.ErrInvalidRequest, "credentialID"},
		{"fail both scopes", func(r *authserver.AuthRequest) { r.Scope = "service credential" }, authserver.ErrInvalidScope, "separately"},
		{"fail unknown scope", func(r *authserver.AuthRequest) { r.Scope = "admin" }, authserver.ErrInvalidScope, "Unknown scope"},
		{"fail credential parameters with scope service", func(r *authserver.AuthRequest) { r.Scope = "service" }, service.ErrInvalidRequest, "go with scope credential"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := f.credentialRequest(digest("a"))
			tc.edit(&r)
			_, err := f.as.StartAuthorization(t.Context(), r, "")
			want(t, err, tc.start, tc.desc)
		})
	}
	for _, tc := range []struct {
		name string
		edit func(*authserver.AuthRequest)
		user func() string
		desc string
	}{
		{"fail numSignatures above multisign", func(r *authserver.AuthRequest) { r.Hashes = nil; r.NumSignatures = 6 }, func() string { return f.alice.ID }, "exceeds the credential's multisign"},
		{"fail SCAL 2 without hashes", func(r *authserver.AuthRequest) { r.Hashes = nil; r.NumSignatures = 1 }, func() string { return f.alice.ID }, "required for a SCAL 2"},
		{"fail another user's credential", func(*authserver.AuthRequest) {}, func() string { return f.bob.ID }, "credentialID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := f.credentialRequest(digest("a"))
			tc.edit(&r)
			a, err := f.as.StartAuthorization(t.Context(), r, "")
			want(t, err, nil, "")
			_, err = f.as.ConsentCredential(t.Context(), tc.user(), a)
			want(t, err, service.ErrInvalidRequest, tc.desc)
			_, _, err = f.as.Approve(t.Context(), tc.user(), a.Handle, []csc.AuthData{pinFactor})
			want(t, err, service.ErrInvalidRequest, tc.desc)
			if c := f.Credential(t, f.scal2); c.PINFailures != 0 {
				t.Errorf("a refused request tried the PIN: %d failures", c.PINFailures)
			}
		})
	}
}

// TestConsentFactors: the consent checks the credential's PIN like
// credentials/authorize (failures counted, lock at the limit); a wrong PIN
// leaves the request pending, an answer takes it: it is answered once.
func TestConsentFactors(t *testing.T) {
	f := newFixture(t) // PINRetries 3
	r, v := f.credentialRequest(digest("a"))
	a, err := f.as.StartAuthorization(t.Context(), r, "")
	want(t, err, nil, "")
	wrong := []csc.AuthData{{ID: service.FactorPIN, Value: "000000"}}
	_, _, err = f.as.Approve(t.Context(), f.alice.ID, a.Handle, wrong)
	want(t, err, service.ErrInvalidPIN, "2 attempts left")
	_, _, err = f.as.Approve(t.Context(), f.alice.ID, a.Handle, nil)
	want(t, err, service.ErrInvalidRequest, "Missing authData PIN")
	code, _, err := f.as.Approve(t.Context(), f.alice.ID, a.Handle, []csc.AuthData{pinFactor})
	want(t, err, nil, "")
	if c := f.Credential(t, f.scal2); c.PINFailures != 0 {
		t.Errorf("a good PIN left %d failures", c.PINFailures)
	}
	_, _, err = f.as.Approve(t.Context(), f.alice.ID, a.Handle, []csc.AuthData{pinFactor})
	want(t, err, service.ErrInvalidRequest, "")
	_, _, err = f.as.Deny(t.Context(), f.alice.ID, a.Handle, nil)
	want(t, err, service.ErrInvalidRequest, "")
	if _, err := f.as.ExchangeCode(t.Context(), f.desktop, code, desktopRedirect, v); err != nil {
		t.Fatal(err)
	}

	t.Run("fail locked at the limit", func(t *testing.T) {
		a, err := f.as.StartAuthorization(t.Context(), r, "")
		want(t, err, nil, "")
		for range 2 {
			_, _, err = f.as.Approve(t.Context(), f.alice.ID, a.Handle, wrong)
			want(t, err, service.ErrInvalidPIN, "")
		}
		_, _, err = f.as.Approve(t.Context(), f.alice.ID, a.Handle, wrong)
		want(t, err, service.ErrLocked, "now locked")
		_, _, err = f.as.Approve(t.Context(), f.alice.ID, a.Handle, []csc.AuthData{pinFactor})
		want(t, err, service.ErrLocked, "")
		if err := f.Service.Unlock(t.Context(), f.scal2); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ok deny answers access_denied and takes the request", func(t *testing.T) {
		a, err := f.as.StartAuthorization(t.Context(), r, "")
		want(t, err, nil, "")
		_, answer, err := f.as.Deny(t.Context(), f.alice.ID, a.Handle, nil)
		want(t, err, nil, "")
		want(t, answer, service.ErrAccessDenied, "declined")
		_, _, err = f.as.Approve(t.Context(), f.alice.ID, a.Handle, []csc.AuthData{pinFactor})
		want(t, err, service.ErrInvalidRequest, "")
	})
	t.Run("fail a pending request expires", func(t *testing.T) {
		a, err := f.as.StartAuthorization(t.Context(), r, "")
		want(t, err, nil, "")
		f.Clock.Advance(f.as.Options().PendingTTL)
		_, _, err = f.as.Approve(t.Context(), f.alice.ID, a.Handle, []csc.AuthData{pinFactor})
		want(t, err, service.ErrInvalidRequest, "expired")
	})
	t.Run("ok consent is audited with the hashes", func(t *testing.T) {
		rows := f.Audit(t)
		var n int
		for _, e := range rows {
			if e.Event == "oauth2 consent" && e.Result == "ok" && len(e.Hashes) == 1 && e.CredentialID == f.scal2 {
				n++
			}
		}
		if n == 0 {
			t.Error("no oauth2 consent row with the credential and its hash")
		}
	})
}

// TestPushedRequests: a request_uri serves once, only the client that
// pushed it, before it expires.
func TestPushedRequests(t *testing.T) {
	f := newFixture(t)
	push := func(t *testing.T) string {
		r, _ := request()
		r.ClientID, r.RedirectURI = "", portalRedirect
		uri, ttl, err := f.as.PushAuthorization(t.Context(), f.portal, r)
		want(t, err, nil, "")
		if ttl != 90*time.Second {
			t.Errorf("request_uri lives %v", ttl)
		}
		return uri
	}
	start := func(clientID, uri string) (authserver.Authorization, error) {
		return f.as.StartAuthorization(t.Context(), authserver.AuthRequest{ClientID: clientID}, uri)
	}
	t.Run("ok once", func(t *testing.T) {
		uri := push(t)
		a, err := start("portal", uri)
		want(t, err, nil, "")
		if a.RedirectURI != portalRedirect || a.Client.ID != "portal" {
			t.Errorf("authorization %+v", a)
		}
		_, err = start("portal", uri)
		want(t, err, authserver.ErrInvalidRequestURI, "already used")
	})
	t.Run("fail another client", func(t *testing.T) {
		uri := push(t)
		_, err := start("desktop", uri)
		want(t, err, authserver.ErrInvalidRequestURI, "another client")
		_, err = start("portal", uri)
		want(t, err, nil, "")
	})
	t.Run("fail expired", func(t *testing.T) {
		uri := push(t)
		f.Clock.Advance(90 * time.Second)
		a, err := start("portal", uri)
		want(t, err, authserver.ErrInvalidRequestURI, "expired")
		if a.RedirectURI != portalRedirect {
			t.Errorf("the error goes to %q, not back to the client", a.RedirectURI)
		}
	})
	t.Run("fail not ours", func(t *testing.T) {
		_, err := start("portal", "urn:example:other")
		want(t, err, authserver.ErrInvalidRequestURI, "not issued by this server")
	})
	t.Run("fail client_id of another client", func(t *testing.T) {
		r, _ := request()
		_, _, err := f.as.PushAuthorization(t.Context(), f.portal, r) // r.ClientID is desktop
		want(t, err, service.ErrInvalidRequest, "does not match")
	})
}

// TestConsentQualifier: a credential request naming a signatureQualifier
// is consented to only when the credential carries it.
func TestConsentQualifier(t *testing.T) {
	f := newFixture(t)
	r, _ := f.credentialRequest(digest("a"))
	r.SignatureQualifier = "eu_eidas_qes" // f.scal2 carries none
	a, err := f.as.StartAuthorization(t.Context(), r, "")
	if err != nil {
		t.Fatalf("StartAuthorization: %v", err)
	}
	_, err = f.as.ConsentCredential(t.Context(), f.alice.ID, a)
	want(t, err, service.ErrInvalidRequest, "signature qualifier")
	_, _, err = f.as.Approve(t.Context(), f.alice.ID, a.Handle, []csc.AuthData{pinFactor})
	want(t, err, service.ErrInvalidRequest, "signature qualifier")
}
