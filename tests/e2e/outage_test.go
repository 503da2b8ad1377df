package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/internal/softhsmtest"
)

// margin is what a busy machine may add to the configured timeout.
const margin = 2 * time.Second

// signIn signs doc in the session with mech (SHA256-RSA-PKCS,
// ECDSA-SHA256) and the key labelled label; it returns the CK_RV name, the
// signature and how long C_SignInit+C_Sign took.
func (s *session) signIn(mech, label string, doc []byte) (string, []byte, time.Duration) {
	s.t.Helper()
	f, took := s.call(fmt.Sprintf("sign %s %x %s", mech, doc, label), time.Minute)
	var sig []byte
	if f[0] == "CKR_OK" {
		var err error
		if sig, err = hex.DecodeString(f[1]); err != nil {
			s.t.Fatal(err)
		}
	}
	return f[0], sig, took
}

// signVerified signs and verifies the signature with the certificate.
func (s *session) signVerified(mech, label string, cert *x509.Certificate, doc []byte) {
	s.t.Helper()
	rv, sig, _ := s.signIn(mech, label, doc)
	if rv != "CKR_OK" {
		s.t.Fatalf("sign %s with %s = %s, want CKR_OK", mech, label, rv)
	}
	if err := verifySHA256(cert, sig, doc); err != nil {
		s.t.Fatalf("%s with %s: %v", mech, label, err)
	}
}

