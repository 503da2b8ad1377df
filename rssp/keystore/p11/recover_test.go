//go:build cgo

package p11

// The token lost and re-opened, on the fake token of unit_test.go.

import (
	"context"
	"crypto"
	"errors"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/miekg/pkcs11"
)

var (
	keyA = []byte("key-a-cka-id-016")
	keyB = []byte("key-b-cka-id-016")
)

// openLossy opens a Backend on a fake token holding keyA and keyB, with
// short re-open waits.
func openLossy(t *testing.T, f *fakeCtx, ttl time.Duration) *Backend {
	t.Helper()
	f.keys[100], f.keys[101] = keyA, keyB
	cfg := useFake(t, f)
	cfg.ReopenMinWait, cfg.ReopenMaxWait, cfg.CheckTTL = 10*time.Millisecond, 40*time.Millisecond, ttl
	b, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if n := f.openSessions(); n != 0 {
			t.Errorf("%d sessions left open after Close", n)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.badFinal != 0 {
			t.Errorf("C_Finalize called %d times while a C_Sign ran", f.badFinal)
		}
	})
	return b
}

func sign(b *Backend, ref []byte) error {
	_, err := b.Sign(context.Background(), ref, make([]byte, 32), crypto.SHA256)
	return err
}

// waitBack waits until b signs with ref again.
func waitBack(t *testing.T, b *Backend, ref []byte) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.Available() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("still unavailable after 5s: %v", b.Available())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := sign(b, ref); err != nil {
		t.Fatalf("Sign once back: %v", err)
	}
}

// wantUnavailable checks err is a keystore.ErrUnavailable with a retry
// hint of at least a second.
func wantUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, keystore.ErrUnavailable) {
		t.Fatalf("%s: err = %v, want keystore.ErrUnavailable", what, err)
	}
	if d, ok := keystore.RetryAfter(err); !ok || d < time.Second {
		t.Errorf("%s: RetryAfter = %v, %v, want >= 1s", what, d, ok)
	}
}

// The token goes away: the cached handle fails, the key is no longer
// found and the token no longer describes itself, so Sign says
// unavailable; calls then fail at once without touching the token; the
// library is re-initialised with growing waits while it is away, and
// signing resumes on its own once it is back.
func TestTokenAwayAndBack(t *testing.T) {
	f := newFake()
	b := openLossy(t, f, time.Nanosecond)
	if err := sign(b, keyA); err != nil {
		t.Fatal(err)
	}
	f.setAway(true)
	err := sign(b, keyA)
	wantUnavailable(t, "Sign, token away", err)
	if !errors.Is(err, pkcs11.Error(pkcs11.CKR_GENERAL_ERROR)) {
		t.Errorf("err = %v, want the library's error reachable", err)
	}
	wantUnavailable(t, "Available", b.Available())
	wantUnavailable(t, "Check", b.Check(context.Background()))
	signs := f.n("Sign")
	wantUnavailable(t, "Sign again", sign(b, keyB))
	if f.n("Sign") != signs {
		t.Error("a Sign while the token is away reached the token")
	}

	time.Sleep(300 * time.Millisecond)
	inits := f.n("Initialize") - 1
	// 10, 20, 40, 40, ... ms: about 9 attempts in 300 ms; not one per
	// millisecond.
	if inits < 2 || inits > 15 {
		t.Errorf("%d C_Initialize attempts in 300ms with the token away, want about 9", inits)
	}
	f.setAway(false)
	waitBack(t, b, keyA)
	if err := b.Check(context.Background()); err != nil {
		t.Errorf("Check once back: %v", err)
	}
	if f.n("Finalize") != 1 {
		t.Errorf("C_Finalize calls = %d, want 1 (then only C_Initialize until it works)", f.n("Finalize"))
	}
	if got := b.PoolStats().Size; got != b.PoolSize() {
		t.Errorf("sessions after re-open = %d, want %d", got, b.PoolSize())
	}
}

// Each return value that says the token is gone starts a re-open; other
// errors do not.
func TestTokenLostErrors(t *testing.T) {
	tests := []struct {
		name string
		rv   uint
		lost bool
	}{
		{"lost token not present", pkcs11.CKR_TOKEN_NOT_PRESENT, true},
		{"lost device removed", pkcs11.CKR_DEVICE_REMOVED, true},
		{"lost device error", pkcs11.CKR_DEVICE_ERROR, true},
		{"lost session handle invalid", pkcs11.CKR_SESSION_HANDLE_INVALID, true},
		{"lost session closed", pkcs11.CKR_SESSION_CLOSED, true},
		{"lost library not initialised", pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED, true},
		{"kept data length", pkcs11.CKR_DATA_LEN_RANGE, false},
		{"kept function failed", pkcs11.CKR_FUNCTION_FAILED, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			b := openLossy(t, f, time.Nanosecond)
			f.mu.Lock()
			f.signErr = pkcs11.Error(tt.rv)
			f.mu.Unlock()
			err := sign(b, keyA)
			if !errors.Is(err, pkcs11.Error(tt.rv)) {
				t.Errorf("err = %v, want it to wrap %v", err, pkcs11.Error(tt.rv))
			}
			if got := errors.Is(err, keystore.ErrUnavailable); got != tt.lost {
				t.Fatalf("unavailable = %v, want %v (%v)", got, tt.lost, err)
			}
			f.mu.Lock()
			f.signErr = nil
			f.mu.Unlock()
			if tt.lost {
				waitBack(t, b, keyA)
				if f.n("Finalize") != 1 || f.n("Initialize") != 2 {
					t.Errorf("Finalize, Initialize = %d, %d, want 1, 2", f.n("Finalize"), f.n("Initialize"))
				}
			} else if err := sign(b, keyA); err != nil || f.n("Finalize") != 0 {
				t.Errorf("next Sign: %v, Finalize calls %d, want nil, 0", err, f.n("Finalize"))
			}
		})
	}
}

