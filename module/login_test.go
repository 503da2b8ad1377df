package module_test

import (
	"context"
	"crypto/elliptic"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/config"
	"github.com/csctoken/csctoken/module/fakeservice"
)

func (e *env) tokenFlags() uint {
	e.t.Helper()
	ti, err := e.m.GetTokenInfo(0)
	e.must(err)
	return ti.Flags
}

func TestLoginUserTypes(t *testing.T) {
	e := newEnv(t, nil)
	h := e.open(0, true)
	tests := []struct {
		name     string
		userType uint
		pin      []byte
		want     ck.Error
	}{
		{"fail SO (no read-only session, not logged in)", ck.CKU_SO, []byte("x"), ck.CKR_PIN_LOCKED},
		{"fail unknown type", 7, []byte("x"), ck.CKR_USER_TYPE_INVALID},
		{"fail NULL PIN in pin mode", ck.CKU_USER, nil, ck.CKR_ARGUMENTS_BAD},
		{"fail context-specific without operation", ck.CKU_CONTEXT_SPECIFIC, []byte("x"), ck.CKR_OPERATION_NOT_INITIALIZED},
		{"ok user", ck.CKU_USER, []byte(goodPIN), ck.CKR_OK},
		{"fail user again", ck.CKU_USER, []byte(goodPIN), ck.CKR_USER_ALREADY_LOGGED_IN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.wantRV(e.m.Login(h, tt.userType, tt.pin), tt.want)
		})
	}
	e.wantRV(e.m.Login(9999, ck.CKU_USER, []byte(goodPIN)), ck.CKR_SESSION_HANDLE_INVALID)
}

func TestWrongPINAtLogin(t *testing.T) {
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		f.AddRSA("rsa", 2048, 1, 3, module.AuthPIN)
	})
	h := e.open(0, false)
	steps := []struct {
		name  string
		pin   string
		want  ck.Error
		flags uint
	}{
		{"fail first wrong PIN", "000000", ck.CKR_PIN_INCORRECT, ck.CKF_USER_PIN_COUNT_LOW},
		{"fail final try", "000000", ck.CKR_PIN_INCORRECT, ck.CKF_USER_PIN_COUNT_LOW | ck.CKF_USER_PIN_FINAL_TRY},
		{"ok right PIN resets", goodPIN, ck.CKR_OK, 0},
	}
	pinFlags := uint(ck.CKF_USER_PIN_COUNT_LOW | ck.CKF_USER_PIN_FINAL_TRY | ck.CKF_USER_PIN_LOCKED)
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			e.wantRV(e.m.Login(h, ck.CKU_USER, []byte(s.pin)), s.want)
			if got := e.tokenFlags() & pinFlags; got != s.flags {
				t.Fatalf("PIN flags %#x, want %#x", got, s.flags)
			}
		})
	}
	e.must(e.m.Logout(h))
	// Three wrong PINs lock the credential.
	for range 2 {
		e.wantRV(e.m.Login(h, ck.CKU_USER, []byte("1")), ck.CKR_PIN_INCORRECT)
	}
	e.wantRV(e.m.Login(h, ck.CKU_USER, []byte("1")), ck.CKR_PIN_LOCKED)
	if e.tokenFlags()&ck.CKF_USER_PIN_LOCKED == 0 {
		t.Fatal("CKF_USER_PIN_LOCKED not set")
	}
	e.wantRV(e.m.Login(h, ck.CKU_USER, []byte(goodPIN)), ck.CKR_PIN_LOCKED)
	si, _ := e.m.GetSessionInfo(h)
	if si.State != ck.CKS_RO_PUBLIC_SESSION {
		t.Fatal("logged in after failures")
	}
}

func TestWrongPINAtSignSCAL2(t *testing.T) {
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		f.AddEC("ec", elliptic.P256(), 2, 1, module.AuthPIN)
	})
	h := e.open(0, false)
	// Only SCAL2: the PIN cannot be checked at login.
	e.must(e.m.Login(h, ck.CKU_USER, []byte("wrong")))
	key := e.key(h, ck.CKO_PRIVATE_KEY, "ec")
	_, err := e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key, []byte("x"))
	e.wantRV(err, ck.CKR_USER_NOT_LOGGED_IN)
	si, _ := e.m.GetSessionInfo(h)
	if si.State != ck.CKS_RO_PUBLIC_SESSION {
		t.Fatal("token still logged in after a wrong PIN at signing")
	}
	if e.tokenFlags()&ck.CKF_USER_PIN_COUNT_LOW == 0 {
		t.Fatal("count-low flag not set")
	}
	// The program asks again and signs.
	e.login(h)
	_, err = e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key, []byte("x"))
	e.must(err)
}

