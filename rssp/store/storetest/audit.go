package storetest

// The conformance tests of the audit log.

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

// allAudit returns the whole audit log.
func allAudit(t *testing.T, s store.Store) []store.AuditEvent {
	t.Helper()
	var all []store.AuditEvent
	for {
		page, err := s.AuditEvents(t.Context(), int64(len(all)), 100)
		if err != nil {
			t.Fatalf("AuditEvents: %v", err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
	}
}

func testAudit(t *testing.T, open func(t *testing.T) store.Store) {
	s := openStore(t, open)

	t.Run("ok empty log", func(t *testing.T) {
		got, err := s.AuditEvents(t.Context(), 0, 10)
		if err != nil || len(got) != 0 {
			t.Errorf("AuditEvents = %v, %v; want none", got, err)
		}
		if n, err := store.VerifyAudit(t.Context(), s); n != 0 || err != nil {
			t.Errorf("VerifyAudit = %d, %v; want 0, nil", n, err)
		}
	})

	inputs := []struct {
		name string
		e    store.AuditEvent
	}{
		{"ok login", store.AuditEvent{Time: t0, Event: "login", UserID: alice.ID, ClientAddr: "192.0.2.1:40000", Result: "ok"}},
		{"ok sign with hashes", store.AuditEvent{Time: t0.Add(time.Second), Event: "sign", UserID: alice.ID,
			CredentialID: "c1", ClientAddr: "[2001:db8::1]:443", Hashes: []string{"aGFzaDE=", "aGFzaDI=", ""},
			Result: "ok", Detail: "RSASSA-PSS, 3 hashes"}},
		{"ok failure with unicode", store.AuditEvent{Time: t0.Add(2 * time.Second), Event: "authorize",
			UserID: bob.ID, CredentialID: "c2", Result: "invalid_request", Detail: "PIN falsch — 2 Versuche übrig"}},
		{"ok empty hashes list", store.AuditEvent{Time: t0.Add(3 * time.Second), Event: "revoke", Hashes: []string{},
			Result: "ok"}},
		{"ok caller's seq and hashes ignored", store.AuditEvent{Seq: 99, Time: t0.Add(4 * time.Second),
			Event: "admin", Result: "ok", PrevHash: []byte("x"), Hash: []byte("y")}},
		{"ok zero time gets now", store.AuditEvent{Event: "admin", Detail: "no time", Result: "ok"}},
	}
	var appended []store.AuditEvent
	prev := store.GenesisHash[:]
	for i, tc := range inputs {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now()
			got := appendAudit(t, s, tc.e)
			after := time.Now()
			appended = append(appended, got)

			want := tc.e
			want.Seq = int64(i + 1)
			want.PrevHash = prev
			want.Time = normTime(want.Time)
			if tc.e.Time.IsZero() {
				if got.Time.Before(before.Add(-time.Second)) || got.Time.After(after.Add(time.Second)) {
					t.Errorf("Time = %v, want about now (%v)", got.Time, before)
				}
				want.Time = got.Time
			}
			if len(want.Hashes) == 0 {
				want.Hashes = nil
			}
			want.Hash = store.AuditHash(prev, want)
			checkEqual(t, "appended row", got, want)
			if got.Time.Location() != time.UTC {
				t.Errorf("Time location = %v, want UTC", got.Time.Location())
			}
			prev = got.Hash
		})
	}

	reads := []struct {
		name    string
		after   int64
		limit   int
		want    []store.AuditEvent
		wantErr error
	}{
		{"ok all", 0, 100, appended, nil},
		{"ok exact limit", 0, len(appended), appended, nil},
		{"ok first page", 0, 2, appended[:2], nil},
		{"ok middle page", 2, 2, appended[2:4], nil},
		{"ok last page short", 4, 10, appended[4:], nil},
		{"ok negative after", -5, 1, appended[:1], nil},
		{"ok past the end", int64(len(appended)), 10, nil, nil},
		{"fail zero limit", 0, 0, nil, errInvalid},
	}
	for _, tc := range reads {
		t.Run("read "+tc.name, func(t *testing.T) {
			got, err := s.AuditEvents(t.Context(), tc.after, tc.limit)
			if !checkErr(t, "AuditEvents", err, tc.wantErr) || tc.wantErr != nil {
				return
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d rows, want %d", len(got), len(tc.want))
			}
			for i := range got {
				checkEqual(t, fmt.Sprint("row ", i), got[i], tc.want[i])
			}
		})
	}

	t.Run("ok verify", func(t *testing.T) {
		n, err := store.VerifyAudit(t.Context(), s)
		if err != nil || n != int64(len(appended)) {
			t.Errorf("VerifyAudit = %d, %v; want %d, nil", n, err, len(appended))
		}
	})
}

func testAuditConcurrently(t *testing.T, open func(t *testing.T) store.Store) {
	s := openStore(t, open)
	const (
		workers = 20
		each    = 10
	)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		seqs  []int64
		start = make(chan struct{})
	)
	for w := range workers {
		wg.Go(func() {
			<-start
			for i := range each {
				e, err := s.AppendAudit(t.Context(), store.AuditEvent{Time: t0, Event: "sign", UserID: fmt.Sprint("u", w),
					Hashes: []string{fmt.Sprint(i)}, Result: "ok"})
				if err != nil {
					t.Errorf("AppendAudit: %v", err)
					return
				}
				mu.Lock()
				seqs = append(seqs, e.Seq)
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	slices.Sort(seqs)
	for i, seq := range seqs {
		if seq != int64(i+1) {
			t.Fatalf("appended Seqs are not 1..%d each once: %v", workers*each, seqs)
		}
	}
	n, err := store.VerifyAudit(t.Context(), s)
	if err != nil || n != workers*each {
		t.Errorf("VerifyAudit = %d, %v; want %d, nil", n, err, workers*each)
	}
}
