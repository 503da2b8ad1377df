package service_test

import (
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/service"
)

// TestSignAsync: operationMode A consumes the SAD when it starts (bad input
// loses nothing), and only the caller polls the result, until its validity
// ends.
func TestSignAsync(t *testing.T) {
	f := newFixture(t)
	id, _ := f.credential(t, nil)
	x := digest("x")
	req := func(sad string, hashes ...[]byte) service.SignRequest {
		return service.SignRequest{CredentialID: id, SAD: sad, Hashes: hashes, HashAlgorithm: csc.OIDSHA256, SignAlgo: csc.OIDECDSAWithSHA256}
	}
	poll := func(t *testing.T, p service.Principal, rid string) ([][]byte, error) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			sigs, err := f.Service.SignPolling(t.Context(), p, rid)
			if !errors.Is(err, service.ErrPending) || time.Now().After(deadline) {
				return sigs, err
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	sad := f.mustAuthorize(t, id, 1)
	_, err := f.Service.SignHashAsync(t.Context(), f.alice, req(sad, x, x), 0)
	wantKind(t, err, service.ErrInvalidRequest)
	_, err = f.Service.SignHashAsync(t.Context(), f.alice, req(sad, x), 500*time.Millisecond)
	wantKind(t, err, service.ErrInvalidRequest)
	rid, err := f.Service.SignHashAsync(t.Context(), f.alice, req(sad, x), time.Minute)
	if err != nil {
		t.Fatalf("the refused calls consumed the SAD: %v", err)
	}
	if _, err := f.sign(t.Context(), f.alice, id, sad, x); err == nil {
		t.Error("the SAD signs again after an asynchronous signature took it")
	}
	_, err = f.Service.SignPolling(t.Context(), f.bob, rid)
	wantKind(t, err, service.ErrInvalidRequest)
	sigs, err := poll(t, f.alice, rid)
	if err != nil || len(sigs) != 1 {
		t.Fatalf("%d signatures, %v", len(sigs), err)
	}
	cert, err := x509.ParseCertificate(f.Credential(t, id).CertChain[0])
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(cert.PublicKey.(*ecdsa.PublicKey), x, sigs[0]) {
		t.Error("the signature does not verify with the credential's certificate")
	}
	f.Clock.Advance(time.Minute)
	_, err = f.Service.SignPolling(t.Context(), f.alice, rid)
	wantKind(t, err, service.ErrInvalidRequest)
}
