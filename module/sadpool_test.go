package module

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestSADPoolTakeWaitsWithContext: a take waiting for an authorization
// under way (the pool locked, as by C_Login's background
// pre-authorization) ends with its context (C_SessionCancel,
// C_CloseSession, the signature's deadline), without fetching; once the
// pool is free it fetches.
func TestSADPoolTakeWaitsWithContext(t *testing.T) {
	p := newSADPool()
	p.lock() // an authorization under way
	fetched := false
	fetch := func(n int) (SAD, error) { fetched = true; return SAD{Remaining: n}, nil }

	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			_, err := p.take(ctx, time.Now(), 1, fetch)
			if !errors.Is(err, tc.want) || fetched {
				t.Errorf("take = %v (fetched %v), want %v without a fetch", err, fetched, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("take returned after %v", d)
			}
		})
	}

	p.unlock()
	if _, err := p.take(context.Background(), time.Now(), 1, fetch); err != nil || !fetched {
		t.Errorf("take on a free pool = %v (fetched %v)", err, fetched)
	}
}
