package storetest

// The conformance tests of bearer tokens and their rotation.

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

func testTokens(t *testing.T, open func(t *testing.T) store.Store) {
	s := withUsers(t, open)
	exp := t0.Add(time.Hour)
	tok := func(name string, kind store.TokenKind, user, family string) store.Token {
		return store.Token{Hash: sum(name), Kind: kind, UserID: user, ClientID: "client-" + name, Scope: "service",
			Family: family, ExpiresAt: exp, CreatedAt: t0}
	}
	a1 := tok("a1", store.AccessToken, alice.ID, "fam-a")
	r1 := tok("r1", store.RefreshToken, alice.ID, "fam-a")
	a2 := tok("a2", store.AccessToken, alice.ID, "fam-b")
	b1 := tok("b1", store.AccessToken, bob.ID, "")
	b1.ClientID, b1.Scope, b1.CreatedAt = "", "credential", time.Time{}
	old := tok("old", store.RefreshToken, bob.ID, "fam-c")
	old.ExpiresAt, old.Revoked = t0.Add(-time.Hour), true

	creates := []struct {
		name    string
		tok     store.Token
		wantErr error
	}{
		{"ok access", a1, nil},
		{"ok refresh same family", r1, nil},
		{"ok other family", a2, nil},
		{"ok no family no client", b1, nil},
		{"ok expired and revoked", old, nil},
		{"fail taken hash", tok("a1", store.RefreshToken, bob.ID, "x"), store.ErrExists},
		{"fail unknown user", tok("n1", store.AccessToken, "u-nobody", "x"), store.ErrNotFound},
		{"fail empty hash", store.Token{Kind: store.AccessToken, UserID: alice.ID, ExpiresAt: exp}, errInvalid},
		{"fail no expiry", store.Token{Hash: sum("n2"), Kind: store.AccessToken, UserID: alice.ID}, errInvalid},
	}
	for _, tc := range creates {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "CreateToken", s.CreateToken(t.Context(), tc.tok), tc.wantErr)
		})
	}

	check := func(t *testing.T, want store.Token) {
		t.Helper()
		got, err := s.Token(t.Context(), want.Hash)
		if err != nil {
			t.Fatalf("Token: %v", err)
		}
		checkEqual(t, "token", got, normToken(want))
	}
	for _, want := range []store.Token{a1, r1, a2, b1, old} {
		t.Run("ok get "+want.ClientID, func(t *testing.T) { check(t, want) })
	}
	t.Run("fail get unknown", func(t *testing.T) {
		_, err := s.Token(t.Context(), sum("nope"))
		checkErr(t, "Token", err, store.ErrNotFound)
	})

	revokes := []struct {
		name    string
		hash    []byte
		wantErr error
	}{
		{"ok revoke", a2.Hash, nil},
		{"ok revoke again", a2.Hash, nil},
		{"fail revoke unknown", sum("nope"), store.ErrNotFound},
	}
	for _, tc := range revokes {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "RevokeToken", s.RevokeToken(t.Context(), tc.hash), tc.wantErr)
		})
	}
	a2.Revoked = true
	t.Run("ok revoked", func(t *testing.T) { check(t, a2) })

	families := []struct {
		name   string
		family string
		want   []store.Token // every token after the call
	}{
		{"ok unknown family", "fam-x", []store.Token{a1, r1, a2, b1, old}},
		{"ok empty family revokes nothing", "", []store.Token{a1, r1, a2, b1, old}},
		{"ok family", "fam-a", []store.Token{revoked(a1), revoked(r1), a2, b1, old}},
		{"ok family again", "fam-a", []store.Token{revoked(a1), revoked(r1), a2, b1, old}},
	}
	for _, tc := range families {
		t.Run("revoke family "+tc.name, func(t *testing.T) {
			if err := s.RevokeFamily(t.Context(), tc.family); err != nil {
				t.Fatalf("RevokeFamily: %v", err)
			}
			for _, want := range tc.want {
				check(t, want)
			}
		})
	}
}

func revoked(k store.Token) store.Token {
	k.Revoked = true
	return k
}

// testRotateToken: the compare-and-set of a refresh token's rotation.
func testRotateToken(t *testing.T, open func(t *testing.T) store.Store) {
	s := withUsers(t, open)
	tok := store.Token{Hash: sum("rt"), Kind: store.RefreshToken, UserID: alice.ID, Family: "f",
		ExpiresAt: t0.Add(time.Hour), CreatedAt: t0}
	if err := s.CreateToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	next := func(name string) []store.Token {
		return []store.Token{
			{Hash: sum(name + " access"), Kind: store.AccessToken, UserID: alice.ID, Family: "f", ExpiresAt: t0.Add(time.Hour), CreatedAt: t0},
			{Hash: sum(name + " refresh"), Kind: store.RefreshToken, UserID: alice.ID, Family: "f", ExpiresAt: t0.Add(time.Hour), CreatedAt: t0},
		}
	}
	for _, tc := range []struct {
		name    string
		hash    []byte
		next    []store.Token
		wantErr error
	}{
		{"fail new token of an unknown user", tok.Hash, []store.Token{{Hash: sum("x"), Kind: store.AccessToken,
			UserID: "u-nobody", ExpiresAt: t0.Add(time.Hour)}}, store.ErrNotFound},
		{"fail new token without expiry", tok.Hash, []store.Token{{Hash: sum("y"), Kind: store.AccessToken, UserID: alice.ID}}, errInvalid},
		{"ok first rotation", tok.Hash, next("first"), nil},
		{"fail second rotation", tok.Hash, next("second"), store.ErrRevoked},
		{"fail unknown", sum("nope"), next("third"), store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "RotateToken", s.RotateToken(t.Context(), tc.hash, tc.next), tc.wantErr)
		})
	}
	got, err := s.Token(t.Context(), tok.Hash)
	if err != nil || !got.Revoked {
		t.Errorf("token after rotation: %+v, %v; want revoked", got, err)
	}
	// The winner's tokens exist; the failed calls' do not.
	for _, n := range next("first") {
		if _, err := s.Token(t.Context(), n.Hash); err != nil {
			t.Errorf("new token of the rotation: %v", err)
		}
	}
	for _, h := range [][]byte{sum("x"), sum("y"), next("second")[0].Hash, next("third")[0].Hash} {
		_, err := s.Token(t.Context(), h)
		checkErr(t, "token of a failed rotation", err, store.ErrNotFound)
	}
}

// testRotateTokenConcurrently: of many simultaneous rotations of one
// token, exactly one wins.
func testRotateTokenConcurrently(t *testing.T, open func(t *testing.T) store.Store) {
	s := withUsers(t, open)
	const racers = 20
	for round := range 5 {
		tok := store.Token{Hash: sum(fmt.Sprint("race ", round)), Kind: store.RefreshToken, UserID: alice.ID,
			Family: "f", ExpiresAt: t0.Add(time.Hour), CreatedAt: t0}
		if err := s.CreateToken(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
		var (
			wg    sync.WaitGroup
			won   atomic.Int32
			start = make(chan struct{})
		)
		for range racers {
			wg.Go(func() {
				<-start
				switch err := s.RotateToken(t.Context(), tok.Hash, nil); {
				case err == nil:
					won.Add(1)
				case errors.Is(err, store.ErrRevoked):
				default:
					t.Errorf("RotateToken: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := won.Load(); n != 1 {
			t.Fatalf("round %d: %d of %d simultaneous rotations won, want exactly 1", round, n, racers)
		}
	}
}