func TestServiceLoginFailures(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want ck.Error
	}{
		{"unreachable", module.ErrUnreachable, ck.CKR_DEVICE_ERROR},
		{"browser declined", module.ErrCanceled, ck.CKR_FUNCTION_CANCELED},
		{"expired", module.ErrNotLoggedIn, ck.CKR_USER_NOT_LOGGED_IN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.fake().Hook = func(_ context.Context, m string) error {
				if m == fakeservice.MLogin {
					return tt.err
				}
				return nil
			}
			h := e.open(0, false)
			e.wantRV(e.m.Login(h, ck.CKU_USER, []byte(goodPIN)), tt.want)
		})
	}
	t.Run("authorize unreachable at login", func(t *testing.T) {
		e := newEnv(t, nil)
		e.fake().Hook = func(_ context.Context, m string) error {
			if m == fakeservice.MAuthorize {
				return module.ErrUnreachable
			}
			return nil
		}
		h := e.open(0, false)
		e.wantRV(e.m.Login(h, ck.CKU_USER, []byte(goodPIN)), ck.CKR_DEVICE_ERROR)
	})
}

func TestBrowserMode(t *testing.T) {
	svc := pinService("Browser")
	svc.CredentialAuth = config.CredentialAuthBrowser
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		f.AddEC("ec", elliptic.P256(), 2, 1, module.AuthPIN)
		f.AddEC("ec1", elliptic.P256(), 1, 3, module.AuthPIN)
		f.NeedInteractiveLogin = true
	}, withService(svc))
	e.wantRV(e.m.Refresh(context.Background(), 0), ck.CKR_USER_NOT_LOGGED_IN) // needs the browser
	h := e.open(0, false)
	if n := len(e.find(h)); n != 1 {
		t.Fatalf("objects before login: %d", n)
	}
	// C_Login with a NULL PIN (protected authentication path) logs in to
	// the service; the PIN is never used.
	e.must(e.m.Login(h, ck.CKU_USER, nil))
	e.must(e.m.Logout(h))
	// Private keys are public objects: usable without C_Login.
	key := e.key(h, ck.CKO_PRIVATE_KEY, "ec")
	if e.attr(h, key, ck.CKA_PRIVATE)[0] != 0 {
		t.Fatal("private key is CKA_PRIVATE in browser mode")
	}
	e.fake().ResetCalls()
	_, err := e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key, []byte("x"))
	e.must(err)
	if e.fake().Calls(fakeservice.MBrowser) != 1 || e.fake().Calls(fakeservice.MAuthorize) != 0 {
		t.Fatalf("browser %d, explicit %d", e.fake().Calls(fakeservice.MBrowser), e.fake().Calls(fakeservice.MAuthorize))
	}
	if r := e.fake().AuthorizeRequests()[0]; len(r.PIN) != 0 || len(r.Hashes) != 1 || r.NumSignatures != 1 {
		t.Fatalf("browser request %+v", r)
	}
	// SCAL1 batches: one consent for three signatures.
	key1 := e.key(h, ck.CKO_PRIVATE_KEY, "ec1")
	for range 3 {
		_, err := e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key1, []byte("y"))
		e.must(err)
	}
	if n := e.fake().Calls(fakeservice.MBrowser); n != 2 {
		t.Fatalf("consents = %d, want 2", n)
	}
	// The user declines.
	e.fake().DenyBrowser = true
	_, err = e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key, []byte("x"))
	e.wantRV(err, ck.CKR_FUNCTION_CANCELED)
}

func TestOAuth2CodeCredentialInPinMode(t *testing.T) {
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		f.AddEC("otp", elliptic.P256(), 2, 1, module.AuthBrowser)
		f.AddEC("none", elliptic.P256(), 1, 2, module.AuthNone)
	})
	h := e.open(0, false)
	e.login(h)
	_, err := e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, e.key(h, ck.CKO_PRIVATE_KEY, "otp"), []byte("x"))
	e.must(err)
	if e.fake().Calls(fakeservice.MBrowser) != 1 {
		t.Fatal("credential needing the browser not authorized there")
	}
	_, err = e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, e.key(h, ck.CKO_PRIVATE_KEY, "none"), []byte("x"))
	e.must(err)
	for _, r := range e.fake().AuthorizeRequests() {
		if r.CredentialID == "none" && len(r.PIN) != 0 {
			t.Fatal("PIN sent for a credential without factors")
		}
	}
}

