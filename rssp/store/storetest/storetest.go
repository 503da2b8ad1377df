// Package storetest is the conformance suite for store.Store
// implementations: every implementation (the embedded SQLite store today,
// PostgreSQL later) runs the same tests, so the RSSP behaves the same on
// each. It checks the contract written in package store's documentation.
//
// Usage, in an implementation's tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := mystore.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

// Run runs the conformance tests. open must return a new, empty store on
// every call; Run closes it when the subtest that opened it ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("users", func(t *testing.T) { testUsers(t, open) })
	t.Run("credentials", func(t *testing.T) { testCredentials(t, open) })
	t.Run("pin failures", func(t *testing.T) { testPINFailures(t, open) })
	t.Run("pin failures concurrently", func(t *testing.T) { testPINFailuresConcurrently(t, open) })
	t.Run("tokens", func(t *testing.T) { testTokens(t, open) })
	t.Run("sads", func(t *testing.T) { testSADs(t, open) })
	t.Run("consume sad", func(t *testing.T) { testConsumeSAD(t, open) })
	t.Run("consume sad concurrently", func(t *testing.T) { testConsumeSADConcurrently(t, open) })
	t.Run("consume sad with audit concurrently", func(t *testing.T) { testConsumeSADAuditConcurrently(t, open) })
	t.Run("create sad with audit", func(t *testing.T) { testCreateSADAudit(t, open) })
	t.Run("rotate token", func(t *testing.T) { testRotateToken(t, open) })
	t.Run("rotate token concurrently", func(t *testing.T) { testRotateTokenConcurrently(t, open) })
	t.Run("purge", func(t *testing.T) { testPurge(t, open) })
	t.Run("audit", func(t *testing.T) { testAudit(t, open) })
	t.Run("audit concurrently", func(t *testing.T) { testAuditConcurrently(t, open) })
	t.Run("close twice", func(t *testing.T) {
		s := open(t)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

// RunTamper checks that store.VerifyAudit finds an audit row changed behind
// the store's back. tamper must change one field (not Seq) of row seq in the
// store's storage without going through its methods, the way someone with
// access to the database would; open is as for Run.
func RunTamper(t *testing.T, open func(t *testing.T) store.Store, tamper func(t *testing.T, s store.Store, seq int64)) {
	const rows = 10
	for _, seq := range []int64{1, 7, rows} {
		t.Run(fmt.Sprintf("fail row %d changed", seq), func(t *testing.T) {
			s := openStore(t, open)
			for i := range rows {
				appendAudit(t, s, store.AuditEvent{Time: t0, Event: "sign", Result: "ok", Detail: fmt.Sprint("row ", i+1)})
			}
			if n, err := store.VerifyAudit(t.Context(), s); err != nil || n != rows {
				t.Fatalf("VerifyAudit before tampering = %d, %v; want %d, nil", n, err, rows)
			}
			tamper(t, s, seq)
			n, err := store.VerifyAudit(t.Context(), s)
			var be *store.AuditBreakError
			if !errors.As(err, &be) || be.Seq != seq {
				t.Fatalf("VerifyAudit = %v, want a break at row %d", err, seq)
			}
			if !errors.Is(err, store.ErrAuditBroken) {
				t.Errorf("errors.Is(err, ErrAuditBroken) = false")
			}
			if n != seq-1 {
				t.Errorf("checked = %d, want %d", n, seq-1)
			}
		})
	}
}

// Fixtures. t0 is in a zone other than UTC and has nanoseconds, so the tests
// see both the conversion to UTC and the precision.
var (
	cet = time.FixedZone("CET", 3600)
	t0  = time.Date(2025, 6, 1, 12, 0, 0, 123456789, cet)
)

// errInvalid, as a wanted error, means "an error that matches none of the
// store's sentinels": the answer to an invalid argument.
var errInvalid = errors.New("invalid argument")

var sentinels = []error{store.ErrNotFound, store.ErrExists, store.ErrExhausted, store.ErrExpired, store.ErrRevoked}

// checkErr checks err against want: nil, errInvalid, or a sentinel.
func checkErr(t *testing.T, what string, err, want error) bool {
	t.Helper()
	switch {
	case want == nil:
		if err != nil {
			t.Errorf("%s: unexpected error: %v", what, err)
			return false
		}
	case want == errInvalid:
		if err == nil {
			t.Errorf("%s: no error, want one for an invalid argument", what)
			return false
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				t.Errorf("%s: error %q matches %q; want an invalid-argument error", what, err, s)
				return false
			}
		}
	default:
		if !errors.Is(err, want) {
			t.Errorf("%s: error = %v, want %q", what, err, want)
			return false
		}
	}
	return true
}

func openStore(t *testing.T, open func(t *testing.T) store.Store) store.Store {
	t.Helper()
	s := open(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// sum returns a token or SAD hash for a name.
func sum(name string) []byte {
	h := sha256.Sum256([]byte(name))
	return h[:]
}

// The normalizers turn a value as written into the value the store must
// return: times in UTC without a monotonic reading, empty byte slices and
// lists nil.

func normTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Round(0).UTC()
}

func normBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func normList(l [][]byte) [][]byte {
	if len(l) == 0 {
		return nil
	}
	return l
}

func normUser(u store.User) store.User {
	u.CreatedAt = normTime(u.CreatedAt)
	return u
}

func normCredential(c store.Credential) store.Credential {
	c.KeyRef = normBytes(c.KeyRef)
	c.PublicKey = normBytes(c.PublicKey)
	c.CertChain = normList(c.CertChain)
	c.OTPSealed = normBytes(c.OTPSealed)
	c.CreatedAt = normTime(c.CreatedAt)
	return c
}

func normToken(k store.Token) store.Token {
	k.ExpiresAt = normTime(k.ExpiresAt)
	k.CreatedAt = normTime(k.CreatedAt)
	return k
}

func normSAD(s store.SAD) store.SAD {
	s.Hashes = normList(s.Hashes)
	s.ExpiresAt = normTime(s.ExpiresAt)
	s.CreatedAt = normTime(s.CreatedAt)
	return s
}

func checkEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func mustCreateUser(t *testing.T, s store.Store, u store.User) {
	t.Helper()
	if err := s.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%q): %v", u.Name, err)
	}
}

