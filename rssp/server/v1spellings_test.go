package server_test

import (
	"crypto/sha256"
	"encoding/base64"
	"testing"

	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
)

// TestV1SpellingsOnV2: a client written for v1 that sends v1 field names
// (PIN, hash, hashAlgo) to the v2 URL authorizes and signs (SCAL1 and
// SCAL2); a wrong PIN under the v1 name is a wrong PIN, not a missing one.
func TestV1SpellingsOnV2(t *testing.T) {
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	scal1, _ := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.ECP256, PIN: pin})
	scal2, _ := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.RSA2048, PIN: pin, SCAL: 2})
	c := &v1client{t: t, srv: srv, base: srv.URL, tok: srv.Login(t, user, password)}
	sum := sha256.Sum256([]byte("a document"))
	hash := base64.StdEncoding.EncodeToString(sum[:])
	const sha256OID = "2.16.840.1.101.3.4.2.1"

	for _, tc := range []struct {
		name, cred, signAlgo string
	}{
		{"SCAL1 ECDSA", scal1, "1.2.840.10045.4.3.2"},
		{"SCAL2 RSA", scal2, "1.2.840.113549.1.1.11"},
	} {
		t.Run("ok "+tc.name, func(t *testing.T) {
			sad := c.must("credentials/authorize", map[string]any{"credentialID": tc.cred, "numSignatures": 1,
				"PIN": pin, "hash": []string{hash}, "hashAlgo": sha256OID})["SAD"]
			out := c.must("signatures/signHash", map[string]any{"credentialID": tc.cred, "SAD": sad,
				"hash": []string{hash}, "hashAlgo": sha256OID, "signAlgo": tc.signAlgo})
			if sigs, _ := out["signatures"].([]any); len(sigs) != 1 {
				t.Errorf("signHash: %v", out)
			}
		})
	}
	t.Run("fail wrong PIN under the v1 name", func(t *testing.T) {
		st, out := c.call("credentials/authorize", map[string]any{"credentialID": scal1, "numSignatures": 1, "PIN": "000000"})
		if st != 400 || out["error"] != "invalid_pin" {
			t.Errorf("%d %v", st, out)
		}
	})
}
