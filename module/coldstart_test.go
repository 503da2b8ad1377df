package module_test

import (
	"context"
	"crypto/elliptic"
	"testing"
	"time"

	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/fakeservice"
)

// warmCache lists once into dir, as an earlier program would have.
func warmCache(t *testing.T, dir string, setup func(int, *fakeservice.Fake)) {
	t.Helper()
	e := newEnv(t, setup, withCacheDir(dir))
	e.must(e.m.Refresh(context.Background(), 0))
	e.must(e.m.Finalize())
}

// backgroundOpts are the C library's options (background listings, the
// first-listing wait).
func backgroundOpts(ttl time.Duration) envOption {
	return withOptions(func(o *module.Options) {
		o.NoBackgroundRefresh = false
		o.FirstListingWait = 3 * time.Second
		o.ListingTTL = ttl
	})
}

// TestWarmCacheNoListing: with a cached listing younger than the TTL, a
// program initializes, logs in and signs without a listing and without
// waiting for one.
func TestWarmCacheNoListing(t *testing.T) {
	dir := t.TempDir()
	warmCache(t, dir, nil)
	e := newEnv(t, nil, withCacheDir(dir), backgroundOpts(time.Hour))
	h := e.open(0, false)
	e.login(h)
	key := e.key(h, ck.CKO_PRIVATE_KEY, "ec")
	if _, err := e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key, []byte("doc")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // a listing started in the background would show by now
	if n := e.fake().Calls(fakeservice.MList); n != 0 {
		t.Fatalf("%d listings with a fresh cache", n)
	}
}

// TestStaleCacheListsInBackground: with a cached listing older than the
// TTL, Initialize and Login list in the background, never waiting for it,
// and the listing replaces the cached objects.
func TestStaleCacheListsInBackground(t *testing.T) {
	dir := t.TempDir()
	warmCache(t, dir, nil)
	release := make(chan struct{})
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		defaultCreds(f)
		f.AddEC("new", elliptic.P256(), 1, 1, module.AuthPIN)
		f.Hook = func(ctx context.Context, m string) error {
			if m == fakeservice.MList {
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}
	}, withCacheDir(dir), backgroundOpts(time.Nanosecond))
	h := e.open(0, false)
	done := make(chan error, 1)
	go func() { done <- e.m.Login(h, ck.CKU_USER, []byte(goodPIN)) }()
	select {
	case err := <-done:
		e.must(err)
	case <-time.After(5 * time.Second):
		t.Fatal("Login waited for the listing")
	}
	if n := len(e.find(h, class(ck.CKO_PRIVATE_KEY))); n != 3 {
		t.Fatalf("%d private keys from the cache, want 3", n)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for len(e.find(h, class(ck.CKO_PRIVATE_KEY))) != 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(e.find(h, class(ck.CKO_PRIVATE_KEY))); n != 4 {
		t.Fatalf("%d private keys after the background listing, want 4", n)
	}
}

// TestLoginRelistsWhenCacheIsStale: a credential of the cached listing that
// the service no longer has does not fail C_Login: the module lists again
// and checks the PIN on the credentials there are.
func TestLoginRelistsWhenCacheIsStale(t *testing.T) {
	dir := t.TempDir()
	warmCache(t, dir, func(_ int, f *fakeservice.Fake) {
		defaultCreds(f)
		f.AddEC("gone", elliptic.P256(), 1, 1, module.AuthPIN)
	})
	e := newEnv(t, nil, withCacheDir(dir), backgroundOpts(time.Hour))
	h := e.open(0, false)
	e.login(h)
	if n := e.fake().Calls(fakeservice.MList); n != 1 {
		t.Fatalf("%d listings, want 1 after the refused authorization", n)
	}
	if n := len(e.find(h, class(ck.CKO_PRIVATE_KEY))); n != 3 {
		t.Fatalf("%d private keys, want 3", n)
	}
	// A wrong PIN is no reason to list.
	e2 := newEnv(t, nil, withCacheDir(dir), backgroundOpts(time.Hour))
	h2 := e2.open(0, false)
	e2.wantRV(e2.m.Login(h2, ck.CKU_USER, []byte("0000")), ck.CKR_PIN_INCORRECT)
	if n := e2.fake().Calls(fakeservice.MList); n != 0 {
		t.Fatalf("%d listings after a wrong PIN", n)
	}
}

// TestNoCacheWaitsForFirstListing: without a cached listing, Initialize
// waits (FirstListingWait) for the first one, so a program sees the
// certificates at once.
func TestNoCacheWaitsForFirstListing(t *testing.T) {
	e := newEnv(t, nil, withCacheDir(t.TempDir()), backgroundOpts(time.Hour))
	h := e.open(0, false)
	if n := len(e.find(h, class(ck.CKO_CERTIFICATE))); n != 4 {
		t.Fatalf("%d certificates right after Initialize, want 4", n)
	}
}
