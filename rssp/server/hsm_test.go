package server_test

import (
	"crypto"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
)

// readyz is the status of GET /readyz.
func readyz(t *testing.T, s *rssptest.Server) int {
	t.Helper()
	resp, err := s.Client.Get(strings.TrimSuffix(s.URL, "/csc/v2") + "/readyz")
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The HSM's token goes away (SoftHSM2's token directory moved) and comes
// back: signHash answers 503 with Retry-After and a CSC body, /readyz 503;
// a SAD presented while the key store is known to be down is not spent;
// once the token is back the same server signs again with it, without a
// restart, and /readyz is 200.
func TestHSMAwayAndBack(t *testing.T) {
	s := rssptest.Start(t, rssptest.Options{Backend: rssptest.PKCS11})
	s.AddUser(t, user, password)
	cred, _ := s.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.ECP256, PIN: pin, Multisign: 3})
	f := &fixture{srv: s, tok: s.Login(t, user, password)}
	sad := f.authorize(t, cred, 3, nil)
	h := digest(crypto.SHA256, "hsm")
	sign := func() rssptest.Response {
		return s.Call(t, "signatures/signHash", f.tok, map[string]any{"credentialID": cred, "SAD": sad,
			"hashes": []string{b64(h)}, "hashAlgorithmOID": csc.OIDSHA256, "signAlgo": csc.OIDECDSAWithSHA256})
	}
	rssptest.Must(t, sign()) // 2 signatures left
	if st := readyz(t, s); st != http.StatusOK {
		t.Fatalf("/readyz = %d with the token present", st)
	}

	away := s.Token.TokenDir + ".away"
	if err := os.Rename(s.Token.TokenDir, away); err != nil {
		t.Fatal(err)
	}
	restored := false
	defer func() {
		if !restored {
			_ = os.Rename(away, s.Token.TokenDir)
		}
	}()
	// The first signHash finds the token gone (after spending its
	// signature: 1 left); the next is refused before the SAD is touched.
	for i := range 2 {
		r := sign()
		retryAfter(t, r, http.StatusServiceUnavailable)
		if d := r.Error().Description; !strings.Contains(d, "HSM") {
			t.Errorf("signHash %d with the token away: description %q", i, d)
		}
	}
	if st := readyz(t, s); st != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d with the token away, want 503", st)
	}

	if err := os.Rename(away, s.Token.TokenDir); err != nil {
		t.Fatal(err)
	}
	restored = true
	back := time.Now()
	for readyz(t, s) != http.StatusOK {
		if time.Since(back) > 30*time.Second {
			t.Fatalf("/readyz not 200 30s after the token returned:\n%s", s.Logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("ready %v after the token returned", time.Since(back).Round(time.Millisecond))
	rssptest.Must(t, sign()) // the SAD's last signature
	if r := sign(); r.Status != http.StatusBadRequest {
		t.Errorf("a fourth signature with a 3-signature SAD: %d %s", r.Status, r.Body)
	}
	if n := s.AuditCount(t, "sign", cred); n < 3 {
		t.Errorf("%d sign audit rows, want at least 3", n)
	}
	for _, want := range []string{"PKCS#11 token lost", "PKCS#11 token re-opened"} {
		if !strings.Contains(s.Logs.String(), want) {
			t.Errorf("the log does not say %q", want)
		}
	}
}
