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
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

// Run runs the conformance tests. open must return a new, empty store on
// every call; Run closes it when the subtest that opened it ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("users", func(t *testing.T) { testUsers(t, open) })
	t.Run("external subjects", func(t *testing.T) { testExternalSubjects(t, open) })
	t.Run("credentials", func(t *testing.T) { testCredentials(t, open) })
	t.Run("admin", func(t *testing.T) { testAdmin(t, open) })
	t.Run("pin failures", func(t *testing.T) { testPINFailures(t, open) })
	t.Run("pin failures concurrently", func(t *testing.T) { testPINFailuresConcurrently(t, open) })
	t.Run("factor lock", func(t *testing.T) { testFactorLock(t, open) })
	t.Run("factor lock concurrently", func(t *testing.T) { testFactorLockConcurrently(t, open) })
	t.Run("factor checks concurrently", func(t *testing.T) { testFactorChecksConcurrently(t, open) })
	t.Run("totp step", func(t *testing.T) { testTOTPStep(t, open) })
	t.Run("tokens", func(t *testing.T) { testTokens(t, open) })
	t.Run("sads", func(t *testing.T) { testSADs(t, open) })
	t.Run("consume sad", func(t *testing.T) { testConsumeSAD(t, open) })
	t.Run("consume sad concurrently", func(t *testing.T) { testConsumeSADConcurrently(t, open) })
	t.Run("consume sad with audit concurrently", func(t *testing.T) { testConsumeSADAuditConcurrently(t, open) })
	t.Run("create sad with audit", func(t *testing.T) { testCreateSADAudit(t, open) })
	t.Run("replace sad", func(t *testing.T) { testReplaceSAD(t, open) })
	t.Run("replace sad concurrently", func(t *testing.T) { testReplaceSADConcurrently(t, open) })
	t.Run("token and user", func(t *testing.T) { testTokenUser(t, open) })
	t.Run("signing state", func(t *testing.T) { testSigningState(t, open) })
	t.Run("rotate token", func(t *testing.T) { testRotateToken(t, open) })
	t.Run("rotate token concurrently", func(t *testing.T) { testRotateTokenConcurrently(t, open) })
	t.Run("purge", func(t *testing.T) { testPurge(t, open) })
	t.Run("throttle", func(t *testing.T) { testThrottle(t, open) })
	t.Run("throttle concurrently", func(t *testing.T) { testThrottleConcurrently(t, open) })
	t.Run("audit", func(t *testing.T) { testAudit(t, open) })
	t.Run("audit concurrently", func(t *testing.T) { testAuditConcurrently(t, open) })
	t.Run("webauthn keys", func(t *testing.T) { testWebAuthnKeys(t, open) })
	t.Run("webauthn counter concurrently", func(t *testing.T) { testWebAuthnCounterConcurrently(t, open) })
	t.Run("webauthn ceremonies", func(t *testing.T) { testWebAuthnCeremonies(t, open) })
	t.Run("ping", func(t *testing.T) {
		s := open(t)
		if err := s.Ping(t.Context()); err != nil {
			t.Fatalf("Ping of an open store: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := s.Ping(t.Context()); err == nil {
			t.Error("Ping after Close = nil, want an error")
		}
	})
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

var sentinels = []error{store.ErrNotFound, store.ErrExists, store.ErrExhausted, store.ErrExpired, store.ErrRevoked, store.ErrInUse, store.ErrStale,
	store.ErrUsed, store.ErrBusy}

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
	alice = store.User{ID: "u-alice", Name: "alice", PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", CreatedAt: t0,
		RequireFIDO: true}
	bob = store.User{ID: "u-bob", Name: "bob", PasswordHash: "$argon2id$bob", Disabled: true} // zero CreatedAt
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

		SignatureQualifier: "eu_eidas_qes",
		FIDO:               true,
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
