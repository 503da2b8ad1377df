package storetest

// The conformance tests of store.PendingStore: out-of-band authorizations,
// online OTP challenges and asynchronous operations, which a request
// started on one node may finish on another.

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

// RunPending runs the conformance tests of store.PendingStore; open is as
// for Run and must return a store that implements it.
func RunPending(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("pending", func(t *testing.T) { testPending(t, open) })
	t.Run("decide pending concurrently", func(t *testing.T) { testDecideConcurrently(t, open) })
	t.Run("take pending concurrently", func(t *testing.T) { testTakePendingConcurrently(t, open) })
	t.Run("challenges", func(t *testing.T) { testChallenges(t, open) })
	t.Run("operations", func(t *testing.T) { testOps(t, open) })
	t.Run("finish operation concurrently", func(t *testing.T) { testFinishOpConcurrently(t, open) })
}

func withPending(t *testing.T, open func(t *testing.T) store.Store) (store.Store, store.PendingStore) {
	t.Helper()
	s := withCredential(t, open)
	p, ok := s.(store.PendingStore)
	if !ok {
		t.Fatalf("%T does not implement store.PendingStore", s)
	}
	return s, p
}

func pendingFixture(name string, expires time.Time) store.PendingAuth {
	return store.PendingAuth{HandleHash: sum("handle " + name), ApprovalHash: sum("approval " + name), UserID: alice.ID,
		CredentialID: "c1", NumSignatures: 2, HashAlgo: "2.16.840.1.101.3.4.2.1", Hashes: [][]byte{sum("d1"), sum("d2")},
		Description: "contract ✓", ExpiresAt: expires, CreatedAt: t0}
}

