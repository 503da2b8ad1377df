package storetest

// The conformance tests of users, credentials and PIN failure counting.

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

func testUsers(t *testing.T, open func(t *testing.T) store.Store) {
	s := withUsers(t, open)

	creates := []struct {
		name    string
		u       store.User
		wantErr error
	}{
		{"ok new user", store.User{ID: "u-carol", Name: "carol", PasswordHash: "h", CreatedAt: t0.Add(time.Hour)}, nil},
		{"fail taken name", store.User{ID: "u-other", Name: "alice", PasswordHash: "h"}, store.ErrExists},
		{"fail taken id", store.User{ID: "u-alice", Name: "alice2", PasswordHash: "h"}, store.ErrExists},
		{"fail empty id", store.User{Name: "dave", PasswordHash: "h"}, errInvalid},
		{"fail empty name", store.User{ID: "u-dave", PasswordHash: "h"}, errInvalid},
	}
	for _, tc := range creates {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "CreateUser", s.CreateUser(t.Context(), tc.u), tc.wantErr)
		})
	}

	lookups := []struct {
		name    string
		byName  string // else by ID
		id      string
		want    store.User
		wantErr error
	}{
		{"ok by name", "alice", "", alice, nil},
		{"ok by name zero time", "bob", "", bob, nil},
		{"ok by id", "", "u-alice", alice, nil},
		{"ok by id disabled", "", "u-bob", bob, nil},
		{"fail unknown name", "nobody", "", store.User{}, store.ErrNotFound},
		{"fail unknown id", "", "u-nobody", store.User{}, store.ErrNotFound},
		{"fail empty id", "", "", store.User{}, store.ErrNotFound},
		{"fail name is not id", "u-alice", "", store.User{}, store.ErrNotFound},
	}
	for _, tc := range lookups {
		t.Run(tc.name, func(t *testing.T) {
			var (
				got store.User
				err error
			)
			if tc.byName != "" {
				got, err = s.UserByName(t.Context(), tc.byName)
			} else {
				got, err = s.UserByID(t.Context(), tc.id)
			}
			if checkErr(t, "lookup", err, tc.wantErr) && tc.wantErr == nil {
				checkEqual(t, "user", got, normUser(tc.want))
			}
		})
	}
}

func testExternalSubjects(t *testing.T, open func(t *testing.T) store.Store) {
	s := withUsers(t, open)
	ctx := t.Context()
	dave := store.User{ID: "u-dave", Name: "dave", PasswordHash: "h", CreatedAt: t0, ExternalSubject: "sub-dave"}
	checkErr(t, "CreateUser with a subject", s.CreateUser(ctx, dave), nil)
	checkErr(t, "CreateUser with a taken subject",
		s.CreateUser(ctx, store.User{ID: "u-eve", Name: "eve", PasswordHash: "h", ExternalSubject: "sub-dave"}), store.ErrExists)
	checkErr(t, "SetUserExternalSubject alice", s.SetUserExternalSubject(ctx, alice.ID, "https://idp/alice"), nil)

	changes := []struct {
		name    string
		id, sub string
		wantErr error
	}{
		{"fail taken subject", bob.ID, "sub-dave", store.ErrExists},
		{"fail unknown user", "u-nobody", "sub-x", store.ErrNotFound},
		{"ok same subject again", dave.ID, "sub-dave", nil},
	}
	for _, tc := range changes {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "SetUserExternalSubject", s.SetUserExternalSubject(ctx, tc.id, tc.sub), tc.wantErr)
		})
	}

	withSub := alice
	withSub.ExternalSubject = "https://idp/alice"
	lookups := []struct {
		name    string
		sub     string
		want    store.User
		wantErr error
	}{
		{"ok created with it", "sub-dave", dave, nil},
		{"ok set later", "https://idp/alice", withSub, nil},
		{"fail unknown", "sub-nobody", store.User{}, store.ErrNotFound},
		{"fail empty", "", store.User{}, store.ErrNotFound},
		{"fail name is not subject", "alice", store.User{}, store.ErrNotFound},
		{"fail case differs", "SUB-DAVE", store.User{}, store.ErrNotFound},
	}
	for _, tc := range lookups {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.UserByExternalSubject(ctx, tc.sub)
			if checkErr(t, "UserByExternalSubject", err, tc.wantErr) && tc.wantErr == nil {
				checkEqual(t, "user", got, normUser(tc.want))
			}
		})
	}

	t.Run("ok cleared", func(t *testing.T) {
		checkErr(t, "clear", s.SetUserExternalSubject(ctx, alice.ID, ""), nil)
		_, err := s.UserByExternalSubject(ctx, "https://idp/alice")
		checkErr(t, "lookup after clearing", err, store.ErrNotFound)
		got, err := s.UserByID(ctx, alice.ID)
		if checkErr(t, "UserByID", err, nil) {
			checkEqual(t, "user", got, normUser(alice))
		}
		// Several users without a subject: "" is no value of the unique column.
		checkErr(t, "clear bob", s.SetUserExternalSubject(ctx, bob.ID, ""), nil)
	})
}

