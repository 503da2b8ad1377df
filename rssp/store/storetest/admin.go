package storetest

import (
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

// testAdmin: the administrator's changes of users and credentials.
func testAdmin(t *testing.T, open func(t *testing.T) store.Store) {
	s := withUsers(t, open)
	ctx := t.Context()
	exp := t0.Add(time.Hour)
	token := func(name, user string) store.Token {
		return store.Token{Hash: sum(name), Kind: store.AccessToken, UserID: user, Scope: "service", Family: name, ExpiresAt: exp, CreatedAt: t0}
	}
	for _, tok := range []store.Token{token("a1", alice.ID), token("a2", alice.ID), token("b1", bob.ID)} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	mustCreateCredential(t, s, fullCredential("c1", alice.ID, t0))
	mustCreateCredential(t, s, fullCredential("c2", alice.ID, t0.Add(time.Second)))
	mustCreateSAD(t, s, store.SAD{Hash: sum("sad-c1"), CredentialID: "c1", UserID: alice.ID, Remaining: 1, ExpiresAt: exp, CreatedAt: t0})

	t.Run("ok users by name", func(t *testing.T) {
		us, err := s.Users(ctx)
		if err != nil {
			t.Fatal(err)
		}
		checkEqual(t, "users", us, []store.User{normUser(alice), normUser(bob)})
	})
	t.Run("ok password change forgets the tokens", func(t *testing.T) {
		checkErr(t, "SetUserPassword", s.SetUserPassword(ctx, alice.ID, "$argon2id$new"), nil)
		u, err := s.UserByID(ctx, alice.ID)
		if err != nil || u.PasswordHash != "$argon2id$new" {
			t.Errorf("user after the change: %+v, %v", u, err)
		}
		for _, n := range []string{"a1", "a2"} {
			_, err := s.Token(ctx, sum(n))
			checkErr(t, "Token "+n, err, store.ErrNotFound)
		}
		_, err = s.Token(ctx, sum("b1"))
		checkErr(t, "another user's token", err, nil)
	})
	t.Run("ok disable and enable", func(t *testing.T) {
		checkErr(t, "SetUserDisabled", s.SetUserDisabled(ctx, bob.ID, false), nil)
		if u, _ := s.UserByID(ctx, bob.ID); u.Disabled {
			t.Error("still disabled")
		}
		_, err := s.Token(ctx, sum("b1"))
		checkErr(t, "token of a disabled user", err, store.ErrNotFound)
		checkErr(t, "SetUserDisabled", s.SetUserDisabled(ctx, bob.ID, true), nil)
		if u, _ := s.UserByID(ctx, bob.ID); !u.Disabled {
			t.Error("not disabled")
		}
	})
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"fail password of an unknown user", s.SetUserPassword(ctx, "u-nobody", "h"), store.ErrNotFound},
		{"fail disable an unknown user", s.SetUserDisabled(ctx, "u-nobody", true), store.ErrNotFound},
		{"fail delete a user with credentials", s.DeleteUser(ctx, alice.ID), store.ErrInUse},
		{"fail delete an unknown user", s.DeleteUser(ctx, "u-nobody"), store.ErrNotFound},
		{"fail delete an unknown credential", s.DeleteCredential(ctx, "c-nobody"), store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) { checkErr(t, tc.name, tc.err, tc.want) })
	}
	t.Run("ok delete credentials, then the user", func(t *testing.T) {
		for _, id := range []string{"c1", "c2"} {
			checkErr(t, "DeleteCredential", s.DeleteCredential(ctx, id), nil)
			_, err := s.Credential(ctx, id)
			checkErr(t, "deleted credential", err, store.ErrNotFound)
		}
		_, err := s.SAD(ctx, sum("sad-c1"))
		checkErr(t, "SAD of a deleted credential", err, store.ErrNotFound)
		if err := s.CreateToken(ctx, token("a3", alice.ID)); err != nil {
			t.Fatal(err)
		}
		checkErr(t, "DeleteUser", s.DeleteUser(ctx, alice.ID), nil)
		_, err = s.UserByID(ctx, alice.ID)
		checkErr(t, "deleted user", err, store.ErrNotFound)
		_, err = s.Token(ctx, sum("a3"))
		checkErr(t, "token of a deleted user", err, store.ErrNotFound)
		us, err := s.Users(ctx)
		if err != nil || len(us) != 1 || us[0].ID != bob.ID {
			t.Errorf("users after the delete: %v, %v", us, err)
		}
		// The name is free again.
		mustCreateUser(t, s, alice)
	})
}
