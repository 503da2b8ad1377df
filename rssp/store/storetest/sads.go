package storetest

// The conformance tests of SADs: creation, consumption and their audit rows.

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

// sadFixture returns a SAD of alice's credential c1.
func sadFixture(name string, remaining int, expires time.Time) store.SAD {
	return store.SAD{Hash: sum(name), CredentialID: "c1", UserID: alice.ID, HashAlgo: "2.16.840.1.101.3.4.2.1",
		Hashes: [][]byte{sum("doc1 " + name), sum("doc2 " + name)}, Remaining: remaining, ExpiresAt: expires,
		CreatedAt: t0}
}

// withCredential opens a store holding alice, bob and alice's credential c1.
func withCredential(t *testing.T, open func(t *testing.T) store.Store) store.Store {
	t.Helper()
	s := withUsers(t, open)
	mustCreateCredential(t, s, fullCredential("c1", alice.ID, t0))
	return s
}

func testSADs(t *testing.T, open func(t *testing.T) store.Store) {
	s := withCredential(t, open)
	exp := t0.Add(5 * time.Minute)
	scal2 := sadFixture("s2", 2, exp)
	scal1 := store.SAD{Hash: sum("s1"), CredentialID: "c1", UserID: alice.ID, Hashes: [][]byte{}, Remaining: 5,
		ExpiresAt: exp} // no hashes, zero CreatedAt
	expired := sadFixture("sx", 1, t0.Add(-time.Second))

	creates := []struct {
		name    string
		sad     store.SAD
		wantErr error
	}{
		{"ok scal2", scal2, nil},
		{"ok scal1", scal1, nil},
		{"ok expired", expired, nil},
		{"fail taken hash", sadFixture("s2", 1, exp), store.ErrExists},
		{"fail unknown credential", func() store.SAD { x := sadFixture("n1", 1, exp); x.CredentialID = "c9"; return x }(), store.ErrNotFound},
		{"fail unknown user", func() store.SAD { x := sadFixture("n2", 1, exp); x.UserID = "u-nobody"; return x }(), store.ErrNotFound},
		{"fail zero remaining", sadFixture("n3", 0, exp), errInvalid},
		{"fail no expiry", sadFixture("n4", 1, time.Time{}), errInvalid},
		{"fail empty hash", func() store.SAD { x := sadFixture("n5", 1, exp); x.Hash = nil; return x }(), errInvalid},
	}
	for _, tc := range creates {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "CreateSAD", s.CreateSAD(t.Context(), tc.sad, nil), tc.wantErr)
		})
	}

	gets := []struct {
		name    string
		hash    []byte
		want    store.SAD
		wantErr error
	}{
		{"ok scal2", scal2.Hash, scal2, nil},
		{"ok scal1", scal1.Hash, scal1, nil},
		{"ok expired still there", expired.Hash, expired, nil},
		{"fail unknown", sum("nope"), store.SAD{}, store.ErrNotFound},
		{"fail not created", sum("n3"), store.SAD{}, store.ErrNotFound},
	}
	for _, tc := range gets {
		t.Run("get "+tc.name, func(t *testing.T) {
			got, err := s.SAD(t.Context(), tc.hash)
			if checkErr(t, "SAD", err, tc.wantErr) && tc.wantErr == nil {
				checkEqual(t, "SAD", got, normSAD(tc.want))
			}
		})
	}

	deletes := []struct {
		name    string
		hash    []byte
		wantErr error
	}{
		{"ok delete", scal1.Hash, nil},
		{"fail delete again", scal1.Hash, store.ErrNotFound},
		{"fail delete unknown", sum("nope"), store.ErrNotFound},
	}
	for _, tc := range deletes {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "DeleteSAD", s.DeleteSAD(t.Context(), tc.hash), tc.wantErr)
			if _, err := s.SAD(t.Context(), tc.hash); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("SAD after delete: %v, want not found", err)
			}
		})
	}
	t.Run("ok others stay", func(t *testing.T) {
		if _, err := s.SAD(t.Context(), scal2.Hash); err != nil {
			t.Errorf("SAD: %v", err)
		}
	})
}

// signEvent is the audit row a signature passes to ConsumeSAD.
func signEvent(detail string, at time.Time) store.AuditEvent {
	return store.AuditEvent{Time: at, Event: "sign", UserID: alice.ID, CredentialID: "c1", ClientAddr: "192.0.2.7:50000",
		Hashes: []string{"ZG9jMQ==", "ZG9jMg=="}, Result: "ok", Detail: detail}
}

