package postgres

import (
	"crypto/sha256"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
	"github.com/csctoken/csctoken/rssp/store/sqlite"
)

func sum(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// fillAll writes a row of every kind into s, and audit rows.
func fillAll(t *testing.T, s store.Full) {
	t.Helper()
	ctx := t.Context()
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)
	exp := time.Now().Add(time.Hour)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("user", s.CreateUser(ctx, store.User{ID: "u1", Name: "alice", PasswordHash: "$argon2id$a", CreatedAt: t0}))
	must("user 2", s.CreateUser(ctx, store.User{ID: "u2", Name: "bob", PasswordHash: "$argon2id$b", Disabled: true}))
	for _, id := range []string{"c2", "c1"} { // same time: insertion order is kept
		must("credential", s.CreateCredential(ctx, store.Credential{ID: id, UserID: "u1", Description: "key ✓", KeyType: "ec-p256",
			Backend: "soft", KeyRef: []byte{1}, PublicKey: []byte{2}, CertChain: [][]byte{{3}, {}, {5, 6}}, SCAL: 2, Multisign: 5,
			AuthMode: "explicit", PINHash: "$argon2id$pin", OTPType: "totp", OOB: true, OTPSealed: []byte{7}, PINFailures: 2,
			CreatedAt: t0}))
	}
	must("token", s.CreateToken(ctx, store.Token{Hash: sum("at"), Kind: store.AccessToken, UserID: "u1", ClientID: "cl",
		Scope: "service", Family: "f", ExpiresAt: exp, CreatedAt: t0}))
	must("token 2", s.CreateToken(ctx, store.Token{Hash: sum("rt"), Kind: store.RefreshToken, UserID: "u1", Family: "f",
		ExpiresAt: exp, Revoked: true}))
	must("SAD", s.CreateSAD(ctx, store.SAD{Hash: sum("sad"), CredentialID: "c1", UserID: "u1", HashAlgo: "2.16.840.1.101.3.4.2.1",
		Hashes: [][]byte{sum("d1"), sum("d2")}, Remaining: 2, ExpiresAt: exp, CreatedAt: t0},
		&store.AuditEvent{Event: "authorize", UserID: "u1", CredentialID: "c1", Result: "ok"}))
	err := s.ConsumeSAD(ctx, sum("sad"), 1, time.Now(), &store.AuditEvent{Event: "sign", UserID: "u1", CredentialID: "c1",
		ClientAddr: "127.0.0.1:1", Hashes: []string{"ZDE=", ""}, Result: "ok", Detail: "1 signature"})
	must("consume", err)
	must("client", s.CreateOAuthClient(ctx, store.OAuthClient{ID: "cl", Name: "App", SecretHash: "$argon2id$s",
		RedirectURIs: []string{"http://127.0.0.1/cb", "x:/y"}, UserID: "u1", CreatedAt: t0}))
	must("client 2", s.CreateOAuthClient(ctx, store.OAuthClient{ID: "pub", Name: "Public"}))
	must("request", s.CreateOAuthRequest(ctx, store.OAuthRequest{Hash: sum("req"), ClientID: "cl", Pushed: true,
		Params: []byte(`{"a":1}`), ExpiresAt: exp, CreatedAt: t0}))
	must("code", s.CreateOAuthCode(ctx, store.OAuthCode{Hash: sum("code"), ClientID: "cl", UserID: "u1", RedirectURI: "x:/y",
		CodeChallenge: "ch", Scope: "credential", CredentialID: "c1", NumSignatures: 1, HashAlgo: "2.16.840.1.101.3.4.2.1",
		Hashes: [][]byte{sum("d")}, Details: []byte("[]"), Family: "f2", ExpiresAt: exp, CreatedAt: t0}))
	_, err = s.ConsumeOAuthCode(ctx, sum("code"), sum("tok"), time.Now())
	must("consume code", err)
	must("session", s.CreateOAuthSession(ctx, store.OAuthSession{Hash: sum("sess"), UserID: "u1", AuthTime: t0, ExpiresAt: exp}))
	must("credential token", s.CreateCredentialToken(ctx, store.CredentialToken{TokenHash: sum("at"), CredentialID: "c1", ExpiresAt: exp}))
	must("pending", s.CreatePending(ctx, store.PendingAuth{HandleHash: sum("h"), ApprovalHash: sum("a"), UserID: "u1",
		CredentialID: "c1", NumSignatures: 1, Hashes: [][]byte{sum("d")}, Description: "doc", ExpiresAt: exp, CreatedAt: t0}))
	must("decide", s.DecidePending(ctx, sum("a"), store.Approved, time.Now()))
	must("challenge", s.SetChallenge(ctx, store.Challenge{CredentialID: "c1", CodeHash: "$argon2id$otp", ExpiresAt: exp}))
	must("op", s.CreateOp(ctx, store.AsyncOp{IDHash: sum("op"), UserID: "u1", CredentialID: "c1", Status: store.OpRunning,
		ExpiresAt: exp, CreatedAt: t0}))
	must("finish op", s.FinishOp(ctx, sum("op"), store.OpDone, [][]byte{{1, 2}, {3}}, "", ""))
	must("security key", s.CreateWebAuthnKey(ctx, store.WebAuthnKey{ID: []byte{9, 9}, UserID: "u1", Name: "yubikey",
		PublicKey: []byte{1}, AttestationType: "none", AAGUID: make([]byte, 16), Transports: []string{"usb", "nfc"}, Flags: 0x45,
		SignCount: 7, CreatedAt: t0}))
	must("require FIDO", s.SetUserRequireFIDO(ctx, "u1", true))
	must("external subject", s.SetUserExternalSubject(ctx, "u2", "https://idp.example/bob"))
	must("ceremony", s.SetOAuthSessionCeremony(ctx, sum("sess"), []byte("ceremony")))
	for i := range 3 {
		_, err := s.AppendAudit(ctx, store.AuditEvent{Event: "login", UserID: "u1", Result: "ok", Detail: string(rune('a' + i))})
		must("audit", err)
	}
}

