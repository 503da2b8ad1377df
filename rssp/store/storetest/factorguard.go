package storetest

// The conformance tests of the factor-check guards: the lease that
// serialises a credential's factor checks across processes and nodes, and
// the TOTP replay guard.

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

func testFactorLock(t *testing.T, open func(t *testing.T) store.Store) {
	s := withCredential(t, open)
	ctx := t.Context()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	try := func(holder string, now time.Duration, want error) {
		t.Helper()
		c, err := s.TryFactorLock(ctx, "c1", holder, at(now), at(now+10*time.Second))
		if checkErr(t, fmt.Sprintf("TryFactorLock(%s at +%v)", holder, now), err, want) && want == nil && c.ID != "c1" {
			t.Errorf("TryFactorLock returned credential %q", c.ID)
		}
	}
	_, err := s.TryFactorLock(ctx, "nope", "a", at(0), at(time.Second))
	checkErr(t, "TryFactorLock of an unknown credential", err, store.ErrNotFound)
	_, err = s.TryFactorLock(ctx, "c1", "", at(0), at(time.Second))
	checkErr(t, "TryFactorLock without a holder", err, errInvalid)

	try("a", 0, nil)
	try("b", time.Second, store.ErrBusy)
	try("a", 2*time.Second, nil) // renewed: until +12s
	try("b", 11*time.Second, store.ErrBusy)
	try("b", 12*time.Second, nil) // a's lease ended: taken over
	if err := s.ReleaseFactorLock(ctx, "c1", "a"); err != nil {
		t.Fatalf("ReleaseFactorLock by a former holder: %v", err)
	}
	try("c", 13*time.Second, store.ErrBusy) // still b's
	if err := s.ReleaseFactorLock(ctx, "c1", "b"); err != nil {
		t.Fatalf("ReleaseFactorLock: %v", err)
	}
	try("c", 13*time.Second, nil)

	// The credential comes back as it is under the lease.
	if _, _, err := s.RecordPINFailure(ctx, "c1", 5); err != nil {
		t.Fatal(err)
	}
	c, err := s.TryFactorLock(ctx, "c1", "c", at(14*time.Second), at(20*time.Second))
	if err != nil || c.PINFailures != 1 || c.Locked {
		t.Errorf("TryFactorLock = %d failures, locked %v, %v; want 1, false", c.PINFailures, c.Locked, err)
	}
}

// testFactorLockConcurrently: of holders asking at once, one gets the
// lease.
func testFactorLockConcurrently(t *testing.T, open func(t *testing.T) store.Store) {
	s := withCredential(t, open)
	const n = 20
	var won atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.TryFactorLock(t.Context(), "c1", fmt.Sprint("holder ", i), t0, t0.Add(time.Minute))
			switch {
			case err == nil:
				won.Add(1)
			case !errors.Is(err, store.ErrBusy):
				t.Errorf("TryFactorLock: %v", err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Errorf("%d holders got the lease, want 1", won.Load())
	}
}

// testFactorChecksConcurrently runs the service's protocol: 20 parallel
// wrong PINs, each taking the lease (retrying while busy), checking the
// PIN unless locked, counting the failure and releasing. Exactly the limit
// of them are checked; the rest find the credential locked.
func testFactorChecksConcurrently(t *testing.T, open func(t *testing.T) store.Store) {
	s := withCredential(t, open)
	const (
		n     = 20
		limit = 5
	)
	var checked, refused atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holder := fmt.Sprint("guess ", i)
			deadline := time.Now().Add(time.Minute)
			for {
				now := time.Now()
				c, err := s.TryFactorLock(t.Context(), "c1", holder, now, now.Add(30*time.Second))
				if errors.Is(err, store.ErrBusy) && now.Before(deadline) {
					time.Sleep(time.Millisecond)
					continue
				}
				if err != nil {
					t.Errorf("TryFactorLock: %v", err)
					return
				}
				if c.Locked {
					refused.Add(1)
				} else {
					checked.Add(1)
					time.Sleep(2 * time.Millisecond) // the PIN's hash
					if _, _, err := s.RecordPINFailure(t.Context(), "c1", limit); err != nil {
						t.Errorf("RecordPINFailure: %v", err)
					}
				}
				if err := s.ReleaseFactorLock(t.Context(), "c1", holder); err != nil {
					t.Errorf("ReleaseFactorLock: %v", err)
				}
				return
			}
		}()
	}
	wg.Wait()
	if checked.Load() != limit || refused.Load() != n-limit {
		t.Errorf("%d PINs checked, %d refused; want %d and %d", checked.Load(), refused.Load(), limit, n-limit)
	}
	c, err := s.Credential(t.Context(), "c1")
	if err != nil || !c.Locked || c.PINFailures != limit {
		t.Errorf("credential: %d failures, locked %v, %v; want %d, locked", c.PINFailures, c.Locked, err, limit)
	}
}

func testTOTPStep(t *testing.T, open func(t *testing.T) store.Store) {
	s := withCredential(t, open)
	ctx := t.Context()
	checkErr(t, "UseTOTPStep of an unknown credential", s.UseTOTPStep(ctx, "nope", 1), store.ErrNotFound)
	for _, c := range []struct {
		step int64
		want error
	}{
		{100, nil}, {100, store.ErrUsed}, {99, store.ErrUsed}, {0, store.ErrUsed}, {101, nil}, {103, nil}, {102, store.ErrUsed},
	} {
		checkErr(t, fmt.Sprintf("UseTOTPStep(%d)", c.step), s.UseTOTPStep(ctx, "c1", c.step), c.want)
	}
	// The same code on 20 requests at once (nodes): one is accepted.
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch err := s.UseTOTPStep(ctx, "c1", 200); {
			case err == nil:
				ok.Add(1)
			case !errors.Is(err, store.ErrUsed):
				t.Errorf("UseTOTPStep: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Errorf("step 200 accepted %d times, want once", ok.Load())
	}
}