func mustCreateCredential(t *testing.T, s store.Store, c store.Credential) {
	t.Helper()
	if err := s.CreateCredential(t.Context(), c); err != nil {
		t.Fatalf("CreateCredential(%q): %v", c.ID, err)
	}
}

func mustCreateSAD(t *testing.T, s store.Store, sad store.SAD) {
	t.Helper()
	if err := s.CreateSAD(t.Context(), sad, nil); err != nil {
		t.Fatalf("CreateSAD: %v", err)
	}
}

func appendAudit(t *testing.T, s store.Store, e store.AuditEvent) store.AuditEvent {
	t.Helper()
	got, err := s.AppendAudit(t.Context(), e)
	if err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	return got
}

var (
	alice = store.User{ID: "u-alice", Name: "alice", PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", CreatedAt: t0}
	bob   = store.User{ID: "u-bob", Name: "bob", PasswordHash: "$argon2id$bob", Disabled: true} // zero CreatedAt
)

// fullCredential has every field set.
func fullCredential(id, userID string, created time.Time) store.Credential {
	return store.Credential{
		ID:          id,
		UserID:      userID,
		Description: "signing key " + id + " ✓",
		KeyType:     "ec-p256",
		Backend:     "soft",
		KeyRef:      []byte("ref-" + id),
		PublicKey:   []byte{0x30, 0x59, 0x00, 0xff},
		CertChain:   [][]byte{[]byte("leaf " + id), {0x00, 0x01, 0x00}, bytes.Repeat([]byte{0xee}, 3000)},
		SCAL:        2,
		Multisign:   5,
		AuthMode:    "explicit",
		PINHash:     "$argon2id$pin",
		OTPType:     "totp",
		OTPSealed:   []byte{9, 8, 7},
		CreatedAt:   created,
	}
}

// withUsers opens a store holding alice and bob.
func withUsers(t *testing.T, open func(t *testing.T) store.Store) store.Store {
	t.Helper()
	s := openStore(t, open)
	mustCreateUser(t, s, alice)
	mustCreateUser(t, s, bob)
	return s
}

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

func testTokens(t *testing.T, open func(t *testing.T) store.Store) {
	s := withUsers(t, open)
	exp := t0.Add(time.Hour)
	tok := func(name string, kind store.TokenKind, user, family string) store.Token {
		return store.Token{Hash: sum(name), Kind: kind, UserID: user, ClientID: "client-" + name, Scope: "service",
			Family: family, ExpiresAt: exp, CreatedAt: t0}
	}
	a1 := tok("a1", store.AccessToken, alice.ID, "fam-a")
	r1 := tok("r1", store.RefreshToken, alice.ID, "fam-a")
	a2 := tok("a2", store.AccessToken, alice.ID, "fam-b")
	b1 := tok("b1", store.AccessToken, bob.ID, "")
	b1.ClientID, b1.Scope, b1.CreatedAt = "", "credential", time.Time{}
	old := tok("old", store.RefreshToken, bob.ID, "fam-c")
	old.ExpiresAt, old.Revoked = t0.Add(-time.Hour), true

	creates := []struct {
		name    string
		tok     store.Token
		wantErr error
	}{
		{"ok access", a1, nil},
		{"ok refresh same family", r1, nil},
		{"ok other family", a2, nil},
		{"ok no family no client", b1, nil},
		{"ok expired and revoked", old, nil},
		{"fail taken hash", tok("a1", store.RefreshToken, bob.ID, "x"), store.ErrExists},
		{"fail unknown user", tok("n1", store.AccessToken, "u-nobody", "x"), store.ErrNotFound},
		{"fail empty hash", store.Token{Kind: store.AccessToken, UserID: alice.ID, ExpiresAt: exp}, errInvalid},
		{"fail no expiry", store.Token{Hash: sum("n2"), Kind: store.AccessToken, UserID: alice.ID}, errInvalid},
	}
	for _, tc := range creates {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "CreateToken", s.CreateToken(t.Context(), tc.tok), tc.wantErr)
		})
	}

	check := func(t *testing.T, want store.Token) {
		t.Helper()
		got, err := s.Token(t.Context(), want.Hash)
		if err != nil {
			t.Fatalf("Token: %v", err)
		}
		checkEqual(t, "token", got, normToken(want))
	}
	for _, want := range []store.Token{a1, r1, a2, b1, old} {
		t.Run("ok get "+want.ClientID, func(t *testing.T) { check(t, want) })
	}
	t.Run("fail get unknown", func(t *testing.T) {
		_, err := s.Token(t.Context(), sum("nope"))
		checkErr(t, "Token", err, store.ErrNotFound)
	})

	revokes := []struct {
		name    string
		hash    []byte
		wantErr error
	}{
		{"ok revoke", a2.Hash, nil},
		{"ok revoke again", a2.Hash, nil},
		{"fail revoke unknown", sum("nope"), store.ErrNotFound},
	}
	for _, tc := range revokes {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "RevokeToken", s.RevokeToken(t.Context(), tc.hash), tc.wantErr)
		})
	}
	a2.Revoked = true
	t.Run("ok revoked", func(t *testing.T) { check(t, a2) })

	families := []struct {
		name   string
		family string
		want   []store.Token // every token after the call
	}{
		{"ok unknown family", "fam-x", []store.Token{a1, r1, a2, b1, old}},
		{"ok empty family revokes nothing", "", []store.Token{a1, r1, a2, b1, old}},
		{"ok family", "fam-a", []store.Token{revoked(a1), revoked(r1), a2, b1, old}},
		{"ok family again", "fam-a", []store.Token{revoked(a1), revoked(r1), a2, b1, old}},
	}
	for _, tc := range families {
		t.Run("revoke family "+tc.name, func(t *testing.T) {
			if err := s.RevokeFamily(t.Context(), tc.family); err != nil {
				t.Fatalf("RevokeFamily: %v", err)
			}
			for _, want := range tc.want {
				check(t, want)
			}
		})
	}
}

