package service_test

import (
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/service"
)

// TestAuthorizeCounts: numSignatures lies between 1 and the credential's
// multisign; with hashes it is their number; SCAL 2 needs hashes.
func TestAuthorizeCounts(t *testing.T) {
	f := newFixture(t)
	scal1, _ := f.credential(t, nil) // multisign 3
	scal2, _ := f.credential(t, func(s *service.CredentialSpec) { s.SCAL = 2 })
	a, b := digest("a"), digest("b")
	for _, tc := range []struct {
		name   string
		cred   string
		n      int
		hashes [][]byte
		kind   error
		desc   string
	}{
		{"ok one", scal1, 1, nil, nil, ""},
		{"ok multisign", scal1, 3, nil, nil, ""},
		{"ok scal2 with hashes", scal2, 2, [][]byte{a, b}, nil, ""},
		{"fail zero", scal1, 0, nil, service.ErrInvalidRequest, "numSignatures"},
		{"fail negative", scal1, -1, nil, service.ErrInvalidRequest, "numSignatures"},
		{"fail above multisign", scal1, 4, nil, service.ErrInvalidRequest, "between 1 and 3"},
		{"fail scal2 without hashes", scal2, 1, nil, service.ErrInvalidRequest, "hashes"},
		{"fail count is not the hashes'", scal2, 1, [][]byte{a, b}, service.ErrInvalidRequest, "does not match"},
		{"fail more hashes than multisign", scal1, 4, [][]byte{a, b, digest("c"), digest("d")}, service.ErrInvalidRequest, "between 1 and 3"},
		{"fail another's credential", "nope", 1, nil, service.ErrInvalidRequest, "credentialID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sad, err := f.authorize(t, f.alice, tc.cred, tc.n, tc.hashes...)
			wantKind(t, err, tc.kind)
			if err != nil && !strings.Contains(err.Error(), tc.desc) {
				t.Errorf("error %q does not say %q", err, tc.desc)
			}
			if (err == nil) != (sad.Value != "") {
				t.Errorf("SAD %q with error %v", sad.Value, err)
			}
		})
	}
	t.Run("fail bob authorizes alice's credential", func(t *testing.T) {
		_, err := f.authorize(t, f.bob, scal1, 1)
		wantKind(t, err, service.ErrInvalidRequest)
		if got := f.Credential(t, scal1).PINFailures; got != 0 {
			t.Errorf("bob's attempt counted against alice's PIN: %d failures", got)
		}
	})
}

// TestPINCountingAndLock: every wrong PIN counts, the credential locks at
// the limit and then refuses the right PIN too, a right PIN before the
// limit resets the count, and only unlock clears the lock.
func TestPINCountingAndLock(t *testing.T) {
	f := newFixture(t) // PINRetries 3
	id, _ := f.credential(t, nil)
	try := func(value string) error {
		_, err := f.Service.Authorize(t.Context(), f.alice, service.AuthorizeRequest{CredentialID: id, NumSignatures: 1,
			AuthData: []csc.AuthData{{ID: service.FactorPIN, Value: value}}})
		return err
	}
	steps := []struct {
		name     string
		pin      string
		kind     error
		desc     string
		failures int
		locked   bool
	}{
		{"fail first wrong PIN", "000000", service.ErrInvalidPIN, "2 attempts left", 1, false},
		{"fail second wrong PIN", "000001", service.ErrInvalidPIN, "1 attempts left", 2, false},
		{"ok right PIN resets the count", pin, nil, "", 0, false},
		{"fail wrong again", "000000", service.ErrInvalidPIN, "2 attempts left", 1, false},
		{"fail wrong twice more", "000000", service.ErrInvalidPIN, "1 attempts left", 2, false},
		{"fail third wrong PIN locks", "000000", service.ErrLocked, "now locked after 3", 3, true},
		{"fail right PIN while locked", pin, service.ErrLocked, "locked", 3, true},
		{"fail wrong PIN while locked does not count", "000000", service.ErrLocked, "locked", 3, true},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			err := try(s.pin)
			wantKind(t, err, s.kind)
			if err != nil && !strings.Contains(err.Error(), s.desc) {
				t.Errorf("error %q does not say %q", err, s.desc)
			}
			c := f.Credential(t, id)
			if c.PINFailures != s.failures || c.Locked != s.locked {
				t.Errorf("failures %d locked %v, want %d %v", c.PINFailures, c.Locked, s.failures, s.locked)
			}
		})
	}
	t.Run("ok unlock clears the lock and the count", func(t *testing.T) {
		if err := f.Service.Unlock(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		if err := try(pin); err != nil {
			t.Fatal(err)
		}
		if c := f.Credential(t, id); c.PINFailures != 0 || c.Locked {
			t.Errorf("after unlock: failures %d locked %v", c.PINFailures, c.Locked)
		}
	})
	t.Run("fail a locked credential cannot sign with an earlier SAD", func(t *testing.T) {
		sad := f.mustAuthorize(t, id, 2)
		for range 3 {
			_ = try("999999")
		}
		_, err := f.sign(t.Context(), f.alice, id, sad, digest("x"))
		wantKind(t, err, service.ErrLocked)
	})
}

