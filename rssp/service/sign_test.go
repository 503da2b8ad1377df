package service_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/service/servicetest"
	"github.com/csctoken/csctoken/rssp/store"
)

// TestSADBinding: a SAD signs only for its credential, its user and, for
// SCAL 2, exactly its hashes; a refused request consumes nothing.
func TestSADBinding(t *testing.T) {
	f := newFixture(t)
	scal1, _ := f.credential(t, nil)
	other, _ := f.credential(t, nil)
	scal2, _ := f.credential(t, func(s *service.CredentialSpec) { s.SCAL = 2 })
	a, b, c := digest("a"), digest("b"), digest("c")
	for _, tc := range []struct {
		name   string
		p      func() service.Principal
		sadFor string
		bound  [][]byte // SCAL 2
		signAt string
		hashes [][]byte
		desc   string // "" for success
	}{
		{"ok scal1 any hash", func() service.Principal { return f.alice }, scal1, nil, scal1, [][]byte{c}, ""},
		{"ok scal2 its hashes", func() service.Principal { return f.alice }, scal2, [][]byte{a, b}, scal2, [][]byte{a, b}, ""},
		{"ok scal2 its hashes in another order", func() service.Principal { return f.alice }, scal2, [][]byte{a, b}, scal2, [][]byte{b, a}, ""},
		{"fail another credential", func() service.Principal { return f.alice }, scal1, nil, other, [][]byte{c}, "not issued for this credential"},
		{"fail another user", func() service.Principal { return f.bob }, scal1, nil, scal1, [][]byte{c}, "credentialID"},
		{"fail scal2 another hash", func() service.Principal { return f.alice }, scal2, [][]byte{a, b}, scal2, [][]byte{a, c}, "not authorized by the SAD"},
		{"fail scal2 a subset", func() service.Principal { return f.alice }, scal2, [][]byte{a, b}, scal2, [][]byte{a}, "not authorized by the SAD"},
		{"fail scal2 one hash twice", func() service.Principal { return f.alice }, scal2, [][]byte{a, b}, scal2, [][]byte{a, a}, "not authorized by the SAD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := max(len(tc.bound), 1)
			sad := f.mustAuthorize(t, tc.sadFor, n, tc.bound...)
			before, _ := f.Store.SAD(t.Context(), sadHash(sad))
			sigs, err := f.sign(t.Context(), tc.p(), tc.signAt, sad, tc.hashes...)
			if tc.desc == "" {
				if err != nil || len(sigs) != len(tc.hashes) {
					t.Fatalf("%d signatures, %v", len(sigs), err)
				}
				return
			}
			wantKind(t, err, service.ErrInvalidRequest)
			if !strings.Contains(err.Error(), tc.desc) {
				t.Errorf("error %q does not say %q", err, tc.desc)
			}
			after, err := f.Store.SAD(t.Context(), sadHash(sad))
			if err != nil || after.Remaining != before.Remaining {
				t.Errorf("a refused request consumed the SAD: %d left of %d (%v)", after.Remaining, before.Remaining, err)
			}
		})
	}
	t.Run("fail scal2 another hash algorithm", func(t *testing.T) {
		sad := f.mustAuthorize(t, scal2, 1, a)
		_, err := f.Service.SignHash(t.Context(), f.alice, service.SignRequest{CredentialID: scal2, SAD: sad,
			Hashes: [][]byte{digest384("a")}, HashAlgorithm: csc.OIDSHA384, SignAlgo: csc.OIDECDSAWithSHA384})
		wantKind(t, err, service.ErrInvalidRequest)
	})
}