func testPending(t *testing.T, open func(t *testing.T) store.Store) {
	_, p := withPending(t, open)
	ctx := t.Context()
	now := t0.Add(time.Minute)
	exp := now.Add(5 * time.Minute)
	a := pendingFixture("a", exp)
	if err := p.CreatePending(ctx, a); err != nil {
		t.Fatalf("CreatePending: %v", err)
	}
	checkErr(t, "CreatePending again", p.CreatePending(ctx, a), store.ErrExists)
	orphan := pendingFixture("orphan", exp)
	orphan.CredentialID = "nope"
	checkErr(t, "CreatePending of an unknown credential", p.CreatePending(ctx, orphan), store.ErrNotFound)

	want := a
	want.Decision = store.Pending
	want.ExpiresAt, want.CreatedAt = normTime(exp), normTime(t0)
	got, err := p.PendingByApproval(ctx, a.ApprovalHash)
	if checkErr(t, "PendingByApproval", err, nil) {
		checkEqual(t, "PendingByApproval", got, want)
	}
	_, err = p.PendingByApproval(ctx, sum("nope"))
	checkErr(t, "PendingByApproval of an unknown token", err, store.ErrNotFound)

	// Undecided: the owner's poll returns it and leaves it; another user's
	// poll finds nothing and leaves it too.
	_, err = p.TakePending(ctx, a.HandleHash, bob.ID, now)
	checkErr(t, "TakePending by another user", err, store.ErrNotFound)
	got, err = p.TakePending(ctx, a.HandleHash, alice.ID, now)
	if checkErr(t, "TakePending undecided", err, nil) && got.Decision != store.Pending {
		t.Errorf("TakePending undecided: decision %q", got.Decision)
	}

	checkErr(t, "DecidePending with no decision", p.DecidePending(ctx, a.ApprovalHash, store.Pending, now), errInvalid)
	checkErr(t, "DecidePending unknown", p.DecidePending(ctx, sum("nope"), store.Approved, now), store.ErrNotFound)
	checkErr(t, "DecidePending", p.DecidePending(ctx, a.ApprovalHash, store.Approved, now), nil)
	checkErr(t, "DecidePending again", p.DecidePending(ctx, a.ApprovalHash, store.Denied, now), store.ErrNotFound)

	got, err = p.TakePending(ctx, a.HandleHash, alice.ID, now)
	if checkErr(t, "TakePending decided", err, nil) && got.Decision != store.Approved {
		t.Errorf("TakePending decided: decision %q", got.Decision)
	}
	_, err = p.TakePending(ctx, a.HandleHash, alice.ID, now)
	checkErr(t, "TakePending after it was taken", err, store.ErrNotFound)

	// Expiry: deciding and polling after ExpiresAt fail; the poll deletes.
	b := pendingFixture("b", exp)
	if err := p.CreatePending(ctx, b); err != nil {
		t.Fatal(err)
	}
	checkErr(t, "DecidePending at expiry", p.DecidePending(ctx, b.ApprovalHash, store.Approved, exp), store.ErrExpired)
	_, err = p.TakePending(ctx, b.HandleHash, alice.ID, exp)
	checkErr(t, "TakePending at expiry", err, store.ErrExpired)
	_, err = p.PendingByApproval(ctx, b.ApprovalHash)
	checkErr(t, "PendingByApproval after an expired poll", err, store.ErrNotFound)

	// PurgePending removes what expired.
	c := pendingFixture("c", now)
	if err := p.CreatePending(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := p.PurgePending(ctx, now); err != nil {
		t.Fatalf("PurgePending: %v", err)
	}
	_, err = p.PendingByApproval(ctx, c.ApprovalHash)
	checkErr(t, "PendingByApproval after PurgePending", err, store.ErrNotFound)
}

// testDecideConcurrently: of 20 decisions at once (approve and deny), one
// is taken.
func testDecideConcurrently(t *testing.T, open func(t *testing.T) store.Store) {
	_, p := withPending(t, open)
	a := pendingFixture("a", t0.Add(time.Hour))
	if err := p.CreatePending(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	var won atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := store.Approved
			if i%2 == 1 {
				d = store.Denied
			}
			switch err := p.DecidePending(t.Context(), a.ApprovalHash, d, t0); {
			case err == nil:
				won.Add(1)
			case !errors.Is(err, store.ErrNotFound):
				t.Errorf("DecidePending: %v", err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Errorf("%d decisions taken, want 1", won.Load())
	}
}

// testTakePendingConcurrently: an approved authorization polled 20 times
// at once is handed out once (one SAD per handle).
func testTakePendingConcurrently(t *testing.T, open func(t *testing.T) store.Store) {
	_, p := withPending(t, open)
	a := pendingFixture("a", t0.Add(time.Hour))
	if err := p.CreatePending(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if err := p.DecidePending(t.Context(), a.ApprovalHash, store.Approved, t0); err != nil {
		t.Fatal(err)
	}
	var got atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch pa, err := p.TakePending(t.Context(), a.HandleHash, alice.ID, t0); {
			case err == nil && pa.Decision == store.Approved:
				got.Add(1)
			case err == nil:
				t.Errorf("TakePending: decision %q", pa.Decision)
			case !errors.Is(err, store.ErrNotFound):
				t.Errorf("TakePending: %v", err)
			}
		}()
	}
	wg.Wait()
	if got.Load() != 1 {
		t.Errorf("the approval was handed out %d times, want once", got.Load())
	}
}

func testChallenges(t *testing.T, open func(t *testing.T) store.Store) {
	_, p := withPending(t, open)
	ctx := t.Context()
	exp := t0.Add(time.Minute)
	_, err := p.Challenge(ctx, "c1")
	checkErr(t, "Challenge before any", err, store.ErrNotFound)
	checkErr(t, "SetChallenge of an unknown credential",
		p.SetChallenge(ctx, store.Challenge{CredentialID: "nope", CodeHash: "$argon2id$x", ExpiresAt: exp}), store.ErrNotFound)
	for _, code := range []string{"$argon2id$first", "$argon2id$second"} { // the second replaces the first
		if err := p.SetChallenge(ctx, store.Challenge{CredentialID: "c1", CodeHash: code, ExpiresAt: exp}); err != nil {
			t.Fatalf("SetChallenge: %v", err)
		}
		got, err := p.Challenge(ctx, "c1")
		if checkErr(t, "Challenge", err, nil) {
			checkEqual(t, "Challenge", got, store.Challenge{CredentialID: "c1", CodeHash: code, ExpiresAt: normTime(exp)})
		}
	}
	if err := p.DeleteChallenge(ctx, "c1"); err != nil {
		t.Fatalf("DeleteChallenge: %v", err)
	}
	_, err = p.Challenge(ctx, "c1")
	checkErr(t, "Challenge after DeleteChallenge", err, store.ErrNotFound)
}

func opFixture(name string) store.AsyncOp {
	return store.AsyncOp{IDHash: sum("op " + name), UserID: alice.ID, CredentialID: "c1", Status: store.OpRunning,
		ExpiresAt: t0.Add(time.Hour), CreatedAt: t0}
}

func testOps(t *testing.T, open func(t *testing.T) store.Store) {
	_, p := withPending(t, open)
	ctx := t.Context()
	op := opFixture("a")
	if err := p.CreateOp(ctx, op); err != nil {
		t.Fatalf("CreateOp: %v", err)
	}
	checkErr(t, "CreateOp again", p.CreateOp(ctx, op), store.ErrExists)
	want := op
	want.ExpiresAt, want.CreatedAt = normTime(op.ExpiresAt), normTime(t0)
	got, err := p.Op(ctx, op.IDHash)
	if checkErr(t, "Op running", err, nil) {
		checkEqual(t, "Op running", got, want)
	}
	sigs := [][]byte{{1, 2, 3}, bytesOf(300)}
	if err := p.FinishOp(ctx, op.IDHash, store.OpDone, sigs, "", ""); err != nil {
		t.Fatalf("FinishOp: %v", err)
	}
	want.Status, want.Signatures = store.OpDone, sigs
	got, err = p.Op(ctx, op.IDHash)
	if checkErr(t, "Op done", err, nil) {
		checkEqual(t, "Op done", got, want)
	}
	checkErr(t, "FinishOp again", p.FinishOp(ctx, op.IDHash, store.OpFailed, nil, "x", "y"), store.ErrNotFound)
	checkErr(t, "FinishOp unknown", p.FinishOp(ctx, sum("nope"), store.OpDone, nil, "", ""), store.ErrNotFound)

	failed := opFixture("b")
	if err := p.CreateOp(ctx, failed); err != nil {
		t.Fatal(err)
	}
	if err := p.FinishOp(ctx, failed.IDHash, store.OpFailed, nil, "invalid_request", "why"); err != nil {
		t.Fatal(err)
	}
	got, err = p.Op(ctx, failed.IDHash)
	if checkErr(t, "Op failed", err, nil) && (got.Status != store.OpFailed || got.ErrCode != "invalid_request" ||
		got.ErrDesc != "why" || got.Signatures != nil) {
		t.Errorf("Op failed = %+v", got)
	}
	if err := p.PurgePending(ctx, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	_, err = p.Op(ctx, op.IDHash)
	checkErr(t, "Op after PurgePending", err, store.ErrNotFound)
}

func bytesOf(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// testFinishOpConcurrently: a running operation finishes once, whichever
// of 20 simultaneous finishers wins; the others change nothing.
func testFinishOpConcurrently(t *testing.T, open func(t *testing.T) store.Store) {
	_, p := withPending(t, open)
	op := opFixture("a")
	if err := p.CreateOp(t.Context(), op); err != nil {
		t.Fatal(err)
	}
	var won atomic.Int32
	var winner atomic.Value
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sig := []byte(fmt.Sprint("sig ", i))
			switch err := p.FinishOp(t.Context(), op.IDHash, store.OpDone, [][]byte{sig}, "", ""); {
			case err == nil:
				won.Add(1)
				winner.Store(sig)
			case !errors.Is(err, store.ErrNotFound):
				t.Errorf("FinishOp: %v", err)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("the operation finished %d times, want once", won.Load())
	}
	got, err := p.Op(t.Context(), op.IDHash)
	if err != nil || len(got.Signatures) != 1 || string(got.Signatures[0]) != string(winner.Load().([]byte)) {
		t.Errorf("Op = %+v, %v; want the winner's signature", got, err)
	}
}