func TestAlwaysAuthenticate(t *testing.T) {
	svc := pinService("Always")
	svc.AlwaysAuthenticate = true
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		f.AddEC("ec1", elliptic.P256(), 1, 5, module.AuthPIN)
		f.AddEC("ec2", elliptic.P256(), 2, 1, module.AuthPIN)
	}, withService(svc))
	h := e.open(0, false)
	e.login(h)
	for _, id := range []string{"ec1", "ec2"} {
		t.Run(id, func(t *testing.T) {
			key := e.key(h, ck.CKO_PRIVATE_KEY, id)
			if e.attr(h, key, ck.CKA_ALWAYS_AUTHENTICATE)[0] != 1 {
				t.Fatal("CKA_ALWAYS_AUTHENTICATE not set")
			}
			mech := ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}
			// Without the context login the signature is refused.
			e.must(e.m.SignInit(h, mech, key))
			_, err := e.m.Sign(h, []byte("x"), make([]byte, 64))
			e.wantRV(err, ck.CKR_USER_NOT_LOGGED_IN)
			// With it, it works.
			e.must(e.m.SignInit(h, mech, key))
			e.must(e.m.Login(h, ck.CKU_CONTEXT_SPECIFIC, []byte(goodPIN)))
			_, err = e.m.Sign(h, []byte("x"), make([]byte, 64))
			e.must(err)
		})
	}
	// A wrong context PIN on SCAL1 is reported at once; the operation stays.
	key := e.key(h, ck.CKO_PRIVATE_KEY, "ec1")
	e.must(e.m.SignInit(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key))
	e.wantRV(e.m.Login(h, ck.CKU_CONTEXT_SPECIFIC, []byte("bad")), ck.CKR_PIN_INCORRECT)
	e.must(e.m.Login(h, ck.CKU_CONTEXT_SPECIFIC, []byte(goodPIN)))
	_, err := e.m.Sign(h, []byte("x"), make([]byte, 64))
	e.must(err)
	// Without always_authenticate the attribute is false (TestAttributes).
}

func TestExpiredServiceTokenAtSign(t *testing.T) {
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		f.AddEC("ec", elliptic.P256(), 2, 1, module.AuthPIN)
	})
	h := e.open(0, false)
	e.login(h)
	key := e.key(h, ck.CKO_PRIVATE_KEY, "ec")
	e.fake().Hook = func(_ context.Context, m string) error {
		if m == fakeservice.MAuthorize {
			return module.ErrNotLoggedIn
		}
		return nil
	}
	_, err := e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key, []byte("x"))
	e.wantRV(err, ck.CKR_USER_NOT_LOGGED_IN)
	e.fake().Hook = nil
	e.login(h) // not CKR_USER_ALREADY_LOGGED_IN
	if n := e.fake().Calls(fakeservice.MLogin); n != 2 {
		t.Fatalf("service logins = %d", n)
	}
}

func TestListingTTLRefresh(t *testing.T) {
	e := newEnv(t, nil, withOptions(func(o *module.Options) {
		o.NoBackgroundRefresh = false
		o.ListingTTL = time.Nanosecond
	}))
	h := e.open(0, false)
	deadline := time.Now().Add(5 * time.Second)
	for e.fake().Calls(fakeservice.MList) < 2 && time.Now().Before(deadline) {
		e.find(h) // each search may start a background refresh; never waits
		time.Sleep(10 * time.Millisecond)
	}
	if n := e.fake().Calls(fakeservice.MList); n < 2 {
		t.Fatalf("listings = %d: no TTL refresh", n)
	}
	if n := len(e.find(h, class(ck.CKO_CERTIFICATE))); n != 4 {
		t.Fatalf("certificates = %d", n)
	}
}

// TestLoginPreauthorizesFew: C_Login checks the PIN on one credential
// first (a wrong PIN costs one authorization), then pre-authorizes at most
// eight SCAL1 credentials; the others authorize at their first signature.
func TestLoginPreauthorizesFew(t *testing.T) {
	const n = 20
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		for i := range n {
			f.AddEC(fmt.Sprintf("ec%02d", i), elliptic.P256(), 1, 5, module.AuthPIN)
		}
	})
	h := e.open(0, false)
	e.fake().ResetCalls()
	e.wantRV(e.m.Login(h, ck.CKU_USER, []byte("000000")), ck.CKR_PIN_INCORRECT)
	if got := e.fake().Calls(fakeservice.MAuthorize); got != 1 {
		t.Fatalf("a wrong PIN made %d authorizations, want 1", got)
	}
	e.fake().ResetCalls()
	e.login(h)
	if got := e.fake().Calls(fakeservice.MAuthorize); got != 8 {
		t.Fatalf("C_Login made %d authorizations for %d credentials, want 8", got, n)
	}
	for _, id := range []string{"ec00", fmt.Sprintf("ec%02d", n-1)} {
		e.fake().ResetCalls()
		_, err := e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, e.key(h, ck.CKO_PRIVATE_KEY, id), []byte("x"))
		e.must(err)
		want := map[string]int{"ec00": 0, fmt.Sprintf("ec%02d", n-1): 1}[id] // pre-authorized, or not
		if got := e.fake().Calls(fakeservice.MAuthorize); got != want {
			t.Fatalf("signing with %s made %d authorizations, want %d", id, got, want)
		}
	}
}