// TestFactorsShape: the factors a credential asks for, each once, and no
// others.
func TestFactorsShape(t *testing.T) {
	f := newFixture(t)
	pinOnly, _ := f.credential(t, nil)
	both, uri := f.credential(t, func(s *service.CredentialSpec) { s.OTP = "totp" })
	otpOnly, _ := f.credential(t, func(s *service.CredentialSpec) { s.PIN = ""; s.OTP = "totp" })
	for _, tc := range []struct {
		name string
		cred string
		data []csc.AuthData
		kind error
		desc string
	}{
		{"fail no factor", pinOnly, nil, service.ErrInvalidRequest, "Missing authData PIN"},
		{"fail PIN twice", pinOnly, []csc.AuthData{{ID: "PIN", Value: pin}, {ID: "PIN", Value: pin}}, service.ErrInvalidRequest, "repeated"},
		{"fail unknown factor", pinOnly, []csc.AuthData{{ID: "PIN", Value: pin}, {ID: "FACE", Value: "x"}}, service.ErrInvalidRequest, "not an authentication object"},
		{"fail OTP the credential has not", pinOnly, []csc.AuthData{{ID: "PIN", Value: pin}, {ID: "OTP", Value: "123456"}}, service.ErrInvalidRequest, "OTP is not"},
		{"fail PIN the credential has not", otpOnly, []csc.AuthData{{ID: "PIN", Value: pin}, {ID: "OTP", Value: "123456"}}, service.ErrInvalidRequest, "PIN is not"},
		{"fail PIN without the OTP", both, []csc.AuthData{{ID: "PIN", Value: pin}}, service.ErrInvalidRequest, "Missing authData OTP"},
		{"fail OTP without the PIN", both, []csc.AuthData{{ID: "OTP", Value: totpAt(t, uri, f.Clock.Now())}}, service.ErrInvalidRequest, "Missing authData PIN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.Service.Authorize(t.Context(), f.alice, service.AuthorizeRequest{CredentialID: tc.cred, NumSignatures: 1, AuthData: tc.data})
			wantKind(t, err, tc.kind)
			if err != nil && !strings.Contains(err.Error(), tc.desc) {
				t.Errorf("error %q does not say %q", err, tc.desc)
			}
			if c := f.Credential(t, tc.cred); c.PINFailures != 0 {
				t.Errorf("a malformed request counted as a failure: %d", c.PINFailures)
			}
		})
	}
}

// TestTOTP: a code is accepted one step either side of now, once: its step
// and every earlier one are spent; a wrong OTP counts like a wrong PIN,
// and with a wrong PIN the OTP is not even spent.
func TestTOTP(t *testing.T) {
	f := newFixture(t)
	f.Clock.Advance(time.Duration(30-f.Clock.Now().Unix()%30) * time.Second) // at the start of a step
	id, uri := f.credential(t, func(s *service.CredentialSpec) { s.OTP = "totp" })
	try := func(p, code string) error {
		_, err := f.Service.Authorize(t.Context(), f.alice, service.AuthorizeRequest{CredentialID: id, NumSignatures: 1,
			AuthData: []csc.AuthData{{ID: service.FactorPIN, Value: p}, {ID: service.FactorOTP, Value: code}}})
		return err
	}
	step := 30 * time.Second
	code := func(d time.Duration) string { return totpAt(t, uri, f.Clock.Now().Add(d)) }
	steps := []struct {
		name     string
		pin      string
		code     func() string
		kind     error
		failures int
	}{
		{"fail 2 steps behind", pin, func() string { return code(-2 * step) }, service.ErrInvalidOTP, 1},
		{"fail 2 steps ahead", pin, func() string { return code(2 * step) }, service.ErrInvalidOTP, 2},
		{"fail wrong PIN with the right OTP locks", "000000", func() string { return code(-step) }, service.ErrLocked, 3},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			wantKind(t, try(s.pin, s.code()), s.kind)
			if got := f.Credential(t, id).PINFailures; got != s.failures {
				t.Errorf("failures %d, want %d", got, s.failures)
			}
		})
	}
	if err := f.Service.Unlock(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	reuse := []struct {
		name string
		code func() string
		kind error
	}{
		{"ok one step behind (not spent by the wrong PIN)", func() string { return code(-step) }, nil},
		{"fail the same code again", func() string { return code(-step) }, service.ErrInvalidOTP},
		{"ok current step", func() string { return code(0) }, nil},
		{"fail current step again", func() string { return code(0) }, service.ErrInvalidOTP},
		{"fail an earlier step after a later one", func() string { return code(-step) }, service.ErrInvalidOTP},
		{"ok one step ahead", func() string { return code(step) }, nil},
		{"fail the current step once ahead was used", func() string { return code(0) }, service.ErrInvalidOTP},
	}
	for _, s := range reuse {
		t.Run(s.name, func(t *testing.T) {
			wantKind(t, try(pin, s.code()), s.kind)
		})
	}
	t.Run("ok a new step after the clock moves", func(t *testing.T) {
		if err := f.Service.Unlock(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		f.Clock.Advance(2 * step)
		wantKind(t, try(pin, code(0)), nil)
	})
}
