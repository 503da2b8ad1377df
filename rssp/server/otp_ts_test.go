package server_test

import (
	"crypto"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/pquerna/otp/totp"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
)

// TestTOTP: a PIN AND TOTP credential needs both factors; a code is
// single-use; a wrong code counts towards the lock.
func TestTOTP(t *testing.T) {
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	id, uri := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: keystore.ECP256, PIN: pin, OTP: "totp"})
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" {
		t.Fatalf("otp URI %q", uri)
	}
	seed := u.Query().Get("secret")
	tok := srv.Login(t, user, password)

	var info csc.CredentialInfo
	rssptest.Must(t, srv.Call(t, "credentials/info", tok, map[string]any{"credentialID": id, "authInfo": true})).Decode(t, &info)
	if info.Auth.Expression != "PIN AND OTP" || len(info.Auth.Objects) != 2 || info.Auth.Objects[1].Generator != "totp" {
		t.Fatalf("auth info %+v", info.Auth)
	}
	authorize := func(data ...map[string]string) rssptest.Response {
		return srv.Call(t, "credentials/authorize", tok, map[string]any{"credentialID": id, "numSignatures": 1, "authData": data})
	}
	code, err := totp.GenerateCode(seed, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	if r := authorize(map[string]string{"id": "PIN", "value": pin}); r.Error().Code != "invalid_request" || !strings.Contains(r.Error().Description, "OTP") {
		t.Fatalf("missing OTP: %s", r.Body)
	}
	if r := authorize(map[string]string{"id": "PIN", "value": pin}, map[string]string{"id": "OTP", "value": wrong}); r.Error().Code != "invalid_otp" {
		t.Fatalf("wrong OTP: %s", r.Body)
	}
	if r := authorize(map[string]string{"id": "PIN", "value": "999999"}, map[string]string{"id": "OTP", "value": code}); r.Error().Code != "invalid_pin" {
		t.Fatalf("wrong PIN: %s", r.Body)
	}
	var ar csc.AuthorizeResponse
	rssptest.Must(t, authorize(map[string]string{"id": "PIN", "value": pin}, map[string]string{"id": "OTP", "value": code})).Decode(t, &ar)
	if r := authorize(map[string]string{"id": "PIN", "value": pin}, map[string]string{"id": "OTP", "value": code}); r.Error().Code != "invalid_otp" {
		t.Fatalf("replayed OTP accepted: %s", r.Body)
	}
	rssptest.Must(t, srv.Call(t, "signatures/signHash", tok, csc.SignHashRequest{CredentialID: id, SAD: ar.SAD,
		Hashes: []csc.Bytes{digest(crypto.SHA256, "x")}, SignAlgo: csc.OIDECDSAWithSHA256}))
}

// TestTimestamp gets an RFC 3161 token and verifies it with openssl.
func TestTimestamp(t *testing.T) {
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	tok := srv.Login(t, user, password)
	d := digest(crypto.SHA256, "to be time-stamped")
	var tr csc.TimestampResponse
	rssptest.Must(t, srv.Call(t, "signatures/timestamp", tok, map[string]any{"hash": csc.Bytes(d), "hashAlgo": csc.OIDSHA256, "nonce": "0a0b0c"})).Decode(t, &tr)
	ts, err := timestamp.Parse(tr.Timestamp)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(ts.HashedMessage) != hex.EncodeToString(d) || ts.Nonce.Int64() != 0x0a0b0c || time.Since(ts.Time) > time.Minute {
		t.Fatalf("token: %+v", ts)
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token.der")
	if err := os.WriteFile(tokFile, tr.Timestamp, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "ts", "-verify", "-digest", hex.EncodeToString(d), "-token_in", "-in", tokFile,
		"-CAfile", filepath.Join(srv.Dir, "ca-root.pem"), "-untrusted", filepath.Join(srv.Dir, "tsa-cert.pem")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Verification: OK") {
		t.Fatalf("openssl ts -verify: %v\n%s", err, out)
	}
}

// TestOpenSSLVerify verifies one RSA-PSS and one ECDSA signature with
// openssl against the certificate the API returned.
func TestOpenSSLVerify(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	srv := rssptest.Start(t, rssptest.Options{})
	srv.AddUser(t, user, password)
	tok := srv.Login(t, user, password)
	dir := t.TempDir()
	data := []byte("a document signed remotely\n")
	dataFile := filepath.Join(dir, "doc.txt")
	os.WriteFile(dataFile, data, 0o600)
	for _, c := range []struct {
		kt       keystore.KeyType
		signAlgo string
		args     []string
	}{
		{keystore.RSA2048, csc.OIDRSAPSS, []string{"-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"}},
		{keystore.RSA3072, csc.OIDSHA256WithRSA, nil},
		{keystore.ECP256, csc.OIDECDSAWithSHA256, nil},
		{keystore.ECP384, csc.OIDECDSAWithSHA256, nil},
	} {
		t.Run(string(c.kt), func(t *testing.T) {
			id, _ := srv.AddCredential(t, service.CredentialSpec{User: user, KeyType: c.kt, PIN: pin})
			var info csc.CredentialInfo
			rssptest.Must(t, srv.Call(t, "credentials/info", tok, map[string]any{"credentialID": id})).Decode(t, &info)
			certFile := filepath.Join(dir, string(c.kt)+".pem")
			pemCert := "-----BEGIN CERTIFICATE-----\n" + info.Cert.Certificates[0].String() + "\n-----END CERTIFICATE-----\n"
			os.WriteFile(certFile, []byte(wrap64(pemCert)), 0o600)
			var ar csc.AuthorizeResponse
			rssptest.Must(t, srv.Call(t, "credentials/authorize", tok, map[string]any{"credentialID": id, "numSignatures": 1,
				"authData": []map[string]string{{"id": "PIN", "value": pin}}})).Decode(t, &ar)
			var sr csc.SignHashResponse
			rssptest.Must(t, srv.Call(t, "signatures/signHash", tok, csc.SignHashRequest{CredentialID: id, SAD: ar.SAD,
				Hashes: []csc.Bytes{digest(crypto.SHA256, string(data))}, HashAlgorithmOID: csc.OIDSHA256, SignAlgo: c.signAlgo})).Decode(t, &sr)
			sigFile := filepath.Join(dir, string(c.kt)+".sig")
			os.WriteFile(sigFile, sr.Signatures[0], 0o600)
			args := append([]string{"dgst", "-sha256", "-verify", "/dev/stdin", "-signature", sigFile}, c.args...)
			args = append(args, dataFile)
			pub, err := exec.Command("openssl", "x509", "-in", certFile, "-pubkey", "-noout").Output()
			if err != nil {
				t.Fatalf("openssl x509: %v", err)
			}
			cmd := exec.Command("openssl", args...)
			cmd.Stdin = strings.NewReader(string(pub))
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Verified OK") {
				t.Fatalf("openssl dgst -verify: %v\n%s", err, out)
			}
		})
	}
}

// wrap64 folds the base64 body of a PEM block at 64 columns.
func wrap64(p string) string {
	lines := strings.Split(p, "\n")
	var b strings.Builder
	for _, l := range lines {
		for len(l) > 64 {
			b.WriteString(l[:64] + "\n")
			l = l[64:]
		}
		if l != "" {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
