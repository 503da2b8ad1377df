package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

// testReplaceSAD: ReplaceSAD takes the old SAD's signatures, creates the
// new SAD and appends the audit row together, or does nothing at all.
func testReplaceSAD(t *testing.T, open func(t *testing.T) store.Store) {
	s := withCredential(t, open)
	now := t0.Add(time.Minute)
	appendAudit(t, s, store.AuditEvent{Time: t0, Event: "authorize", UserID: alice.ID, CredentialID: "c1", Result: "ok"})
	mustCreateSAD(t, s, sadFixture("replace taken", 1, now.Add(time.Hour)))
	tests := []struct {
		name      string
		remaining int
		expires   time.Time
		n         int
		newHash   string // name of the new SAD's hash
		newCred   string
		noAudit   bool
		wantErr   error
		wantLeft  int // the old SAD's Remaining after success; 0: deleted
	}{
		{"ok all of three", 3, now.Add(time.Minute), 3, "", "c1", false, nil, 0},
		{"ok all of three without audit", 3, now.Add(time.Minute), 3, "", "c1", true, nil, 0},
		{"ok two of three", 3, now.Add(time.Minute), 2, "", "c1", false, nil, 1},
		{"fail old expired", 3, now, 3, "", "c1", false, store.ErrExpired, 3},
		{"fail old exhausted", 2, now.Add(time.Minute), 3, "", "c1", false, store.ErrExhausted, 2},
		{"fail new hash taken", 3, now.Add(time.Minute), 3, "replace taken", "c1", false, store.ErrExists, 3},
		{"fail new credential unknown", 3, now.Add(time.Minute), 3, "", "nope", false, store.ErrNotFound, 3},
		{"fail zero count", 3, now.Add(time.Minute), 0, "", "c1", false, errInvalid, 3},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := sadFixture(fmt.Sprint("replace old ", i), tc.remaining, tc.expires)
			mustCreateSAD(t, s, old)
			next := sadFixture(fmt.Sprint("replace new ", i), tc.n, now.Add(5*time.Minute))
			if tc.newHash != "" {
				next = sadFixture(tc.newHash, max(tc.n, 1), now.Add(5*time.Minute))
			}
			next.CredentialID = tc.newCred
			next.Remaining = max(next.Remaining, 1)
			before := allAudit(t, s)
			in := store.AuditEvent{Time: now, Event: "extendTransaction", UserID: alice.ID, CredentialID: "c1", Result: "ok", Detail: tc.name}
			var audit *store.AuditEvent
			if !tc.noAudit {
				a := in
				audit = &a
			}
			err := s.ReplaceSAD(t.Context(), old.Hash, tc.n, now, next, audit)
			checkConsumeAudit(t, s, before, in, audit, !tc.noAudit && err == nil)
			if !checkErr(t, "ReplaceSAD", err, tc.wantErr) {
				return
			}
			gotOld, oldErr := s.SAD(t.Context(), old.Hash)
			gotNew, newErr := s.SAD(t.Context(), next.Hash)
			if tc.wantErr != nil {
				checkErr(t, "old SAD after failure", oldErr, nil)
				checkEqual(t, "old SAD after failure (must be unchanged)", gotOld, normSAD(old))
				if tc.newHash == "" {
					checkErr(t, "new SAD after failure", newErr, store.ErrNotFound)
				}
				return
			}
			checkErr(t, "new SAD", newErr, nil)
			checkEqual(t, "new SAD", gotNew, normSAD(next))
			if tc.wantLeft == 0 {
				checkErr(t, "old SAD after all its signatures", oldErr, store.ErrNotFound)
				return
			}
			want := old
			want.Remaining = tc.wantLeft
			checkErr(t, "old SAD", oldErr, nil)
			checkEqual(t, "old SAD", gotOld, normSAD(want))
		})
	}
	t.Run("fail unknown old", func(t *testing.T) {
		next := sadFixture("replace new after unknown", 1, now.Add(time.Minute))
		err := s.ReplaceSAD(t.Context(), sum("nope"), 1, now, next, nil)
		checkErr(t, "ReplaceSAD", err, store.ErrNotFound)
		_, err = s.SAD(t.Context(), next.Hash)
		checkErr(t, "new SAD", err, store.ErrNotFound)
	})
}

// testReplaceSADConcurrently: many callers replace one SAD with all its
// signatures, each by a SAD of its own: exactly one wins, and exactly one
// new SAD exists.
func testReplaceSADConcurrently(t *testing.T, open func(t *testing.T) store.Store) {
	const workers = 30
	s := withCredential(t, open)
	old := sadFixture("replace race", 4, t0.Add(time.Hour))
	mustCreateSAD(t, s, old)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		won   []int
		start = make(chan struct{})
	)
	for i := range workers {
		wg.Go(func() {
			<-start
			next := sadFixture(fmt.Sprint("replace race new ", i), 4, t0.Add(time.Hour))
			a := store.AuditEvent{Time: t0, Event: "extendTransaction", UserID: alice.ID, CredentialID: "c1", Result: "ok"}
			err := s.ReplaceSAD(t.Context(), old.Hash, 4, t0, next, &a)
			switch {
			case err == nil:
				mu.Lock()
				won = append(won, i)
				mu.Unlock()
			case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExhausted):
			default:
				t.Errorf("ReplaceSAD: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("%d callers replaced the SAD, want exactly 1", len(won))
	}
	for i := range workers {
		_, err := s.SAD(t.Context(), sadFixture(fmt.Sprint("replace race new ", i), 4, t0).Hash)
		if i == won[0] {
			checkErr(t, "the winner's SAD", err, nil)
		} else {
			checkErr(t, fmt.Sprintf("loser %d's SAD", i), err, store.ErrNotFound)
		}
	}
	if rows := allAudit(t, s); len(rows) != 1 {
		t.Errorf("%d audit rows, want 1 (the winner's)", len(rows))
	}
}
