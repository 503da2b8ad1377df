package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/csctoken/csctoken/rssp/store"
	"github.com/csctoken/csctoken/rssp/store/sqlite"
	"github.com/csctoken/csctoken/rssp/store/storetest"
)

func openObserved(t *testing.T, onFailure func(string, error)) store.Full {
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "rssp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return store.Observe(db, onFailure)
}

// TestObservedConformance: the wrapper forwards every method faithfully
// (the whole conformance suite passes through it).
func TestObservedConformance(t *testing.T) {
	open := func(t *testing.T) store.Store { return openObserved(t, func(string, error) {}) }
	storetest.Run(t, open)
	storetest.RunOAuth(t, open)
}

// TestObservedFailures: a refusal of the contract is not a failure; a
// database that fails is, named by the method.
func TestObservedFailures(t *testing.T) {
	var mu sync.Mutex
	var ops []string
	s := openObserved(t, func(op string, err error) {
		mu.Lock()
		defer mu.Unlock()
		ops = append(ops, fmt.Sprintf("%s: %v", op, err != nil))
	})
	ctx := context.Background()
	if _, err := s.UserByName(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UserByName = %v", err)
	}
	if _, err := s.Challenge(ctx, "none"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Challenge = %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, _ = s.Users(cancelled)
	if len(ops) != 0 {
		t.Fatalf("refusals counted as failures: %v", ops)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Users(ctx); err == nil {
		t.Fatal("Users on a closed store succeeded")
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping on a closed store succeeded")
	}
	if _, err := s.Op(ctx, []byte("x")); err == nil {
		t.Fatal("Op on a closed store succeeded")
	}
	if want := []string{"Users: true", "Ping: true", "Op: true"}; !slices.Equal(ops, want) {
		t.Errorf("failures = %v, want %v", ops, want)
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false}, {store.ErrNotFound, false}, {fmt.Errorf("x: %w", store.ErrRevoked), false},
		{context.DeadlineExceeded, false}, {store.ErrFull, true}, {errors.New("disk I/O error"), true},
	} {
		if got := store.IsFailure(tc.err); got != tc.want {
			t.Errorf("IsFailure(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