// snapshot reads everything fillAll wrote, through the store's methods.
func snapshot(t *testing.T, s store.Full) map[string]any {
	t.Helper()
	ctx := t.Context()
	m := map[string]any{}
	get := func(name string, v any, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m[name] = v
	}
	us, err := s.Users(ctx)
	get("users", us, err)
	cs, err := s.Credentials(ctx, "")
	get("credentials", cs, err)
	for _, h := range []string{"at", "rt"} {
		v, err := s.Token(ctx, sum(h))
		get("token "+h, v, err)
	}
	sad, err := s.SAD(ctx, sum("sad"))
	get("sad", sad, err)
	audit, err := s.AuditEvents(ctx, 0, 100)
	get("audit", audit, err)
	for _, id := range []string{"cl", "pub"} {
		v, err := s.OAuthClient(ctx, id)
		get("client "+id, v, err)
	}
	req, err := s.OAuthRequest(ctx, sum("req"))
	get("request", req, err)
	sess, err := s.OAuthSession(ctx, sum("sess"))
	get("session", sess, err)
	ct, err := s.CredentialToken(ctx, sum("at"))
	get("credential token", ct, err)
	p, err := s.PendingByApproval(ctx, sum("a"))
	get("pending", p, err)
	ch, err := s.Challenge(ctx, "c1")
	get("challenge", ch, err)
	op, err := s.Op(ctx, sum("op"))
	get("op", op, err)
	ks, err := s.WebAuthnKeys(ctx, "u1")
	get("security keys", ks, err)
	return m
}

// TestImportSQLite: a filled SQLite store copies into PostgreSQL with
// nothing lost or changed, the audit chain verifies there and goes on; a
// second import into the now filled database is refused.
func TestImportSQLite(t *testing.T) {
	src, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "rssp.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	fillAll(t, src)
	want := snapshot(t, src)

	d := openTemp(t)
	defer d.Close()
	counts, err := d.ImportSQLite(t.Context(), src)
	if err != nil {
		t.Fatalf("ImportSQLite: %v", err)
	}
	if counts["audit"] != 5 || counts["users"] != 2 || counts["async_ops"] != 1 || counts["webauthn_keys"] != 1 {
		t.Errorf("counts = %v", counts)
	}
	got := snapshot(t, d)
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("%s:\n got %+v\nwant %+v", k, got[k], w)
		}
	}
	// The used code is found used, with its token.
	if _, err := d.ConsumeOAuthCode(t.Context(), sum("code"), sum("other"), time.Now()); !errors.Is(err, store.ErrUsed) {
		t.Errorf("ConsumeOAuthCode of the used code = %v, want ErrUsed", err)
	}
	if c, err := d.TakeOAuthSessionCeremony(t.Context(), sum("sess")); err != nil || string(c) != "ceremony" {
		t.Errorf("TakeOAuthSessionCeremony = %q, %v", c, err)
	}
	if n, err := store.VerifyAudit(t.Context(), d); err != nil || n != 5 {
		t.Errorf("VerifyAudit = %d, %v; want 5", n, err)
	}
	if _, err := d.AppendAudit(t.Context(), store.AuditEvent{Event: "admin", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	if n, err := store.VerifyAudit(t.Context(), d); err != nil || n != 6 {
		t.Errorf("VerifyAudit after an append = %d, %v; want 6", n, err)
	}
	// A credential created after the import comes after the copied ones.
	if err := d.CreateCredential(t.Context(), store.Credential{ID: "c0", UserID: "u1", KeyType: "ec-p256", Backend: "soft",
		SCAL: 1, Multisign: 1, AuthMode: "explicit", CreatedAt: time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	cs, _ := d.Credentials(t.Context(), "u1")
	if len(cs) != 3 || cs[0].ID != "c2" || cs[1].ID != "c1" || cs[2].ID != "c0" {
		t.Errorf("credentials after the import: %v", cs)
	}

	if _, err := d.ImportSQLite(t.Context(), src); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("second ImportSQLite = %v, want ErrNotEmpty", err)
	}
}