// A key deleted behind the Backend's back, the token still there, is a
// missing key, not a lost token.
func TestKeyGoneAlone(t *testing.T) {
	f := newFake()
	b := openLossy(t, f, time.Nanosecond)
	if err := sign(b, keyB); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	delete(f.keys, 101)
	f.mu.Unlock()
	err := sign(b, keyB)
	if !errors.Is(err, keystore.ErrKeyNotFound) || errors.Is(err, keystore.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrKeyNotFound only", err)
	}
	if err := b.Available(); err != nil {
		t.Errorf("Available: %v", err)
	}
	if err := sign(b, keyA); err != nil {
		t.Errorf("the other key: %v", err)
	}
}

// No C_Finalize while an operation runs on the old sessions: the re-open
// waits for it.
func TestReopenWaitsForOperations(t *testing.T) {
	f := newFake()
	b := openLossy(t, f, time.Nanosecond)
	release := make(chan struct{})
	f.mu.Lock()
	f.signWait = release
	f.mu.Unlock()
	first := make(chan error, 1)
	go func() { first <- sign(b, keyA) }()
	for f.n("Sign") == 0 {
		time.Sleep(time.Millisecond)
	}
	f.mu.Lock()
	f.signWait = nil
	f.mu.Unlock()
	err := b.withSession(context.Background(), func(ctxAPI, pkcs11.SessionHandle) error {
		return pkcs11.Error(pkcs11.CKR_DEVICE_REMOVED)
	})
	wantUnavailable(t, "the loss", err)
	time.Sleep(100 * time.Millisecond) // the re-open would have run by now
	if n := f.n("Finalize"); n != 0 {
		t.Fatalf("C_Finalize ran %d times with a C_Sign in flight", n)
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("the signature in flight: %v", err)
	}
	waitBack(t, b, keyA)
}

// Check: reuses its answer for CheckTTL, notices a lost token on its own
// (and starts the re-open), and fails while the key it knows is gone.
func TestCheckTokenLoss(t *testing.T) {
	t.Run("ok cached", func(t *testing.T) {
		f := newFake()
		b := openLossy(t, f, time.Hour)
		ctx := context.Background()
		before := f.n("GetTokenInfo")
		for range 5 {
			if err := b.Check(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if n := f.n("GetTokenInfo") - before; n != 1 {
			t.Errorf("C_GetTokenInfo calls for 5 Checks = %d, want 1", n)
		}
		// A loss seen by Sign is seen by Check at once, cache or not.
		f.setAway(true)
		wantUnavailable(t, "Sign", sign(b, keyA))
		wantUnavailable(t, "Check", b.Check(ctx))
		f.setAway(false)
		waitBack(t, b, keyA)
		n := f.n("GetTokenInfo")
		if err := b.Check(ctx); err != nil {
			t.Errorf("Check once back: %v", err)
		}
		if f.n("GetTokenInfo") == n {
			t.Error("Check once back answered from its cache")
		}
	})
	t.Run("fail token away while idle", func(t *testing.T) {
		f := newFake()
		b := openLossy(t, f, time.Nanosecond)
		f.setAway(true)
		wantUnavailable(t, "Check", b.Check(context.Background()))
		f.setAway(false)
		waitBack(t, b, keyA)
	})
	t.Run("fail witness key gone", func(t *testing.T) {
		f := newFake()
		b := openLossy(t, f, time.Nanosecond)
		w := b.witnessRef()
		if w == nil {
			t.Fatal("no witness key after Open")
		}
		f.mu.Lock()
		for h, id := range f.keys {
			if string(id) == string(w) {
				delete(f.keys, h)
			}
		}
		f.mu.Unlock()
		wantUnavailable(t, "Check", b.Check(context.Background()))
		// Re-opened, the token answers without that key: ready, with
		// another witness once a key signs.
		deadline := time.Now().Add(5 * time.Second)
		for b.Available() != nil && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if err := b.Check(context.Background()); err != nil {
			t.Errorf("Check after the re-open: %v", err)
		}
	})
}

// Two Backends on one library: the first to find the token gone
// re-initialises the library, the other re-opens its sessions without
// finalizing it again.
func TestTokenLossSharedModule(t *testing.T) {
	f := newFake()
	b1 := openLossy(t, f, time.Nanosecond)
	cfg := useFake(t, f)
	cfg.ReopenMinWait, cfg.ReopenMaxWait = 10*time.Millisecond, 40*time.Millisecond
	b2, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := b2.Close(); err != nil {
			t.Errorf("b2 Close: %v", err)
		}
	}()
	f.setAway(true)
	wantUnavailable(t, "b1", sign(b1, keyA))
	f.setAway(false)
	waitBack(t, b1, keyA)
	wantUnavailable(t, "b2, its sessions gone with the re-initialisation", sign(b2, keyA))
	waitBack(t, b2, keyA)
	if f.n("Finalize") != 1 {
		t.Errorf("C_Finalize calls = %d, want 1", f.n("Finalize"))
	}
	if err := sign(b1, keyB); err != nil {
		t.Errorf("b1 after b2's re-open: %v", err)
	}
}
