package storetest

// The conformance tests of the throttles of failed guesses.

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

func testThrottle(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	ctx := t.Context()
	rate := store.ThrottleRate{Burst: 3, Every: 10 * time.Second}
	key, other := sum("account"), sum("address")
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	wait := func(k []byte, now, want time.Duration) {
		t.Helper()
		d, err := s.ThrottleWait(ctx, k, at(now), rate)
		if err != nil || d != want {
			t.Errorf("ThrottleWait at +%v = %v, %v; want %v", now, d, err, want)
		}
	}
	fail := func(k []byte, now time.Duration, want bool) {
		t.Helper()
		emptied, err := s.ThrottleFail(ctx, k, at(now), rate)
		if err != nil || emptied != want {
			t.Errorf("ThrottleFail at +%v = %v, %v; want %v", now, emptied, err, want)
		}
	}

	wait(key, 0, 0) // never seen: full
	fail(key, 0, false)
	fail(key, 0, false)
	wait(key, 0, 0)
	fail(key, 0, true) // the last token
	wait(key, 0, 10*time.Second)
	wait(other, 0, 0)             // keys are independent
	fail(key, time.Second, false) // already empty: takes nothing
	wait(key, 4*time.Second, 6*time.Second)
	wait(key, 10*time.Second, 0) // one token back
	fail(key, 10*time.Second, true)
	wait(key, 10*time.Second, 10*time.Second)
	// Full again at +40 s: a whole burst again.
	fail(key, 45*time.Second, false)
	fail(key, 45*time.Second, false)
	fail(key, 45*time.Second, true)

	// Purge keeps buckets that are not full, and forgets full ones.
	// (key is full again at +75 s, empty until +55 s.)
	if err := s.Purge(ctx, at(50*time.Second)); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	wait(key, 50*time.Second, 5*time.Second)
	if err := s.Purge(ctx, at(time.Hour)); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	wait(key, time.Hour, 0)
	fail(key, time.Hour, false)

	// Burst 1: the first failure empties the bucket.
	one := store.ThrottleRate{Burst: 1, Every: time.Minute}
	if emptied, err := s.ThrottleFail(ctx, sum("one"), t0, one); err != nil || !emptied {
		t.Errorf("ThrottleFail with burst 1 = %v, %v; want true", emptied, err)
	}
	if d, err := s.ThrottleWait(ctx, sum("one"), t0, one); err != nil || d != time.Minute {
		t.Errorf("ThrottleWait with burst 1 = %v, %v; want 1m", d, err)
	}

	for _, tc := range []struct {
		name string
		key  []byte
		now  time.Time
		rate store.ThrottleRate
	}{
		{"empty key", nil, t0, rate},
		{"zero time", key, time.Time{}, rate},
		{"zero burst", key, t0, store.ThrottleRate{Every: time.Second}},
		{"zero every", key, t0, store.ThrottleRate{Burst: 1}},
		{"span too long", key, t0, store.ThrottleRate{Burst: 1 << 40, Every: time.Hour}},
	} {
		_, err := s.ThrottleWait(ctx, tc.key, tc.now, tc.rate)
		checkErr(t, "ThrottleWait with "+tc.name, err, errInvalid)
		_, err = s.ThrottleFail(ctx, tc.key, tc.now, tc.rate)
		checkErr(t, "ThrottleFail with "+tc.name, err, errInvalid)
	}
}

// testThrottleConcurrently: of 20 failures at once on a bucket of 5, five
// take a token, exactly one empties it, and the bucket is then exactly
// empty.
func testThrottleConcurrently(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	ctx := t.Context()
	rate := store.ThrottleRate{Burst: 5, Every: time.Minute}
	key := sum("contended")
	var (
		wg       sync.WaitGroup
		emptied  atomic.Int32
		failures = make(chan error, 20)
	)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := s.ThrottleFail(ctx, key, t0, rate)
			if err != nil {
				failures <- err
				return
			}
			if e {
				emptied.Add(1)
			}
		}()
	}
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Errorf("ThrottleFail: %v", err)
	}
	if n := emptied.Load(); n != 1 {
		t.Errorf("%d failures emptied the bucket, want 1", n)
	}
	// Five tokens taken, no more: empty for exactly one Every.
	if d, err := s.ThrottleWait(ctx, key, t0, rate); err != nil || d != time.Minute {
		t.Errorf("ThrottleWait after the burst = %v, %v; want %v", d, err, fmt.Sprint(time.Minute))
	}
}