// verifySHA256 checks a PKCS#11 signature over SHA-256(doc): PKCS#1 v1.5
// for RSA, r||s for ECDSA.
func verifySHA256(cert *x509.Certificate, sig, doc []byte) error {
	digest := sha256.Sum256(doc)
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
	case *ecdsa.PublicKey:
		n := (pub.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*n {
			return fmt.Errorf("ECDSA signature of %d bytes is not r||s", len(sig))
		}
		if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])) {
			return errors.New("ECDSA signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("unexpected key %T", cert.PublicKey)
}

// TestServiceDownAndBack: one PKCS#11 session signs, the RSSP stops
// (connections refused), then hangs (connections accepted, never
// answered), then comes back on the same address and data: signatures fail
// with CKR_DEVICE_ERROR within the configured timeout meanwhile and work
// again in the same session afterwards, without a new login. Certificates
// stay listed from the cache while the service is down, and no host
// program waits for it.
func TestServiceDownAndBack(t *testing.T) {
	need(t, "pkcs11-tool")
	// Keys in SoftHSM2 where it is installed (the keystore is closed and
	// opened again with the server), else in the software keystore.
	backend := rssptest.PKCS11
	if _, _, err := softhsmtest.Find(); err != nil && os.Getenv(softhsmtest.EnvRequire) != "1" {
		t.Logf("SoftHSM2 not found (%v); the software keystore is used", err)
		backend = rssptest.Soft
	}
	srv := startRestartable(t, backend)
	creds := enrol(t, srv.server, user, password)
	e := newEnv(t)
	e.useConfig(t, serviceTOML(tokenLabel, srv.server, user))
	e.login(t, password)

	listCerts := func(what string) result {
		t.Helper()
		r := e.tool(t, "--list-objects", "--type", "cert")
		if n := len(ofKind(parseObjects(r.Stdout), "cert")); r.Err != nil || n != 5 {
			t.Errorf("%s: %d certificates listed, want 5: %v", what, n, r)
		}
		return r
	}
	// The first listing fills the cache.
	listCerts("service up")

	s := e.session(t)
	s.want("init", "CKR_OK")
	s.want("open 0", "CKR_OK")
	authBefore := len(auditEvents(t, srv.server, "authorize", creds[labelRSA]))
	s.want("login "+pin, "CKR_OK")
	rsaCert, ecCert, scal2Cert := s.cert(labelRSA), s.cert(labelEC), s.cert(labelSCAL2)
	for i := range 3 {
		s.signVerified("SHA256-RSA-PKCS", labelRSA, rsaCert, fmt.Appendf(nil, "before %d", i))
	}
	s.signVerified("ECDSA-SHA256", labelEC, ecCert, []byte("before"))
	// SCAL1 with multisign 5: C_Login's authorization covers the three
	// RSA signatures.
	if n := len(auditEvents(t, srv.server, "authorize", creds[labelRSA])) - authBefore; n != 1 {
		t.Errorf("%d authorizations of the RSA credential for a login and 3 signatures, want 1", n)
	}

	wantDeviceError := func(what, mech, label string, min, max time.Duration) {
		t.Helper()
		rv, _, took := s.signIn(mech, label, []byte(what))
		if rv != "CKR_DEVICE_ERROR" {
			t.Errorf("%s: sign with %s = %s, want CKR_DEVICE_ERROR", what, label, rv)
		}
		if took < min || took > max {
			t.Errorf("%s: C_Sign answered after %v, want between %v and %v", what, took.Round(time.Millisecond), min, max)
		}
	}

	t.Log("stopping the server")
	srv.stop()
	wantDeviceError("stopped", "ECDSA-SHA256", labelEC, 0, timeout+margin)
	wantDeviceError("stopped", "SHA256-RSA-PKCS", labelRSA, 0, timeout+margin) // on the pre-authorization
	// Metadata is local.
	s.want("slots", "CKR_OK")
	s.want("flags", "CKR_OK")
	s.cert(labelSCAL2)
	// A new program sees the certificates (from the cache) at once, and
	// C_Login fails as the service is unreachable.
	if r := listCerts("service stopped"); r.Took > timeout {
		t.Errorf("listing from the cache with the service stopped took %v", r.Took)
	}
	r := e.tool(t, "--login", "--pin", pin, "--list-objects")
	if r.Err == nil || !strings.Contains(r.Stderr, "C_Login failed: rv = CKR_DEVICE_ERROR") || r.Took > 2*timeout+margin {
		t.Errorf("login with the service stopped: want CKR_DEVICE_ERROR at C_Login within %v: %v", 2*timeout+margin, r)
	}

	t.Log("the server hangs")
	bh := listenBlackhole(t, srv.addr)
	wantDeviceError("hanging", "ECDSA-SHA256", labelEC, timeout-300*time.Millisecond, timeout+margin)
	// Programs start and end without waiting for the hanging service
	// (C_Initialize has the cache, C_Finalize does not wait).
	if r := listCerts("service hanging"); r.Took > timeout {
		t.Errorf("listing from the cache with the service hanging took %v", r.Took)
	}
	// C_Login: the listing (list_timeout), then the authorization
	// (timeout), each bounded.
	r = e.tool(t, "--login", "--pin", pin, "--list-objects")
	if r.Err == nil || !strings.Contains(r.Stderr, "C_Login failed: rv = CKR_DEVICE_ERROR") || r.Took > 2*timeout+margin {
		t.Errorf("login with the service hanging: want CKR_DEVICE_ERROR at C_Login within %v: %v", 2*timeout+margin, r)
	}
	bh.close()

	t.Log("restarting the server on the same address and data")
	srv.start()
	s.signVerified("ECDSA-SHA256", labelEC, ecCert, []byte("after the restart"))
	s.signVerified("SHA256-RSA-PKCS", labelRSA, rsaCert, []byte("after the restart"))
	s.signVerified("ECDSA-SHA256", labelSCAL2, scal2Cert, []byte("after the restart"))
	s.want("finalize", "CKR_OK")

	if n := len(ofKind(parseObjects(e.mustTool(t, "--list-objects", "--login", "--pin", pin)), "privkey")); n != 3 {
		t.Errorf("%d private keys after the restart, want 3", n)
	}
	if log := e.logText(t); !strings.Contains(log, "rv=CKR_DEVICE_ERROR") {
		t.Errorf("the module log does not record the CKR_DEVICE_ERROR answers")
	}
}
