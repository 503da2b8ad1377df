package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/csctoken/csctoken/internal/rssptest"
	rsspconfig "github.com/csctoken/csctoken/rssp/config"
	"github.com/csctoken/csctoken/rssp/service"
)

// PIN flags of CK_TOKEN_INFO.
const (
	ckfUserPINCountLow = 0x10000
	ckfUserPINFinalTry = 0x20000
	ckfUserPINLocked   = 0x40000
	pinFlags           = ckfUserPINCountLow | ckfUserPINFinalTry | ckfUserPINLocked
)

// TestWrongPIN: a wrong PIN is CKR_PIN_INCORRECT at C_Login, the token's
// PIN flags follow the service's counter down to CKR_PIN_LOCKED (also for
// the right PIN, also in a new process), and after the administrator
// unlocks the credentials the same PIN works again. A user whose only
// credential is SCAL2 has the PIN checked at the first signature, where a
// wrong one logs the token out (CKR_USER_NOT_LOGGED_IN).
func TestWrongPIN(t *testing.T) {
	need(t, "pkcs11-tool", "openssl")
	srv := startRSSPTest(t, rssptest.Options{Backend: rssptest.Soft,
		Edit: func(c *rsspconfig.Config) { c.Security.PINRetries = 3 }})
	creds := enrol(t, srv, user, password)
	const bob, bobPassword, bobKey = "bob", "e2e bob password 26d0", "Bob SCAL2"
	if _, err := srv.Svc.AddUser(context.Background(), bob, bobPassword); err != nil {
		t.Fatal(err)
	}
	if _, _, err := srv.Svc.AddCredential(context.Background(), service.CredentialSpec{
		User: bob, KeyType: "ec-p256", PIN: pin, SCAL: 2, Description: bobKey}); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.secrets = append(e.secrets, bobPassword)
	e.useConfig(t, serviceTOML(tokenLabel, srv, user)+serviceTOML("E2E bob", srv, bob))
	e.login(t, password, bobPassword)
	data := e.write(t, "data", document)

	// 3 attempts: one wrong PIN in pkcs11-tool...
	r := e.tool(t, "--token-label", tokenLabel, "--login", "--pin", wrongPIN, "--list-objects")
	if r.Err == nil || !strings.Contains(r.Stderr, "C_Login failed: rv = CKR_PIN_INCORRECT") {
		t.Fatalf("wrong PIN: want C_Login CKR_PIN_INCORRECT: %v", r)
	}

	// ... then, in one session, the flags as the attempts run out.
	s := e.session(t)
	s.want("init", "CKR_OK")
	s.want("open 0", "CKR_OK")
	flags := func() uint64 {
		t.Helper()
		f := s.want("flags", "CKR_OK")
		v, err := strconv.ParseUint(strings.TrimPrefix(f[1], "0x"), 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v & pinFlags
	}
	if f := flags(); f != 0 {
		t.Errorf("PIN flags %#x before any attempt in this process, want none", f)
	}
	s.want("login "+wrongPIN, "CKR_PIN_INCORRECT")
	if f := flags(); f != ckfUserPINCountLow|ckfUserPINFinalTry {
		t.Errorf("PIN flags %#x with one attempt left, want COUNT_LOW|FINAL_TRY", f)
	}
	s.want("login "+wrongPIN, "CKR_PIN_LOCKED")
	if f := flags(); f != ckfUserPINLocked {
		t.Errorf("PIN flags %#x after the last attempt, want LOCKED", f)
	}
	s.want("login "+pin, "CKR_PIN_LOCKED")

	// Locked at the service: a new process sees it at C_Login.
	r = e.tool(t, "--token-label", tokenLabel, "--login", "--pin", pin, "--list-objects")
	if r.Err == nil || !strings.Contains(r.Stderr, "C_Login failed: rv = CKR_PIN_LOCKED") {
		t.Fatalf("right PIN on a locked credential: want C_Login CKR_PIN_LOCKED: %v", r)
	}

	// Unlocked by the administrator: the same session logs in and the
	// flags clear; pkcs11-tool signs.
	for _, label := range []string{labelRSA, labelEC} {
		if err := srv.Svc.Unlock(context.Background(), creds[label]); err != nil {
			t.Fatal(err)
		}
	}
	s.want("login "+pin, "CKR_OK")
	if f := flags(); f != 0 {
		t.Errorf("PIN flags %#x after a successful login, want none", f)
	}
	id := e.keyIDs(t, "--token-label", tokenLabel)[labelRSA]
	sig := e.path("rsa.sig")
	e.mustTool(t, "--token-label", tokenLabel, "--login", "--pin", pin, "--sign", "--mechanism", "SHA256-RSA-PKCS",
		"--id", id, "--input-file", data, "--output-file", sig)
	if out := e.mustTool(t, "--token-label", tokenLabel, "--verify", "--mechanism", "SHA256-RSA-PKCS", "--id", id,
		"--input-file", data, "--signature-file", sig); !strings.Contains(out, "Signature is valid") {
		t.Errorf("after unlock: %s", out)
	}

	t.Run("scal2-only", func(t *testing.T) {
		id := e.keyIDs(t, "--token-label", "E2E bob")[bobKey]
		sign := func(p string) result {
			return e.tool(t, "--token-label", "E2E bob", "--login", "--pin", p, "--sign", "--mechanism", "ECDSA-SHA256",
				"--id", id, "--input-file", data, "--output-file", e.path("bob.sig"))
		}
		if r := sign(wrongPIN); r.Err == nil || !strings.Contains(r.Stderr, "rv = CKR_USER_NOT_LOGGED_IN") {
			t.Errorf("wrong PIN, SCAL2 only: want C_Login to pass and C_Sign to answer CKR_USER_NOT_LOGGED_IN: %v", r)
		}
		if r := sign(pin); r.Err != nil {
			t.Errorf("right PIN, SCAL2 only: %v", r)
		}
	})
}
