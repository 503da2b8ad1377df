package storetest

// The conformance tests of the signing hot path's reads (TokenUser,
// SigningState): each returns what the point reads it stands for would,
// and follows every change of the rows.

import (
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

func testTokenUser(t *testing.T, open func(t *testing.T) store.Store) {
	s := withUsers(t, open)
	ctx := t.Context()
	exp := t0.Add(time.Hour)
	a := store.Token{Hash: sum("a"), Kind: store.AccessToken, UserID: alice.ID, ClientID: "cl", Scope: "service",
		Family: "fam", ExpiresAt: exp, CreatedAt: t0}
	b := store.Token{Hash: sum("b"), Kind: store.RefreshToken, UserID: bob.ID, Scope: "credential", ExpiresAt: t0.Add(-time.Hour)}
	for _, tok := range []store.Token{a, b} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
	}
	check := func(t *testing.T, tok store.Token, u store.User) {
		t.Helper()
		gt, gu, err := s.TokenUser(ctx, tok.Hash)
		if err != nil {
			t.Fatalf("TokenUser: %v", err)
		}
		checkEqual(t, "token", gt, normToken(tok))
		checkEqual(t, "user", gu, normUser(u))
	}
	t.Run("ok token and user", func(t *testing.T) { check(t, a, alice) })
	t.Run("ok expired, disabled user", func(t *testing.T) { check(t, b, bob) })
	t.Run("fail unknown", func(t *testing.T) {
		_, _, err := s.TokenUser(ctx, sum("nope"))
		checkErr(t, "TokenUser", err, store.ErrNotFound)
	})
	t.Run("ok follows revocation and user changes", func(t *testing.T) {
		if err := s.RevokeToken(ctx, a.Hash); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateToken(ctx, store.Token{Hash: sum("a2"), Kind: store.AccessToken, UserID: alice.ID, ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
		a.Revoked = true
		check(t, a, alice)
		if err := s.SetUserDisabled(ctx, alice.ID, true); err != nil {
			t.Fatal(err)
		}
		// Disabling a user deletes their tokens.
		_, _, err := s.TokenUser(ctx, sum("a2"))
		checkErr(t, "TokenUser after SetUserDisabled", err, store.ErrNotFound)
	})
}

func testSigningState(t *testing.T, open func(t *testing.T) store.Store) {
	s := withCredential(t, open)
	ctx := t.Context()
	c1 := fullCredential("c1", alice.ID, t0)
	c2 := fullCredential("c2", bob.ID, time.Time{})
	mustCreateCredential(t, s, c2)
	exp := t0.Add(5 * time.Minute)
	scal2 := sadFixture("s2", 2, exp)
	scal1 := store.SAD{Hash: sum("s1"), CredentialID: "c1", UserID: alice.ID, Remaining: 3, ExpiresAt: exp}
	expired := sadFixture("sx", 1, t0.Add(-time.Second))
	for _, sad := range []store.SAD{scal2, scal1, expired} {
		mustCreateSAD(t, s, sad)
	}
	state := func(c store.Credential) store.CredentialState {
		return store.CredentialState{ID: c.ID, UserID: c.UserID, Disabled: c.Disabled, PINFailures: c.PINFailures,
			Locked: c.Locked, CreatedAt: normTime(c.CreatedAt)}
	}
	cases := []struct {
		name    string
		cred    string
		sad     []byte
		want    store.SigningState
		wantErr error
	}{
		{"ok scal2", "c1", scal2.Hash, store.SigningState{Credential: state(c1), SAD: normSAD(scal2), HasSAD: true}, nil},
		{"ok scal1", "c1", scal1.Hash, store.SigningState{Credential: state(c1), SAD: normSAD(scal1), HasSAD: true}, nil},
		{"ok expired sad", "c1", expired.Hash, store.SigningState{Credential: state(c1), SAD: normSAD(expired), HasSAD: true}, nil},
		{"ok another credential's sad", "c2", scal1.Hash, store.SigningState{Credential: state(c2), SAD: normSAD(scal1), HasSAD: true}, nil},
		{"ok unknown sad", "c1", sum("nope"), store.SigningState{Credential: state(c1)}, nil},
		{"ok no sad", "c2", nil, store.SigningState{Credential: state(c2)}, nil},
		{"fail unknown credential", "c9", scal1.Hash, store.SigningState{}, store.ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.SigningState(ctx, tc.cred, tc.sad)
			if checkErr(t, "SigningState", err, tc.wantErr) && tc.wantErr == nil {
				checkEqual(t, "SigningState", got, tc.want)
			}
		})
	}
	t.Run("ok follows changes", func(t *testing.T) {
		if err := s.SetCredentialDisabled(ctx, "c1", true); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.RecordPINFailure(ctx, "c1", 1); err != nil {
			t.Fatal(err)
		}
		if err := s.ConsumeSAD(ctx, scal1.Hash, 1, t0, nil); err != nil {
			t.Fatal(err)
		}
		got, err := s.SigningState(ctx, "c1", scal1.Hash)
		if err != nil {
			t.Fatal(err)
		}
		wantC := state(c1)
		wantC.Disabled, wantC.PINFailures, wantC.Locked = true, 1, true
		wantS := normSAD(scal1)
		wantS.Remaining = 2
		checkEqual(t, "SigningState", got, store.SigningState{Credential: wantC, SAD: wantS, HasSAD: true})
		if err := s.DeleteSAD(ctx, scal1.Hash); err != nil {
			t.Fatal(err)
		}
		if got, err = s.SigningState(ctx, "c1", scal1.Hash); err != nil || got.HasSAD {
			t.Errorf("SigningState after DeleteSAD: HasSAD %v, %v; want false, nil", got.HasSAD, err)
		}
		if err := s.DeleteCredential(ctx, "c2"); err != nil {
			t.Fatal(err)
		}
		_, err = s.SigningState(ctx, "c2", nil)
		checkErr(t, "SigningState after DeleteCredential", err, store.ErrNotFound)
	})
}