func revoked(k store.Token) store.Token {
	k.Revoked = true
	return k
}

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
	call := func(t *testing.T, hash []byte, n int, now time.Time, detail string) (store.SAD, error) {
		t.Helper()
		before := allAudit(t, s)
		in := signEvent(detail, now)
		var audit *store.AuditEvent
		if withAudit {
			a := in
			audit = &a
		}
		got, err := s.ConsumeSAD(t.Context(), hash, n, now, audit)
		checkConsumeAudit(t, s, before, in, audit, withAudit && err == nil)
		return got, err
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
			got, err := call(t, sad.Hash, tc.n, tc.now, tc.name)
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
			checkEqual(t, "returned SAD", got, normSAD(want))
			if tc.wantLeft == 0 {
				checkErr(t, "SAD after the last signature", getErr, store.ErrNotFound)
				_, err := call(t, sad.Hash, 1, tc.now, "after the last")
				checkErr(t, "ConsumeSAD after the last signature", err, store.ErrNotFound)
				return
			}
			checkErr(t, "SAD after", getErr, nil)
			checkEqual(t, "stored SAD", after, normSAD(want))
		})
	}
	t.Run("fail unknown", func(t *testing.T) {
		_, err := call(t, sum("nope"), 1, now, "unknown")
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
		if _, err := s.ConsumeSAD(t.Context(), sad.Hash, 1, now, &e); err != nil {
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
					_, err := s.ConsumeSAD(t.Context(), sad.Hash, tc.n, now, nil)
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
			_, err := s.ConsumeSAD(t.Context(), sad.Hash, 1, t0, &e)
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

func testPurge(t *testing.T, open func(t *testing.T) store.Store) {
	s := withCredential(t, open)
	now := t0.Add(time.Hour)
	items := []struct {
		name    string
		expires time.Time
		revoked bool
		gone    bool
	}{
		{"expired long ago", now.Add(-24 * time.Hour), false, true},
		{"expired at now", now, false, true},
		{"expired and revoked", now.Add(-time.Second), true, true},
		{"valid a nanosecond more", now.Add(time.Nanosecond), false, false},
		{"valid", now.Add(time.Hour), false, false},
		{"valid but revoked", now.Add(time.Hour), true, false},
	}
	for _, it := range items {
		tok := store.Token{Hash: sum("tok " + it.name), Kind: store.RefreshToken, UserID: alice.ID, Family: "f",
			ExpiresAt: it.expires, Revoked: it.revoked, CreatedAt: t0}
		if err := s.CreateToken(t.Context(), tok); err != nil {
			t.Fatalf("CreateToken: %v", err)
		}
		mustCreateSAD(t, s, sadFixture("sad "+it.name, 1, it.expires))
	}
	appendAudit(t, s, store.AuditEvent{Time: t0, Event: "login", Result: "ok"})

	if err := s.Purge(t.Context(), now); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	for _, it := range items {
		want := error(nil)
		if it.gone {
			want = store.ErrNotFound
		}
		t.Run(it.name, func(t *testing.T) {
			_, err := s.Token(t.Context(), sum("tok "+it.name))
			checkErr(t, "token", err, want)
			_, err = s.SAD(t.Context(), sum("sad "+it.name))
			checkErr(t, "SAD", err, want)
		})
	}
	t.Run("ok the rest stays", func(t *testing.T) {
		if _, err := s.UserByID(t.Context(), alice.ID); err != nil {
			t.Errorf("user: %v", err)
		}
		if _, err := s.Credential(t.Context(), "c1"); err != nil {
			t.Errorf("credential: %v", err)
		}
		if n, err := store.VerifyAudit(t.Context(), s); n != 1 || err != nil {
			t.Errorf("VerifyAudit = %d, %v; want 1, nil", n, err)
		}
	})
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

// testRotateToken: the compare-and-set of a refresh token's rotation.
func testRotateToken(t *testing.T, open func(t *testing.T) store.Store) {
	s := withUsers(t, open)
	tok := store.Token{Hash: sum("rt"), Kind: store.RefreshToken, UserID: alice.ID, Family: "f",
		ExpiresAt: t0.Add(time.Hour), CreatedAt: t0}
	if err := s.CreateToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	next := func(name string) []store.Token {
		return []store.Token{
			{Hash: sum(name + " access"), Kind: store.AccessToken, UserID: alice.ID, Family: "f", ExpiresAt: t0.Add(time.Hour), CreatedAt: t0},
			{Hash: sum(name + " refresh"), Kind: store.RefreshToken, UserID: alice.ID, Family: "f", ExpiresAt: t0.Add(time.Hour), CreatedAt: t0},
		}
	}
	for _, tc := range []struct {
		name    string
		hash    []byte
		next    []store.Token
		wantErr error
	}{
		{"fail new token of an unknown user", tok.Hash, []store.Token{{Hash: sum("x"), Kind: store.AccessToken,
			UserID: "u-nobody", ExpiresAt: t0.Add(time.Hour)}}, store.ErrNotFound},
		{"fail new token without expiry", tok.Hash, []store.Token{{Hash: sum("y"), Kind: store.AccessToken, UserID: alice.ID}}, errInvalid},
		{"ok first rotation", tok.Hash, next("first"), nil},
		{"fail second rotation", tok.Hash, next("second"), store.ErrRevoked},
		{"fail unknown", sum("nope"), next("third"), store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, "RotateToken", s.RotateToken(t.Context(), tc.hash, tc.next), tc.wantErr)
		})
	}
	got, err := s.Token(t.Context(), tok.Hash)
	if err != nil || !got.Revoked {
		t.Errorf("token after rotation: %+v, %v; want revoked", got, err)
	}
	// The winner's tokens exist; the failed calls' do not.
	for _, n := range next("first") {
		if _, err := s.Token(t.Context(), n.Hash); err != nil {
			t.Errorf("new token of the rotation: %v", err)
		}
	}
	for _, h := range [][]byte{sum("x"), sum("y"), next("second")[0].Hash, next("third")[0].Hash} {
		_, err := s.Token(t.Context(), h)
		checkErr(t, "token of a failed rotation", err, store.ErrNotFound)
	}
}

// testRotateTokenConcurrently: of many simultaneous rotations of one
// token, exactly one wins.
func testRotateTokenConcurrently(t *testing.T, open func(t *testing.T) store.Store) {
	s := withUsers(t, open)
	const racers = 20
	for round := range 5 {
		tok := store.Token{Hash: sum(fmt.Sprint("race ", round)), Kind: store.RefreshToken, UserID: alice.ID,
			Family: "f", ExpiresAt: t0.Add(time.Hour), CreatedAt: t0}
		if err := s.CreateToken(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
		var (
			wg    sync.WaitGroup
			won   atomic.Int32
			start = make(chan struct{})
		)
		for range racers {
			wg.Go(func() {
				<-start
				switch err := s.RotateToken(t.Context(), tok.Hash, nil); {
				case err == nil:
					won.Add(1)
				case errors.Is(err, store.ErrRevoked):
				default:
					t.Errorf("RotateToken: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := won.Load(); n != 1 {
			t.Fatalf("round %d: %d of %d simultaneous rotations won, want exactly 1", round, n, racers)
		}
	}
}