func testCredentials(t *testing.T, open func(t *testing.T) store.Store) {
	s := withUsers(t, open)
	c1 := fullCredential("c1", alice.ID, t0)
	c2 := fullCredential("c2", alice.ID, t0.Add(-time.Hour)) // older than c1
	c3 := fullCredential("c3", bob.ID, t0.Add(time.Minute))
	c4 := store.Credential{ID: "c4", UserID: alice.ID, KeyType: "rsa-2048", Backend: "pkcs11", SCAL: 1, Multisign: 1,
		AuthMode: "explicit", KeyRef: []byte{}, CertChain: [][]byte{}, CreatedAt: t0.Add(time.Hour)} // empties
	c5 := fullCredential("c5", alice.ID, t0.Add(2*time.Hour))
	c5.PINFailures, c5.Locked, c5.Disabled = 2, true, true

	creates := []struct {
		name    string
		c       store.Credential
		wantErr error
	}{
		{"ok full", c1, nil},
		{"ok older", c2, nil},
		{"ok other user", c3, nil},
		{"ok empty lists", c4, nil},
		{"ok locked and disabled", c5, nil},
		{"fail taken id", fullCredential("c1", bob.ID, t0), store.ErrExists},
		{"fail unknown user", fullCredential("c6", "u-nobody", t0), store.ErrNotFound},
		{"fail empty id", fullCredential("", alice.ID, t0), errInvalid},
	}
	for _, tc := range creates {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "CreateCredential", s.CreateCredential(t.Context(), tc.c), tc.wantErr)
		})
	}

	gets := []struct {
		name    string
		id      string
		want    store.Credential
		wantErr error
	}{
		{"ok full", "c1", c1, nil},
		{"ok empty lists", "c4", c4, nil},
		{"ok locked and disabled", "c5", c5, nil},
		{"ok unchanged by taken id", "c1", c1, nil},
		{"fail unknown", "c9", store.Credential{}, store.ErrNotFound},
		{"fail not created", "c6", store.Credential{}, store.ErrNotFound},
	}
	for _, tc := range gets {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Credential(t.Context(), tc.id)
			if checkErr(t, "Credential", err, tc.wantErr) && tc.wantErr == nil {
				checkEqual(t, "credential", got, normCredential(tc.want))
			}
		})
	}

	lists := []struct {
		name   string
		userID string
		want   []store.Credential
	}{
		{"ok alice by creation time", alice.ID, []store.Credential{c2, c1, c4, c5}},
		{"ok bob", bob.ID, []store.Credential{c3}},
		{"ok all", "", []store.Credential{c2, c1, c3, c4, c5}},
		{"ok unknown user", "u-nobody", nil},
	}
	for _, tc := range lists {
		t.Run("list "+tc.name, func(t *testing.T) {
			got, err := s.Credentials(t.Context(), tc.userID)
			if err != nil {
				t.Fatalf("Credentials: %v", err)
			}
			var want []store.Credential
			for _, c := range tc.want {
				want = append(want, normCredential(c))
			}
			if len(got) != len(want) {
				t.Fatalf("got %d credentials, want %d", len(got), len(want))
			}
			for i := range got {
				checkEqual(t, fmt.Sprint("credential ", i), got[i], want[i])
			}
		})
	}

	disables := []struct {
		name     string
		id       string
		disabled bool
		wantErr  error
	}{
		{"ok disable", "c1", true, nil},
		{"ok disable again", "c1", true, nil},
		{"ok enable", "c5", false, nil},
		{"fail unknown", "c9", true, store.ErrNotFound},
	}
	for _, tc := range disables {
		t.Run("disable "+tc.name, func(t *testing.T) {
			err := s.SetCredentialDisabled(t.Context(), tc.id, tc.disabled)
			if !checkErr(t, "SetCredentialDisabled", err, tc.wantErr) || tc.wantErr != nil {
				return
			}
			got, err := s.Credential(t.Context(), tc.id)
			if err != nil {
				t.Fatalf("Credential: %v", err)
			}
			if got.Disabled != tc.disabled {
				t.Errorf("Disabled = %v, want %v", got.Disabled, tc.disabled)
			}
		})
	}
	t.Run("ok disable leaves the rest", func(t *testing.T) {
		got, err := s.Credential(t.Context(), "c5")
		if err != nil {
			t.Fatalf("Credential: %v", err)
		}
		want := c5
		want.Disabled = false
		checkEqual(t, "credential", got, normCredential(want))
	})
}

