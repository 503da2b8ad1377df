package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

func webauthnKey(id, userID, name string, created time.Time) store.WebAuthnKey {
	return store.WebAuthnKey{
		ID: []byte("cred-" + id), UserID: userID, Name: name, PublicKey: []byte{0xa5, 0x01, 0x02, 0x03, 0x26},
		AttestationType: "none", AAGUID: []byte("0123456789abcdef"), Transports: []string{"usb", "nfc"},
		Flags: 0x45, SignCount: 7, CreatedAt: created,
	}
}

func normKey(k store.WebAuthnKey) store.WebAuthnKey {
	k.AAGUID = normBytes(k.AAGUID)
	if len(k.Transports) == 0 {
		k.Transports = nil
	}
	k.CreatedAt, k.LastUsedAt = normTime(k.CreatedAt), normTime(k.LastUsedAt)
	return k
}

func testWebAuthnKeys(t *testing.T, open func(t *testing.T) store.Store) {
	s := withUsers(t, open)
	k1 := webauthnKey("1", alice.ID, "YubiKey ✓", t0)
	k2 := webauthnKey("2", alice.ID, "phone", t0.Add(-time.Hour)) // older
	k2.AAGUID, k2.Transports, k2.SignCount = nil, nil, 0
	k3 := webauthnKey("3", bob.ID, "YubiKey ✓", t0) // the same name, another user
	for _, tc := range []struct {
		name    string
		k       store.WebAuthnKey
		wantErr error
	}{
		{"ok full", k1, nil},
		{"ok empties", k2, nil},
		{"ok same name for another user", k3, nil},
		{"fail taken id", webauthnKey("1", bob.ID, "other", t0), store.ErrExists},
		{"fail taken name", webauthnKey("4", alice.ID, "phone", t0), store.ErrExists},
		{"fail unknown user", webauthnKey("5", "u-nobody", "x", t0), store.ErrNotFound},
		{"fail empty id", store.WebAuthnKey{UserID: alice.ID, Name: "x", PublicKey: []byte{1}}, errInvalid},
		{"fail empty name", webauthnKey("6", alice.ID, "", t0), errInvalid},
	} {
		t.Run("create "+tc.name, func(t *testing.T) {
			checkErr(t, "CreateWebAuthnKey", s.CreateWebAuthnKey(t.Context(), tc.k), tc.wantErr)
		})
	}
	list := func(t *testing.T, userID string, want ...store.WebAuthnKey) {
		t.Helper()
		got, err := s.WebAuthnKeys(t.Context(), userID)
		if err != nil {
			t.Fatalf("WebAuthnKeys: %v", err)
		}
		var norm []store.WebAuthnKey
		for _, k := range want {
			norm = append(norm, normKey(k))
		}
		checkEqual(t, "keys", got, norm)
	}
	t.Run("list by creation time", func(t *testing.T) { list(t, alice.ID, k2, k1) })
	t.Run("list other user", func(t *testing.T) { list(t, bob.ID, k3) })
	t.Run("list unknown user", func(t *testing.T) { list(t, "u-nobody") })

	used := t0.Add(time.Minute)
	for _, tc := range []struct {
		name    string
		id      []byte
		count   uint32
		wantErr error
		want    uint32 // the stored counter afterwards
	}{
		{"ok counter advances", k1.ID, 8, nil, 8},
		{"fail counter stands still", k1.ID, 8, store.ErrStale, 8},
		{"fail counter goes back", k1.ID, 3, store.ErrStale, 8},
		{"fail counter zero after non-zero", k1.ID, 0, store.ErrStale, 8},
		{"ok counter jumps", k1.ID, 1000, nil, 1000},
		{"ok no counter (zero and zero)", k2.ID, 0, nil, 0},
		{"ok no counter again", k2.ID, 0, nil, 0},
		{"fail unknown key", []byte("nope"), 9, store.ErrNotFound, 0},
	} {
		t.Run("use "+tc.name, func(t *testing.T) {
			err := s.UseWebAuthnKey(t.Context(), tc.id, tc.count, used)
			checkErr(t, "UseWebAuthnKey", err, tc.wantErr)
			if errors.Is(tc.wantErr, store.ErrNotFound) {
				return
			}
			ks, _ := s.WebAuthnKeys(t.Context(), alice.ID)
			for _, k := range ks {
				if string(k.ID) == string(tc.id) {
					if k.SignCount != tc.want || !k.LastUsedAt.Equal(used) {
						t.Errorf("counter %d last used %v, want %d at %v", k.SignCount, k.LastUsedAt, tc.want, used)
					}
				}
			}
		})
	}

	for _, tc := range []struct {
		name    string
		user    string
		id      []byte
		wantErr error
	}{
		{"fail another user's key", bob.ID, k1.ID, store.ErrNotFound},
		{"ok", alice.ID, k1.ID, nil},
		{"fail twice", alice.ID, k1.ID, store.ErrNotFound},
	} {
		t.Run("delete "+tc.name, func(t *testing.T) {
			checkErr(t, "DeleteWebAuthnKey", s.DeleteWebAuthnKey(t.Context(), tc.user, tc.id), tc.wantErr)
		})
	}
	k2.SignCount, k2.LastUsedAt = 0, used
	t.Run("list after delete", func(t *testing.T) { list(t, alice.ID, k2) })

	t.Run("require fido", func(t *testing.T) {
		for _, v := range []bool{false, true} {
			if err := s.SetUserRequireFIDO(t.Context(), bob.ID, v); err != nil {
				t.Fatal(err)
			}
			u, err := s.UserByID(t.Context(), bob.ID)
			if err != nil || u.RequireFIDO != v {
				t.Errorf("RequireFIDO %v, want %v (%v)", u.RequireFIDO, v, err)
			}
		}
		checkErr(t, "SetUserRequireFIDO", s.SetUserRequireFIDO(t.Context(), "u-nobody", true), store.ErrNotFound)
	})

	t.Run("delete user deletes the keys", func(t *testing.T) {
		if err := s.DeleteUser(t.Context(), bob.ID); err != nil {
			t.Fatal(err)
		}
		list(t, bob.ID)
		mustCreateUser(t, s, bob)
		list(t, bob.ID)
	})
}