// checkConsumeAudit checks the audit log after a ConsumeSAD: before is the
// log before the call, in the event passed, audit the pointer passed (nil:
// none) and wantRow whether the call was to append a row.
func checkConsumeAudit(t *testing.T, s store.Store, before []store.AuditEvent, in store.AuditEvent, audit *store.AuditEvent,
	wantRow bool) {
	t.Helper()
	after := allAudit(t, s)
	if !wantRow {
		if len(after) != len(before) {
			t.Errorf("audit log has %d rows after the call, want %d: no row may be written", len(after), len(before))
		}
		if audit != nil {
			checkEqual(t, "audit event after a failed call (must be unchanged)", *audit, in)
		}
		return
	}
	if len(after) != len(before)+1 {
		t.Fatalf("audit log has %d rows after the call, want %d", len(after), len(before)+1)
	}
	want := in
	want.Seq = int64(len(before) + 1)
	want.PrevHash = store.GenesisHash[:]
	if len(before) > 0 {
		want.PrevHash = before[len(before)-1].Hash
	}
	want.Time = normTime(in.Time)
	if len(want.Hashes) == 0 {
		want.Hashes = nil
	}
	want.Hash = store.AuditHash(want.PrevHash, want)
	checkEqual(t, "audit event set by ConsumeSAD", *audit, want)
	checkEqual(t, "appended audit row", after[len(after)-1], want)
	if n, err := store.VerifyAudit(t.Context(), s); err != nil || n != int64(len(after)) {
		t.Errorf("VerifyAudit = %d, %v; want %d, nil", n, err, len(after))
	}
}

func testConsumeSAD(t *testing.T, open func(t *testing.T) store.Store) {
	for _, withAudit := range []bool{false, true} {
		name := "without audit"
		if withAudit {
			name = "with audit"
		}
		t.Run(name, func(t *testing.T) { testConsumeSADAudit(t, open, withAudit) })
	}
}

