package service_test

import (
	"testing"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/service"
)

// TestAccountState: the administrator's changes take effect at once: a
// disabled account or a new password ends the user's logins, a disabled
// or deleted credential stops signing, also with a SAD issued before.
func TestAccountState(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(f *fixture, credID string) error
		login  error // Login with the old password afterwards
		token  error // the access token issued before
		sign   error // a SAD issued before
	}{
		{"disable the user", func(f *fixture, _ string) error { return f.Service.SetUserDisabled(t.Context(), "alice", true) },
			service.ErrAuthentication, service.ErrInvalidToken, nil},
		{"new password", func(f *fixture, _ string) error {
			return f.Service.SetPassword(t.Context(), "alice", "another good password")
		}, service.ErrAuthentication, service.ErrInvalidToken, nil},
		{"disable the credential", func(f *fixture, id string) error { return f.Service.SetDisabled(t.Context(), id, true) },
			nil, nil, service.ErrDisabled},
		{"delete the credential", func(f *fixture, id string) error { return f.Service.DeleteCredential(t.Context(), id) },
			nil, nil, service.ErrInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			id, _ := f.credential(t, nil)
			tok, err := f.Service.Login(t.Context(), "alice", password, true)
			if err != nil {
				t.Fatal(err)
			}
			p, err := f.Service.Authenticate(t.Context(), tok.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			sad := f.mustAuthorize(t, id, 1)
			if err := tc.change(f, id); err != nil {
				t.Fatal(err)
			}
			_, err = f.Service.Login(t.Context(), "alice", password, false)
			wantKind(t, err, tc.login)
			_, err = f.Service.Authenticate(t.Context(), tok.AccessToken)
			if tc.token != nil && err == nil {
				t.Error("the access token still works")
			}
			if tc.token != nil {
				_, err = f.Service.Refresh(t.Context(), tok.RefreshToken)
				if err == nil {
					t.Error("the refresh token still works")
				}
			}
			if tc.sign != nil {
				_, err = f.sign(t.Context(), p, id, sad, digest("x"))
				wantKind(t, err, tc.sign)
				_, err = f.Service.Authorize(t.Context(), p, service.AuthorizeRequest{CredentialID: id, NumSignatures: 1,
					AuthData: []csc.AuthData{{ID: service.FactorPIN, Value: pin}}})
				wantKind(t, err, tc.sign)
			}
		})
	}
}