// blockAuthorizations makes every Authorize after the first wait until
// release is closed (or its context ends, reported on canceled).
func blockAuthorizations(f *fakeservice.Fake) (release chan struct{}, canceled chan struct{}) {
	release, canceled = make(chan struct{}), make(chan struct{}, 16)
	var n atomic.Int32
	f.Hook = func(ctx context.Context, method string) error {
		if method != fakeservice.MAuthorize || n.Add(1) == 1 {
			return nil
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			canceled <- struct{}{}
			return ctx.Err()
		}
	}
	return release, canceled
}

// TestLoginPreauthorizesInBackground: C_Login waits for the PIN check on
// one credential only; the others are pre-authorized in the background,
// and a signature with one of them waits for that authorization instead of
// sending another.
func TestLoginPreauthorizesInBackground(t *testing.T) {
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		for _, id := range []string{"ec0", "ec1", "ec2"} {
			f.AddEC(id, elliptic.P256(), 1, 5, module.AuthPIN)
		}
	})
	release, _ := blockAuthorizations(e.fake())
	h := e.open(0, false)
	login := make(chan error, 1)
	go func() { login <- e.m.Login(h, ck.CKU_USER, []byte(goodPIN)) }()
	select {
	case err := <-login:
		e.must(err)
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("C_Login waited for the background pre-authorizations")
	}
	key := e.key(h, ck.CKO_PRIVATE_KEY, "ec1")
	signed := make(chan error, 1)
	go func() {
		_, err := e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key, []byte("x"))
		signed <- err
	}()
	select {
	case err := <-signed:
		t.Fatalf("signed (%v) before its credential's pre-authorization ended", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	e.must(<-signed)
	e.m.WaitPreauthorized()
	if got := e.fake().Calls(fakeservice.MAuthorize); got != 3 {
		t.Fatalf("%d authorizations for 3 credentials and one signature, want 3", got)
	}
}

// TestBackgroundPreauthorizationPINFailure: a PIN refused in the
// background is the answer of that credential's first signature (the
// token logs out, as for a PIN refused at signing), without sending the
// PIN again.
func TestBackgroundPreauthorizationPINFailure(t *testing.T) {
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		f.AddEC("ec0", elliptic.P256(), 1, 5, module.AuthPIN)
		f.AddEC("ec1", elliptic.P256(), 1, 5, module.AuthPIN)
	})
	var n atomic.Int32
	e.fake().Hook = func(ctx context.Context, method string) error {
		if method == fakeservice.MAuthorize && n.Add(1) > 1 {
			return &module.PINError{RemainingAttempts: 2}
		}
		return nil
	}
	h := e.open(0, false)
	e.login(h)
	e.fake().ResetCalls()
	_, err := e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, e.key(h, ck.CKO_PRIVATE_KEY, "ec1"), []byte("x"))
	e.wantRV(err, ck.CKR_USER_NOT_LOGGED_IN)
	if got := e.fake().Calls(fakeservice.MAuthorize); got != 0 {
		t.Fatalf("the refused PIN was sent %d more times", got)
	}
	info, err := e.m.GetTokenInfo(0)
	e.must(err)
	if info.Flags&ck.CKF_USER_PIN_COUNT_LOW == 0 {
		t.Fatalf("token flags %#x: no CKF_USER_PIN_COUNT_LOW", info.Flags)
	}
}

// TestBackgroundPreauthorizationStops: C_Logout and C_Finalize end the
// background pre-authorizations at once.
func TestBackgroundPreauthorizationStops(t *testing.T) {
	for _, end := range []string{"logout", "finalize"} {
		t.Run(end, func(t *testing.T) {
			e := newEnv(t, func(_ int, f *fakeservice.Fake) {
				f.AddEC("ec0", elliptic.P256(), 1, 5, module.AuthPIN)
				f.AddEC("ec1", elliptic.P256(), 1, 5, module.AuthPIN)
			})
			release, canceled := blockAuthorizations(e.fake())
			defer close(release)
			h := e.open(0, false)
			e.must(e.m.Login(h, ck.CKU_USER, []byte(goodPIN)))
			if end == "logout" {
				e.must(e.m.Logout(h))
			} else {
				e.must(e.m.Finalize())
			}
			select {
			case <-canceled:
			case <-time.After(10 * time.Second):
				t.Fatalf("the background pre-authorization went on after %s", end)
			}
		})
	}
}
