package csc

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
)

func TestECDSAConversions(t *testing.T) {
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		size := (curve.Params().BitSize + 7) / 8
		k, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		digest := sha256.Sum256([]byte("x"))
		for range 20 { // some r, s have leading zero bytes
			der, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
			if err != nil {
				t.Fatal(err)
			}
			raw, err := ECDSAToRaw(der, size)
			if err != nil || len(raw) != 2*size {
				t.Fatalf("%s: ECDSAToRaw(DER) = %x, %v", curve.Params().Name, raw, err)
			}
			raw2, err := ECDSAToRaw(raw, size)
			if err != nil || !bytes.Equal(raw, raw2) {
				t.Fatalf("ECDSAToRaw(raw) = %x, %v", raw2, err)
			}
			der2, err := ECDSAToDER(raw)
			if err != nil || !bytes.Equal(der, der2) {
				t.Fatalf("ECDSAToDER(raw) = %x, %v, want %x", der2, err, der)
			}
			der3, err := ECDSAToDER(der)
			if err != nil || !bytes.Equal(der, der3) {
				t.Fatalf("ECDSAToDER(DER) = %x, %v", der3, err)
			}
			if !ecdsa.VerifyASN1(&k.PublicKey, digest[:], der2) {
				t.Fatal("converted signature does not verify")
			}
		}
	}
	if CurveSize(OIDP384) != 48 || CurveSize("1.2.3") != 0 {
		t.Error("CurveSize")
	}
}

func TestECDSARejects(t *testing.T) {
	tests := []struct {
		name string
		sig  []byte
		size int
	}{
		{"fail empty", nil, 32},
		{"fail odd length", make([]byte, 63), 0},
		{"fail wrong raw size", make([]byte, 96), 32},
		{"fail zero halves", make([]byte, 64), 32},
		{"fail DER with trailing data", append(mustDER(t), 0), 0},
		{"fail DER negative r", []byte{0x30, 0x06, 0x02, 0x01, 0x80, 0x02, 0x01, 0x01}, 0},
		{"fail DER non-minimal", []byte{0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01}, 0},
		{"fail too long", make([]byte, 200), 0},
		{"fail bad curve size", mustDER(t), 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.size == 0 {
				_, err = ECDSAToDER(tc.sig)
			} else {
				_, err = ECDSAToRaw(tc.sig, tc.size)
			}
			if !errors.Is(err, ErrECDSASignature) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func mustDER(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("x"))
	der, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return der
}
