package service_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/notify"
	"github.com/csctoken/csctoken/rssp/service"
)

// approvalToken is the token of the last approval link sent.
func (f *fixture) approvalToken(t *testing.T) string {
	t.Helper()
	m, ok := f.Outbox.Last()
	if !ok || m.Kind != notify.Approval {
		t.Fatalf("no approval link sent: %+v", m)
	}
	u, err := url.Parse(m.Link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("t")
}

// TestOutOfBand: a PasswordOOB authorization gives a handle; the user's
// decision, once, turns it into one SAD or access_denied, for its owner
// only, before it expires.
func TestOutOfBand(t *testing.T) {
	f := newFixture(t)
	id, _ := f.credential(t, func(s *service.CredentialSpec) { s.OOB = true })
	start := func(t *testing.T) string {
		t.Helper()
		sad, err := f.Service.Authorize(t.Context(), f.alice, service.AuthorizeRequest{CredentialID: id, NumSignatures: 2,
			AuthData: []csc.AuthData{{ID: service.FactorPIN, Value: pin}}})
		if err != nil || sad.Handle == "" || sad.Value != "" {
			t.Fatalf("Authorize: %+v, %v", sad, err)
		}
		return sad.Handle
	}
	check := func(p service.Principal, handle string) (service.SAD, error) {
		return f.Service.AuthorizeCheck(t.Context(), p, handle)
	}
	t.Run("ok approved gives one SAD", func(t *testing.T) {
		h := start(t)
		tok := f.approvalToken(t)
		if sad, err := check(f.alice, h); err != nil || sad.Handle != h || sad.Value != "" {
			t.Fatalf("before the decision: %+v, %v", sad, err)
		}
		if _, err := f.Service.ApprovalRequest(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
		if err := f.Service.Decide(t.Context(), tok, true); err != nil {
			t.Fatal(err)
		}
		wantKind(t, f.Service.Decide(t.Context(), tok, false), service.ErrInvalidRequest)
		_, err := f.Service.ApprovalRequest(t.Context(), tok)
		wantKind(t, err, service.ErrInvalidRequest)
		sad, err := check(f.alice, h)
		if err != nil || sad.Value == "" {
			t.Fatalf("after approval: %+v, %v", sad, err)
		}
		if _, err := f.sign(t.Context(), f.alice, id, sad.Value, digest("x"), digest("y")); err != nil {
			t.Fatalf("the SAD: %v", err)
		}
		_, err = check(f.alice, h)
		wantKind(t, err, service.ErrInvalidRequest)
	})
	t.Run("fail denied", func(t *testing.T) {
		h := start(t)
		if err := f.Service.Decide(t.Context(), f.approvalToken(t), false); err != nil {
			t.Fatal(err)
		}
		_, err := check(f.alice, h)
		wantKind(t, err, service.ErrAccessDenied)
	})
	t.Run("fail another user's handle, which stays", func(t *testing.T) {
		h := start(t)
		if err := f.Service.Decide(t.Context(), f.approvalToken(t), true); err != nil {
			t.Fatal(err)
		}
		_, err := check(f.bob, h)
		wantKind(t, err, service.ErrInvalidRequest)
		if sad, err := check(f.alice, h); err != nil || sad.Value == "" {
			t.Fatalf("bob's attempt took alice's authorization: %+v, %v", sad, err)
		}
	})
	t.Run("fail expired", func(t *testing.T) {
		h := start(t)
		tok := f.approvalToken(t)
		f.Clock.Advance(5 * time.Minute)
		wantKind(t, f.Service.Decide(t.Context(), tok, true), service.ErrInvalidRequest)
		_, err := check(f.alice, h)
		wantKind(t, err, service.ErrInvalidRequest)
	})
	t.Run("fail wrong PIN sends nothing", func(t *testing.T) {
		before, _ := f.Outbox.Last()
		_, err := f.Service.Authorize(t.Context(), f.alice, service.AuthorizeRequest{CredentialID: id, NumSignatures: 1,
			AuthData: []csc.AuthData{{ID: service.FactorPIN, Value: "000000"}}})
		wantKind(t, err, service.ErrInvalidPIN)
		if after, _ := f.Outbox.Last(); after != before {
			t.Errorf("a wrong PIN sent %+v", after)
		}
	})
}

// TestOnlineOTP: getChallenge sends a code that serves once, until it
// expires or a newer one replaces it; a wrong code counts like a wrong
// PIN.
func TestOnlineOTP(t *testing.T) {
	f := newFixture(t)
	id, _ := f.credential(t, func(s *service.CredentialSpec) { s.PIN = ""; s.OTP = service.OnlineOTP })
	challenge := func(t *testing.T) string {
		t.Helper()
		if err := f.Service.GetChallenge(t.Context(), f.alice, id, service.FactorOTP); err != nil {
			t.Fatal(err)
		}
		m, ok := f.Outbox.Last()
		if !ok || m.Kind != notify.OTP || len(m.Code) != 6 {
			t.Fatalf("no code sent: %+v", m)
		}
		return m.Code
	}
	try := func(code string) error {
		_, err := f.Service.Authorize(t.Context(), f.alice, service.AuthorizeRequest{CredentialID: id, NumSignatures: 1,
			AuthData: []csc.AuthData{{ID: service.FactorOTP, Value: code}}})
		return err
	}
	wrong := func(code string) string {
		if code == "000000" {
			return "000001"
		}
		return "000000"
	}
	t.Run("ok once", func(t *testing.T) {
		code := challenge(t)
		wantKind(t, try(code), nil)
		wantKind(t, try(code), service.ErrInvalidOTP)
	})
	t.Run("fail replaced by a newer one", func(t *testing.T) {
		old := challenge(t)
		code := challenge(t)
		if old != code {
			wantKind(t, try(old), service.ErrInvalidOTP)
		}
		wantKind(t, try(code), nil)
	})
	t.Run("fail expired", func(t *testing.T) {
		code := challenge(t)
		f.Clock.Advance(5 * time.Minute)
		wantKind(t, try(code), service.ErrInvalidOTP)
	})
	t.Run("fail wrong code locks at the limit", func(t *testing.T) {
		if err := f.Service.Unlock(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		code := challenge(t)
		wantKind(t, try(wrong(code)), service.ErrInvalidOTP)
		wantKind(t, try(wrong(code)), service.ErrInvalidOTP)
		wantKind(t, try(wrong(code)), service.ErrLocked)
		wantKind(t, try(code), service.ErrLocked)
		err := f.Service.GetChallenge(t.Context(), f.alice, id, service.FactorOTP)
		wantKind(t, err, service.ErrLocked)
	})
	t.Run("fail another user's credential", func(t *testing.T) {
		err := f.Service.GetChallenge(t.Context(), f.bob, id, service.FactorOTP)
		wantKind(t, err, service.ErrInvalidRequest)
	})
	t.Run("fail a credential without online OTP", func(t *testing.T) {
		other, _ := f.credential(t, nil)
		err := f.Service.GetChallenge(t.Context(), f.alice, other, service.FactorOTP)
		wantKind(t, err, service.ErrInvalidRequest)
	})
}