func testPINFailures(t *testing.T, open func(t *testing.T) store.Store) {
	s := withUsers(t, open)
	c := fullCredential("c1", alice.ID, t0)
	mustCreateCredential(t, s, c)
	mustCreateCredential(t, s, fullCredential("c2", alice.ID, t0))

	type state struct {
		failures int
		locked   bool
	}
	const limit = 3
	steps := []struct {
		name    string
		op      string // "fail", "reset", "unlock"
		id      string
		limit   int
		want    state // after the step
		wantErr error
	}{
		{"ok first failure", "fail", "c1", limit, state{1, false}, nil},
		{"ok second failure", "fail", "c1", limit, state{2, false}, nil},
		{"ok reset", "reset", "c1", 0, state{0, false}, nil},
		{"ok failure after reset", "fail", "c1", limit, state{1, false}, nil},
		{"ok second again", "fail", "c1", limit, state{2, false}, nil},
		{"ok limit locks", "fail", "c1", limit, state{3, true}, nil},
		{"ok failure when locked", "fail", "c1", limit, state{4, true}, nil},
		{"ok reset keeps the lock", "reset", "c1", 0, state{0, true}, nil},
		{"ok failure after reset stays locked", "fail", "c1", limit, state{1, true}, nil},
		{"ok unlock clears", "unlock", "c1", 0, state{0, false}, nil},
		{"ok failure after unlock", "fail", "c1", limit, state{1, false}, nil},
		{"ok lower limit locks at once", "fail", "c1", 2, state{2, true}, nil},
		{"ok unlock again", "unlock", "c1", 0, state{0, false}, nil},
		{"ok limit one", "fail", "c1", 1, state{1, true}, nil},
		{"ok unlock unlocked", "unlock", "c2", 0, state{0, false}, nil},
		{"fail zero limit", "fail", "c2", 0, state{0, false}, errInvalid},
		{"fail unknown", "fail", "c9", limit, state{}, store.ErrNotFound},
		{"fail reset unknown", "reset", "c9", 0, state{}, store.ErrNotFound},
		{"fail unlock unknown", "unlock", "c9", 0, state{}, store.ErrNotFound},
	}
	for _, tc := range steps {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			switch tc.op {
			case "fail":
				var (
					n      int
					locked bool
				)
				n, locked, err = s.RecordPINFailure(t.Context(), tc.id, tc.limit)
				if err == nil && (state{n, locked}) != tc.want {
					t.Errorf("RecordPINFailure = %d, %v; want %d, %v", n, locked, tc.want.failures, tc.want.locked)
				}
			case "reset":
				err = s.ResetPINFailures(t.Context(), tc.id)
			case "unlock":
				err = s.UnlockCredential(t.Context(), tc.id)
			}
			if !checkErr(t, tc.op, err, tc.wantErr) || errors.Is(err, store.ErrNotFound) {
				return
			}
			got, err := s.Credential(t.Context(), tc.id)
			if err != nil {
				t.Fatalf("Credential: %v", err)
			}
			if (state{got.PINFailures, got.Locked}) != tc.want {
				t.Errorf("stored failures, locked = %d, %v; want %d, %v",
					got.PINFailures, got.Locked, tc.want.failures, tc.want.locked)
			}
		})
	}
	t.Run("ok other fields untouched", func(t *testing.T) {
		got, err := s.Credential(t.Context(), "c1")
		if err != nil {
			t.Fatalf("Credential: %v", err)
		}
		want := c
		want.PINFailures, want.Locked = got.PINFailures, got.Locked
		checkEqual(t, "credential", got, normCredential(want))
	})
}

func testPINFailuresConcurrently(t *testing.T, open func(t *testing.T) store.Store) {
	s := withUsers(t, open)
	mustCreateCredential(t, s, fullCredential("c1", alice.ID, t0))
	const (
		workers = 20
		limit   = 5
	)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		counts  []int
		lockedN int
		start   = make(chan struct{})
	)
	for range workers {
		wg.Go(func() {
			<-start
			n, locked, err := s.RecordPINFailure(t.Context(), "c1", limit)
			if err != nil {
				t.Errorf("RecordPINFailure: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			counts = append(counts, n)
			if locked != (n >= limit) {
				t.Errorf("count %d: locked = %v", n, locked)
			}
			if locked {
				lockedN++
			}
		})
	}
	close(start)
	wg.Wait()
	slices.Sort(counts)
	for i, n := range counts {
		if n != i+1 {
			t.Fatalf("counts = %v, want 1..%d each once (lost or doubled increments)", counts, workers)
		}
	}
	if lockedN != workers-limit+1 {
		t.Errorf("%d calls saw the lock, want %d", lockedN, workers-limit+1)
	}
}