// testWebAuthnCounterConcurrently: of many assertions carrying the same
// counter, exactly one is accepted.
func testWebAuthnCounterConcurrently(t *testing.T, open func(t *testing.T) store.Store) {
	s := withUsers(t, open)
	k := webauthnKey("c", alice.ID, "key", t0)
	if err := s.CreateWebAuthnKey(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		ok, stale  int
		unexpected []error
	)
	for range n {
		wg.Go(func() {
			err := s.UseWebAuthnKey(t.Context(), k.ID, k.SignCount+1, t0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrStale):
				stale++
			default:
				unexpected = append(unexpected, err)
			}
		})
	}
	wg.Wait()
	if ok != 1 || stale != n-1 || len(unexpected) > 0 {
		t.Fatalf("%d accepted, %d stale, errors %v; want 1 and %d", ok, stale, unexpected, n-1)
	}
}

// testWebAuthnCeremonies: a session's ceremony is taken once.
func testWebAuthnCeremonies(t *testing.T, open func(t *testing.T) store.Store) {
	s := withUsers(t, open)
	sess := store.OAuthSession{Hash: sum("sess"), ExpiresAt: t0.Add(time.Minute), CreatedAt: t0}
	if err := s.CreateOAuthSession(t.Context(), sess); err != nil {
		t.Fatal(err)
	}
	_, err := s.TakeOAuthSessionCeremony(t.Context(), sess.Hash)
	checkErr(t, "take before set", err, store.ErrNotFound)
	checkErr(t, "set unknown session", s.SetOAuthSessionCeremony(t.Context(), sum("nope"), []byte("c")), store.ErrNotFound)
	checkErr(t, "set empty", s.SetOAuthSessionCeremony(t.Context(), sess.Hash, nil), errInvalid)
	for _, c := range []string{"first", "second"} {
		if err := s.SetOAuthSessionCeremony(t.Context(), sess.Hash, []byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.TakeOAuthSessionCeremony(t.Context(), sess.Hash)
	if err != nil || string(got) != "second" {
		t.Fatalf("take: %q, %v; want the last one set", got, err)
	}
	_, err = s.TakeOAuthSessionCeremony(t.Context(), sess.Hash)
	checkErr(t, "take twice", err, store.ErrNotFound)
	if _, err := s.OAuthSession(t.Context(), sess.Hash); err != nil {
		t.Errorf("the session went with its ceremony: %v", err)
	}
}