// testConsumeSADAudit runs the ConsumeSAD cases with or without an audit
// row; the log already holds a row, so the new one chains to it.
func testConsumeSADAudit(t *testing.T, open func(t *testing.T) store.Store, withAudit bool) {
	s := withCredential(t, open)
	now := t0.Add(time.Minute)
	appendAudit(t, s, store.AuditEvent{Time: t0, Event: "authorize", UserID: alice.ID, CredentialID: "c1", Result: "ok"})
	// call runs ConsumeSAD, with an audit row when withAudit, and checks
	// the audit log: one row more exactly when the call succeeds.
	call := func(t *testing.T, hash []byte, n int, now time.Time, detail string) error {
		t.Helper()
		before := allAudit(t, s)
		in := signEvent(detail, now)
		var audit *store.AuditEvent
		if withAudit {
			a := in
			audit = &a
		}
		err := s.ConsumeSAD(t.Context(), hash, n, now, audit)
		checkConsumeAudit(t, s, before, in, audit, withAudit && err == nil)
		return err
	}
	tests := []struct {
		name      string
		remaining int
		expires   time.Time
		n         int
		now       time.Time
		wantErr   error
		wantLeft  int // Remaining after the call; 0 with no error: deleted
	}{
		{"ok one of three", 3, now.Add(time.Minute), 1, now, nil, 2},
		{"ok two of three", 3, now.Add(time.Minute), 2, now, nil, 1},
		{"ok all three deletes", 3, now.Add(time.Minute), 3, now, nil, 0},
		{"ok the only one deletes", 1, now.Add(time.Minute), 1, now, nil, 0},
		{"ok a nanosecond before expiry", 1, now.Add(time.Nanosecond), 1, now, nil, 0},
		{"ok now in another zone", 2, now.Add(time.Second), 1, now.In(time.UTC), nil, 1},
		{"fail expired at now", 3, now, 1, now, store.ErrExpired, 3},
		{"fail expired", 3, now.Add(-time.Second), 1, now, store.ErrExpired, 3},
		{"fail expired before exhausted", 1, now.Add(-time.Second), 2, now, store.ErrExpired, 1},
		{"fail exhausted", 2, now.Add(time.Minute), 3, now, store.ErrExhausted, 2},
		{"fail zero count", 2, now.Add(time.Minute), 0, now, errInvalid, 2},
		{"fail negative count", 2, now.Add(time.Minute), -1, now, errInvalid, 2},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sad := sadFixture(fmt.Sprint("consume ", i), tc.remaining, tc.expires)
			mustCreateSAD(t, s, sad)
			err := call(t, sad.Hash, tc.n, tc.now, tc.name)
			if !checkErr(t, "ConsumeSAD", err, tc.wantErr) {
				return
			}
			after, getErr := s.SAD(t.Context(), sad.Hash)
			want := sad
			want.Remaining = tc.wantLeft
			if tc.wantErr != nil {
				checkErr(t, "SAD after failure", getErr, nil)
				checkEqual(t, "SAD after failure (must be unchanged)", after, normSAD(want))
				return
			}
			if tc.wantLeft == 0 {
				checkErr(t, "SAD after the last signature", getErr, store.ErrNotFound)
				err := call(t, sad.Hash, 1, tc.now, "after the last")
				checkErr(t, "ConsumeSAD after the last signature", err, store.ErrNotFound)
				return
			}
			checkErr(t, "SAD after", getErr, nil)
			checkEqual(t, "stored SAD", after, normSAD(want))
		})
	}
	t.Run("fail unknown", func(t *testing.T) {
		err := call(t, sum("nope"), 1, now, "unknown")
		checkErr(t, "ConsumeSAD", err, store.ErrNotFound)
	})
	t.Run("ok zero time gets now", func(t *testing.T) {
		if !withAudit {
			t.Skip("no audit row")
		}
		sad := sadFixture("consume zero time", 1, now.Add(time.Minute))
		mustCreateSAD(t, s, sad)
		e := signEvent("zero time", time.Time{})
		start := time.Now()
		if err := s.ConsumeSAD(t.Context(), sad.Hash, 1, now, &e); err != nil {
			t.Fatalf("ConsumeSAD: %v", err)
		}
		if e.Time.Before(start.Add(-time.Second)) || e.Time.After(time.Now().Add(time.Second)) || e.Time.Location() != time.UTC {
			t.Errorf("Time = %v, want about now, in UTC", e.Time)
		}
		rows := allAudit(t, s)
		checkEqual(t, "appended row", rows[len(rows)-1], e)
	})
}

func testConsumeSADConcurrently(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name      string
		workers   int
		remaining int
		n         int
		wantOK    int
		wantLeft  int // 0: deleted
	}{
		{"ok 50 workers, 10 signatures", 50, 10, 1, 10, 0},
		{"ok 50 workers take 3 of 10", 50, 10, 3, 3, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := withCredential(t, open)
			now := t0
			sad := sadFixture("race", tc.remaining, now.Add(time.Minute))
			mustCreateSAD(t, s, sad)
			var (
				wg    sync.WaitGroup
				mu    sync.Mutex
				ok    int
				start = make(chan struct{})
			)
			for range tc.workers {
				wg.Go(func() {
					<-start
					err := s.ConsumeSAD(t.Context(), sad.Hash, tc.n, now, nil)
					switch {
					case err == nil:
						mu.Lock()
						ok++
						mu.Unlock()
					case errors.Is(err, store.ErrExhausted), errors.Is(err, store.ErrNotFound):
					default:
						t.Errorf("ConsumeSAD: %v", err)
					}
				})
			}
			close(start)
			wg.Wait()
			if ok != tc.wantOK {
				t.Errorf("%d calls succeeded, want exactly %d", ok, tc.wantOK)
			}
			got, err := s.SAD(t.Context(), sad.Hash)
			if tc.wantLeft == 0 {
				checkErr(t, "SAD after", err, store.ErrNotFound)
			} else if checkErr(t, "SAD after", err, nil) && got.Remaining != tc.wantLeft {
				t.Errorf("Remaining = %d, want %d", got.Remaining, tc.wantLeft)
			}
		})
	}
}