// TestSADConsumption: a SAD gives exactly its numSignatures, in one call
// or several, and dies at its expiry; ExtendTransaction moves what is
// left to a new SAD and ends the old one.
func TestSADConsumption(t *testing.T) {
	f := newFixture(t)
	id, _ := f.credential(t, nil) // multisign 3
	x := digest("x")
	t.Run("ok three signatures one by one, then used up", func(t *testing.T) {
		sad := f.mustAuthorize(t, id, 3)
		for i := range 3 {
			if _, err := f.sign(t.Context(), f.alice, id, sad, x); err != nil {
				t.Fatalf("signature %d: %v", i+1, err)
			}
		}
		_, err := f.sign(t.Context(), f.alice, id, sad, x)
		wantKind(t, err, service.ErrInvalidRequest)
	})
	t.Run("fail more hashes than the SAD has left", func(t *testing.T) {
		sad := f.mustAuthorize(t, id, 2)
		_, err := f.sign(t.Context(), f.alice, id, sad, x, x, x)
		wantKind(t, err, service.ErrInvalidRequest)
		if _, err := f.sign(t.Context(), f.alice, id, sad, x, x); err != nil {
			t.Fatalf("the refused call consumed signatures: %v", err)
		}
	})
	t.Run("fail expired", func(t *testing.T) {
		sad := f.mustAuthorize(t, id, 2)
		f.Clock.Advance(f.Options.SADTTL - time.Second)
		if _, err := f.sign(t.Context(), f.alice, id, sad, x); err != nil {
			t.Fatalf("a second before expiry: %v", err)
		}
		f.Clock.Advance(time.Second)
		_, err := f.sign(t.Context(), f.alice, id, sad, x)
		wantKind(t, err, service.ErrInvalidRequest)
		if err != nil && !strings.Contains(err.Error(), "expired") {
			t.Errorf("error %q does not say expired", err)
		}
	})
	t.Run("ok concurrent signers share the count", func(t *testing.T) {
		sad := f.mustAuthorize(t, id, 3)
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for range 8 {
			wg.Go(func() {
				if _, err := f.sign(t.Context(), f.alice, id, sad, x); err == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if ok != 3 {
			t.Errorf("%d signatures from a SAD for 3", ok)
		}
	})
	t.Run("ok extend keeps what is left and ends the old SAD", func(t *testing.T) {
		old := f.mustAuthorize(t, id, 3)
		if _, err := f.sign(t.Context(), f.alice, id, old, x); err != nil {
			t.Fatal(err)
		}
		f.Clock.Advance(f.Options.SADTTL - time.Second)
		next, err := f.Service.ExtendTransaction(t.Context(), f.alice, id, old, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.sign(t.Context(), f.alice, id, old, x); err == nil {
			t.Error("the old SAD still signs after extendTransaction")
		}
		f.Clock.Advance(2 * time.Second) // past the old SAD's expiry
		if _, err := f.sign(t.Context(), f.alice, id, next.Value, x, x); err != nil {
			t.Fatalf("the new SAD: %v", err)
		}
		if _, err := f.sign(t.Context(), f.alice, id, next.Value, x); err == nil {
			t.Error("the new SAD gave more than the old one had left")
		}
	})
	t.Run("fail extend another user's SAD", func(t *testing.T) {
		sad := f.mustAuthorize(t, id, 1)
		_, err := f.Service.ExtendTransaction(t.Context(), f.bob, id, sad, nil, "")
		wantKind(t, err, service.ErrInvalidRequest)
		if _, err := f.sign(t.Context(), f.alice, id, sad, x); err != nil {
			t.Fatalf("bob's refused extension ended alice's SAD: %v", err)
		}
	})
}

// failingSADStore fails the steps that issue a SAD while fail is set.
type failingSADStore struct {
	store.Store
	fail atomic.Bool
}

var errInjected = errors.New("injected store failure")

func (s *failingSADStore) CreateSAD(ctx context.Context, sad store.SAD, audit *store.AuditEvent) error {
	if s.fail.Load() {
		return errInjected
	}
	return s.Store.CreateSAD(ctx, sad, audit)
}

func (s *failingSADStore) ReplaceSAD(ctx context.Context, old []byte, n int, now time.Time, sad store.SAD, audit *store.AuditEvent) error {
	if s.fail.Load() {
		return errInjected
	}
	return s.Store.ReplaceSAD(ctx, old, n, now, sad, audit)
}

// TestExtendTransactionAtomic: an extension whose new SAD cannot be
// issued leaves the old SAD whole (taking the old SAD and issuing the
// new one are one store step).
func TestExtendTransactionAtomic(t *testing.T) {
	var fs *failingSADStore
	f := &fixture{Env: servicetest.NewWithDeps(t, nil, func(d *service.Deps) {
		fs = &failingSADStore{Store: d.Store}
		d.Store = fs
	})}
	f.AddUser(t, "alice", password)
	f.alice = f.login(t, "alice")
	id, _ := f.credential(t, nil) // multisign 3
	old := f.mustAuthorize(t, id, 3)
	fs.fail.Store(true)
	if _, err := f.Service.ExtendTransaction(t.Context(), f.alice, id, old, nil, ""); !errors.Is(err, errInjected) {
		t.Fatalf("ExtendTransaction = %v, want the injected failure", err)
	}
	fs.fail.Store(false)
	if _, err := f.sign(t.Context(), f.alice, id, old, digest("x"), digest("y"), digest("z")); err != nil {
		t.Fatalf("the old SAD after a failed extension: %v", err)
	}
}

// TestSigningSeesEveryChange: the signing path caches what never changes
// of a credential, never its state: a change written to the store by
// anyone (another node, rssp admin in another process: here the store
// directly, behind the service's back) applies to the very next
// signature, after signatures that filled the cache.
func TestSigningSeesEveryChange(t *testing.T) {
	f := newFixture(t)
	id, _ := f.credential(t, func(s *service.CredentialSpec) { s.Multisign = 10 })
	sad := f.mustAuthorize(t, id, 10)
	x := digest("x")
	ctx := t.Context()
	for _, step := range []struct {
		name   string
		change func() error
		want   error // nil: signs
	}{
		{"ok fills the cache", func() error { return nil }, nil},
		{"fail disabled", func() error { return f.Store.SetCredentialDisabled(ctx, id, true) }, service.ErrDisabled},
		{"ok enabled again", func() error { return f.Store.SetCredentialDisabled(ctx, id, false) }, nil},
		{"fail locked", func() error { _, _, err := f.Store.RecordPINFailure(ctx, id, 1); return err }, service.ErrLocked},
		{"ok unlocked", func() error { return f.Store.UnlockCredential(ctx, id) }, nil},
		{"fail SAD deleted", func() error { return f.Store.DeleteSAD(ctx, sadHash(sad)) }, service.ErrInvalidRequest},
	} {
		t.Run(step.name, func(t *testing.T) {
			if err := step.change(); err != nil {
				t.Fatal(err)
			}
			_, err := f.sign(ctx, f.alice, id, sad, x)
			if step.want == nil && err != nil {
				t.Fatalf("sign: %v", err)
			}
			if step.want != nil {
				wantKind(t, err, step.want)
			}
		})
	}
	t.Run("fail credential deleted", func(t *testing.T) {
		sad := f.mustAuthorize(t, id, 2)
		if _, err := f.sign(ctx, f.alice, id, sad, x); err != nil {
			t.Fatal(err)
		}
		if err := f.Store.DeleteCredential(ctx, id); err != nil {
			t.Fatal(err)
		}
		_, err := f.sign(ctx, f.alice, id, sad, x)
		wantKind(t, err, service.ErrInvalidRequest)
	})
}

// failingConsume is a store whose ConsumeSAD fails while fail is set.
type failingConsume struct {
	store.Store
	fail atomic.Bool
}

func (f *failingConsume) ConsumeSAD(ctx context.Context, hash []byte, n int, now time.Time, audit *store.AuditEvent) error {
	if f.fail.Load() {
		return errors.New("the disk is on fire")
	}
	return f.Store.ConsumeSAD(ctx, hash, n, now, audit)
}

// TestSignatureWaitsForItsCommit: the key signs while the consumption
// commits, but a signature whose consumption (and audit row) failed is
// never returned, and the SAD keeps its signatures.
func TestSignatureWaitsForItsCommit(t *testing.T) {
	var st *failingConsume
	env := servicetest.NewWithDeps(t, nil, func(d *service.Deps) { st = &failingConsume{Store: d.Store}; d.Store = st })
	f := &fixture{Env: env}
	f.AddUser(t, "alice", password)
	f.alice = f.login(t, "alice")
	id, _ := f.credential(t, nil)
	sad := f.mustAuthorize(t, id, 3)
	x := digest("x")
	if sigs, err := f.sign(t.Context(), f.alice, id, sad, x); err != nil || len(sigs) != 1 {
		t.Fatalf("%d signatures, %v", len(sigs), err)
	}
	st.fail.Store(true)
	sigs, err := f.sign(t.Context(), f.alice, id, sad, x)
	if err == nil || sigs != nil {
		t.Fatalf("consumption failed, yet %d signatures and error %v", len(sigs), err)
	}
	st.fail.Store(false)
	for i := range 2 {
		if _, err := f.sign(t.Context(), f.alice, id, sad, x); err != nil {
			t.Fatalf("signature %d after the failed consumption: %v", i+2, err)
		}
	}
	if _, err := f.sign(t.Context(), f.alice, id, sad, x); err == nil {
		t.Error("the SAD for 3 gave a fourth signature")
	}
}
