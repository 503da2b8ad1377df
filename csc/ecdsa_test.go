package csc

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"math/big"
	mrand "math/rand/v2"
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

// TestECDSADERAsEncodingASN1 holds the cryptobyte encoding and parsing to
// what encoding/asn1 (the reference, used before) makes and accepts: the
// same bytes for every r and s, and the same verdict on DER mutated byte
// by byte.
func TestECDSADERAsEncodingASN1(t *testing.T) {
	type sigValue struct{ R, S *big.Int }
	rnd := mrand.New(mrand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		size := []int{1, 28, 32, 48, 66}[i%5]
		half := func() *big.Int {
			b := make([]byte, 1+rnd.IntN(size))
			for j := range b {
				b[j] = byte(rnd.Uint32())
			}
			if i%7 == 0 {
				b[0] |= 0x80 // a high bit that DER pads with a zero byte
			}
			v := new(big.Int).SetBytes(b)
			if v.Sign() == 0 {
				v.SetInt64(1)
			}
			return v
		}
		r, s := half(), half()
		want, err := asn1.Marshal(sigValue{r, s})
		if err != nil {
			t.Fatal(err)
		}
		got, err := marshalECDSA(r, s)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("marshalECDSA(%x, %x) = %x, %v; encoding/asn1: %x", r, s, got, err, want)
		}
		mutated := bytes.Clone(want)
		if i%3 != 0 {
			mutated[rnd.IntN(len(mutated))] ^= byte(1 << rnd.IntN(8))
		}
		var v sigValue
		rest, err := asn1.Unmarshal(mutated, &v)
		again, _ := asn1.Marshal(v)
		refOK := len(mutated) >= 8 && err == nil && len(rest) == 0 && v.R.Sign() > 0 && v.S.Sign() > 0 &&
			(v.R.BitLen()+7)/8 <= maxECDSAHalf && (v.S.BitLen()+7)/8 <= maxECDSAHalf && bytes.Equal(again, mutated)
		pr, ps, ok := ParseECDSADER(mutated)
		if ok != refOK || ok && (pr.Cmp(v.R) != 0 || ps.Cmp(v.S) != 0) {
			t.Fatalf("ParseECDSADER(%x) = %v, encoding/asn1 says %v", mutated, ok, refOK)
		}
	}
}