// testConsumeSADAuditConcurrently races signers, each consuming a
// signature with its audit row, against plain AppendAudit calls: every
// successful consumption has exactly its row, failed ones none, and the
// chain stays whole and gap-free.
func testConsumeSADAuditConcurrently(t *testing.T, open func(t *testing.T) store.Store) {
	const (
		signers   = 40
		remaining = 25
		appenders = 8
		each      = 5
	)
	s := withCredential(t, open)
	sad := sadFixture("race with audit", remaining, t0.Add(time.Minute))
	mustCreateSAD(t, s, sad)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		signed = map[int64]store.AuditEvent{} // by Seq: rows the signers got back
		failed int
		seqs   []int64
		start  = make(chan struct{})
	)
	for i := range signers {
		wg.Go(func() {
			<-start
			in := signEvent(fmt.Sprint("signer ", i), t0)
			e := in
			err := s.ConsumeSAD(t.Context(), sad.Hash, 1, t0, &e)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				signed[e.Seq] = e
				seqs = append(seqs, e.Seq)
			case errors.Is(err, store.ErrExhausted), errors.Is(err, store.ErrNotFound):
				failed++
				if !reflect.DeepEqual(e, in) {
					t.Errorf("signer %d: audit event changed by a failed ConsumeSAD: %+v", i, e)
				}
			default:
				t.Errorf("ConsumeSAD: %v", err)
			}
		})
	}
	for w := range appenders {
		wg.Go(func() {
			<-start
			for i := range each {
				e, err := s.AppendAudit(t.Context(), store.AuditEvent{Time: t0, Event: "admin", Result: "ok",
					Detail: fmt.Sprint("appender ", w, " row ", i)})
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

	if len(signed) != remaining || failed != signers-remaining {
		t.Errorf("%d consumptions succeeded and %d failed, want %d and %d", len(signed), failed, remaining, signers-remaining)
	}
	const total = remaining + appenders*each
	slices.Sort(seqs)
	for i, seq := range seqs {
		if seq != int64(i+1) {
			t.Fatalf("returned Seqs are not 1..%d each once: %v", total, seqs)
		}
	}
	rows := allAudit(t, s)
	if len(rows) != total {
		t.Fatalf("audit log has %d rows, want %d", len(rows), total)
	}
	signRows := 0
	for _, r := range rows {
		if r.Event != "sign" {
			continue
		}
		signRows++
		if e, ok := signed[r.Seq]; !ok {
			t.Errorf("sign row %d belongs to no successful ConsumeSAD", r.Seq)
		} else {
			checkEqual(t, fmt.Sprint("sign row ", r.Seq), r, e)
		}
	}
	if signRows != remaining {
		t.Errorf("%d sign rows, want %d", signRows, remaining)
	}
	if n, err := store.VerifyAudit(t.Context(), s); err != nil || n != total {
		t.Errorf("VerifyAudit = %d, %v; want %d, nil", n, err, total)
	}
	if _, err := s.SAD(t.Context(), sad.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SAD after it was used up: %v, want not found", err)
	}
}

// testCreateSADAudit: a SAD created with an audit row has it, with the
// row's Seq set; a failed creation writes neither.
func testCreateSADAudit(t *testing.T, open func(t *testing.T) store.Store) {
	s := withCredential(t, open)
	exp := t0.Add(time.Minute)
	sad := sadFixture("issued", 3, exp)
	in := store.AuditEvent{Time: t0, Event: "authorize", UserID: alice.ID, CredentialID: "c1", Result: "ok"}
	e := in
	if err := s.CreateSAD(t.Context(), sad, &e); err != nil {
		t.Fatalf("CreateSAD: %v", err)
	}
	if e.Seq != 1 || len(e.Hash) == 0 {
		t.Errorf("audit event after CreateSAD: %+v, want Seq 1 and its hash", e)
	}
	rows := allAudit(t, s)
	if len(rows) != 1 {
		t.Fatalf("audit rows %d, want 1", len(rows))
	}
	checkEqual(t, "audit row", rows[0], e)

	// A taken hash: no SAD, no row, the event untouched.
	again := in
	checkErr(t, "CreateSAD taken", s.CreateSAD(t.Context(), sad, &again), store.ErrExists)
	if !reflect.DeepEqual(again, in) {
		t.Errorf("audit event changed by a failed CreateSAD: %+v", again)
	}
	bad := sadFixture("orphan", 1, exp)
	bad.CredentialID = "c9"
	checkErr(t, "CreateSAD unknown credential", s.CreateSAD(t.Context(), bad, &again), store.ErrNotFound)
	if n := len(allAudit(t, s)); n != 1 {
		t.Errorf("audit rows after failed CreateSADs: %d, want 1", n)
	}
}
