package module_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/fakeservice"
)

func digestInfoFor(h crypto.Hash, digest []byte) []byte {
	oids := map[crypto.Hash]asn1.ObjectIdentifier{
		crypto.SHA256: {2, 16, 840, 1, 101, 3, 4, 2, 1},
		crypto.SHA384: {2, 16, 840, 1, 101, 3, 4, 2, 2},
		crypto.SHA512: {2, 16, 840, 1, 101, 3, 4, 2, 3},
		crypto.SHA1:   {1, 3, 14, 3, 2, 26},
	}
	b, err := asn1.Marshal(struct {
		Alg    pkix.AlgorithmIdentifier
		Digest []byte
	}{pkix.AlgorithmIdentifier{Algorithm: oids[h], Parameters: asn1.NullRawValue}, digest})
	if err != nil {
		panic(err)
	}
	return b
}

func hashOf(h crypto.Hash, data []byte) []byte {
	hh := h.New()
	hh.Write(data)
	return hh.Sum(nil)
}

func pss(h uint, mgf uint, salt uint) []byte {
	return ck.PSSParams{HashAlg: h, MGF: mgf, SLen: salt}.Encode()
}

func TestSignMechanisms(t *testing.T) {
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		defaultCreds(f)
		f.AddEC("ecraw", elliptic.P384(), 1, 1, module.AuthPIN)
	})
	e.fake().RawECDSA = false
	h := e.open(0, false)
	e.login(h)
	msg := []byte("the quick brown fox")
	rsaPub := e.fake().Cred("rsa").Key.Public().(*rsa.PublicKey)

	verifyRSA := func(hash crypto.Hash, digest []byte, pssSalt int) func([]byte) error {
		return func(sig []byte) error {
			if len(sig) != 256 {
				return fmt.Errorf("RSA signature of %d bytes", len(sig))
			}
			if pssSalt >= 0 {
				return rsa.VerifyPSS(rsaPub, hash, digest, sig, &rsa.PSSOptions{SaltLength: pssSalt, Hash: hash})
			}
			return rsa.VerifyPKCS1v15(rsaPub, hash, digest, sig)
		}
	}
	verifyEC := func(cred string, digest []byte) func([]byte) error {
		pub := e.fake().Cred(cred).Key.Public().(*ecdsa.PublicKey)
		n := (pub.Curve.Params().BitSize + 7) / 8
		return func(sig []byte) error {
			if len(sig) != 2*n {
				return fmt.Errorf("ECDSA signature of %d bytes, want %d", len(sig), 2*n)
			}
			if !ecdsa.Verify(pub, digest, new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])) {
				return errors.New("ECDSA signature invalid")
			}
			return nil
		}
	}
	d256, d384, d512 := hashOf(crypto.SHA256, msg), hashOf(crypto.SHA384, msg), hashOf(crypto.SHA512, msg)

	tests := []struct {
		name   string
		cred   string
		mech   ck.Mechanism
		data   []byte
		verify func([]byte) error
		wantRV ck.Error
	}{
		{"ok RSA_PKCS sha256 DigestInfo", "rsa", ck.Mechanism{Type: ck.CKM_RSA_PKCS}, digestInfoFor(crypto.SHA256, d256), verifyRSA(crypto.SHA256, d256, -1), 0},
		{"ok RSA_PKCS sha512 DigestInfo", "rsa", ck.Mechanism{Type: ck.CKM_RSA_PKCS}, digestInfoFor(crypto.SHA512, d512), verifyRSA(crypto.SHA512, d512, -1), 0},
		{"ok SHA256_RSA_PKCS", "rsa", ck.Mechanism{Type: ck.CKM_SHA256_RSA_PKCS}, msg, verifyRSA(crypto.SHA256, d256, -1), 0},
		{"ok SHA384_RSA_PKCS", "rsa", ck.Mechanism{Type: ck.CKM_SHA384_RSA_PKCS}, msg, verifyRSA(crypto.SHA384, d384, -1), 0},
		{"ok SHA512_RSA_PKCS", "rsa", ck.Mechanism{Type: ck.CKM_SHA512_RSA_PKCS}, msg, verifyRSA(crypto.SHA512, d512, -1), 0},
		{"ok RSA_PKCS_PSS", "rsa", ck.Mechanism{Type: ck.CKM_RSA_PKCS_PSS, Parameter: pss(ck.CKM_SHA256, ck.CKG_MGF1_SHA256, 32)}, d256, verifyRSA(crypto.SHA256, d256, 32), 0},
		{"ok SHA256_RSA_PKCS_PSS", "rsa", ck.Mechanism{Type: ck.CKM_SHA256_RSA_PKCS_PSS, Parameter: pss(ck.CKM_SHA256, ck.CKG_MGF1_SHA256, 32)}, msg, verifyRSA(crypto.SHA256, d256, 32), 0},
		{"ok SHA384_RSA_PKCS_PSS salt 1", "rsa", ck.Mechanism{Type: ck.CKM_SHA384_RSA_PKCS_PSS, Parameter: pss(ck.CKM_SHA384, ck.CKG_MGF1_SHA384, 1)}, msg, verifyRSA(crypto.SHA384, d384, 1), 0},
		{"ok SHA512_RSA_PKCS_PSS", "rsa", ck.Mechanism{Type: ck.CKM_SHA512_RSA_PKCS_PSS, Parameter: pss(ck.CKM_SHA512, ck.CKG_MGF1_SHA512, 64)}, msg, verifyRSA(crypto.SHA512, d512, 64), 0},
		{"ok ECDSA P-256 sha256", "ec", ck.Mechanism{Type: ck.CKM_ECDSA}, d256, verifyEC("ec", d256), 0},
		{"ok ECDSA P-256 sha512", "ec", ck.Mechanism{Type: ck.CKM_ECDSA}, d512, verifyEC("ec", d512), 0},
		{"ok ECDSA_SHA256", "ec", ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, msg, verifyEC("ec", d256), 0},
		{"ok ECDSA_SHA384 P-384 SCAL2", "ec384", ck.Mechanism{Type: ck.CKM_ECDSA_SHA384}, msg, verifyEC("ec384", d384), 0},
		{"ok ECDSA_SHA512", "ec", ck.Mechanism{Type: ck.CKM_ECDSA_SHA512}, msg, verifyEC("ec", d512), 0},
		{"fail RSA_PKCS bare hash", "rsa", ck.Mechanism{Type: ck.CKM_RSA_PKCS}, d256, nil, ck.CKR_DATA_INVALID},
		{"fail RSA_PKCS sha1 not offered", "rsa", ck.Mechanism{Type: ck.CKM_RSA_PKCS}, digestInfoFor(crypto.SHA1, hashOf(crypto.SHA1, msg)), nil, ck.CKR_DATA_INVALID},
		{"fail RSA_PKCS md5+sha1", "rsa", ck.Mechanism{Type: ck.CKM_RSA_PKCS}, make([]byte, 36), nil, ck.CKR_DATA_INVALID},
		{"fail ECDSA odd length", "ec", ck.Mechanism{Type: ck.CKM_ECDSA}, make([]byte, 33), nil, ck.CKR_DATA_LEN_RANGE},
		{"fail ECDSA sha1 length not offered", "ec", ck.Mechanism{Type: ck.CKM_ECDSA}, make([]byte, 20), nil, ck.CKR_DATA_LEN_RANGE},
		{"fail PSS wrong input length", "rsa", ck.Mechanism{Type: ck.CKM_RSA_PKCS_PSS, Parameter: pss(ck.CKM_SHA256, ck.CKG_MGF1_SHA256, 32)}, d384, nil, ck.CKR_DATA_LEN_RANGE},
		{"fail PSS no params", "rsa", ck.Mechanism{Type: ck.CKM_RSA_PKCS_PSS}, d256, nil, ck.CKR_MECHANISM_PARAM_INVALID},
		{"fail PSS hash mismatch", "rsa", ck.Mechanism{Type: ck.CKM_SHA256_RSA_PKCS_PSS, Parameter: pss(ck.CKM_SHA384, ck.CKG_MGF1_SHA384, 32)}, msg, nil, ck.CKR_MECHANISM_PARAM_INVALID},
		{"fail PSS MGF1 hash differs", "rsa", ck.Mechanism{Type: ck.CKM_SHA256_RSA_PKCS_PSS, Parameter: pss(ck.CKM_SHA256, ck.CKG_MGF1_SHA1, 32)}, msg, nil, ck.CKR_MECHANISM_PARAM_INVALID},
		{"fail raw PSS MGF1 hash differs", "rsa", ck.Mechanism{Type: ck.CKM_RSA_PKCS_PSS, Parameter: pss(ck.CKM_SHA256, ck.CKG_MGF1_SHA512, 32)}, d256, nil, ck.CKR_MECHANISM_PARAM_INVALID},
		{"fail PSS salt 0", "rsa", ck.Mechanism{Type: ck.CKM_SHA384_RSA_PKCS_PSS, Parameter: pss(ck.CKM_SHA384, ck.CKG_MGF1_SHA384, 0)}, msg, nil, ck.CKR_MECHANISM_PARAM_INVALID},
		{"fail PSS salt too long", "rsa", ck.Mechanism{Type: ck.CKM_SHA256_RSA_PKCS_PSS, Parameter: pss(ck.CKM_SHA256, ck.CKG_MGF1_SHA256, 300)}, msg, nil, ck.CKR_MECHANISM_PARAM_INVALID},
		{"fail SHA1_RSA_PKCS not offered", "rsa", ck.Mechanism{Type: ck.CKM_SHA1_RSA_PKCS}, msg, nil, ck.CKR_MECHANISM_INVALID},
		{"fail ECDSA on RSA key", "rsa", ck.Mechanism{Type: ck.CKM_ECDSA}, d256, nil, ck.CKR_KEY_TYPE_INCONSISTENT},
		{"fail RSA on EC key", "ec", ck.Mechanism{Type: ck.CKM_SHA256_RSA_PKCS}, msg, nil, ck.CKR_KEY_TYPE_INCONSISTENT},
		{"fail unknown mechanism", "ec", ck.Mechanism{Type: 0x9999}, msg, nil, ck.CKR_MECHANISM_INVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := e.key(h, ck.CKO_PRIVATE_KEY, tt.cred)
			before := e.fake().Calls(fakeservice.MSignHash)
			sig, err := e.sign(h, tt.mech, key, tt.data)
			if got := rv(err); got != tt.wantRV {
				t.Fatalf("rv = %v, want %v (%v)", got, tt.wantRV, err)
			}
			if tt.wantRV == ck.CKR_MECHANISM_PARAM_INVALID {
				if rv(e.m.SignInit(h, tt.mech, key)) != tt.wantRV {
					t.Fatal("refused after C_SignInit, not at it")
				}
				if n := e.fake().Calls(fakeservice.MSignHash) - before; n != 0 {
					t.Fatalf("%d signHash calls for parameters refused at C_SignInit", n)
				}
			}
			// The operation is over either way.
			_, err = e.m.Sign(h, tt.data, make([]byte, 1024))
			e.wantRV(err, ck.CKR_OPERATION_NOT_INITIALIZED)
			if tt.wantRV != 0 {
				return
			}
			if err := tt.verify(sig); err != nil {
				t.Fatalf("verify: %v", err)
			}
			// C_Verify with the public key agrees.
			pub := e.key(h, ck.CKO_PUBLIC_KEY, tt.cred)
			e.must(e.m.VerifyInit(h, tt.mech, pub))
			e.must(e.m.Verify(h, tt.data, sig))
			bad := bytes.Clone(sig)
			bad[len(bad)/2] ^= 1
			e.must(e.m.VerifyInit(h, tt.mech, pub))
			e.wantRV(e.m.Verify(h, tt.data, bad), ck.CKR_SIGNATURE_INVALID)
			e.must(e.m.VerifyInit(h, tt.mech, pub))
			e.wantRV(e.m.Verify(h, tt.data, sig[1:]), ck.CKR_SIGNATURE_LEN_RANGE)
		})
	}

	t.Run("ok service returns raw r||s", func(t *testing.T) {
		e.fake().RawECDSA = true
		defer func() { e.fake().RawECDSA = false }()
		sig, err := e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA384}, e.key(h, ck.CKO_PRIVATE_KEY, "ecraw"), msg)
		e.must(err)
		e.must(verifyEC("ecraw", d384)(sig))
	})
	t.Run("ok signAlgo OIDs sent", func(t *testing.T) {
		e.fake().ResetCalls()
		_, err := e.sign(h, ck.Mechanism{Type: ck.CKM_SHA256_RSA_PKCS_PSS, Parameter: pss(ck.CKM_SHA256, ck.CKG_MGF1_SHA256, 32)}, e.key(h, ck.CKO_PRIVATE_KEY, "rsa"), msg)
		e.must(err)
		_, err = e.sign(h, ck.Mechanism{Type: ck.CKM_SHA384_RSA_PKCS}, e.key(h, ck.CKO_PRIVATE_KEY, "rsa"), msg)
		e.must(err)
		_, err = e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA}, e.key(h, ck.CKO_PRIVATE_KEY, "ec"), d256)
		e.must(err)
		reqs := e.fake().SignRequests()
		want := [][2]string{
			{"1.2.840.113549.1.1.10", "2.16.840.1.101.3.4.2.1"},
			{"1.2.840.113549.1.1.12", ""},
			{"1.2.840.10045.4.3.2", ""},
		}
		for i, r := range reqs {
			if r.SignAlgOID != want[i][0] || r.HashAlgOID != want[i][1] {
				t.Errorf("request %d: signAlgo %s hash %q", i, r.SignAlgOID, r.HashAlgOID)
			}
		}
		if len(reqs[0].SignAlgParams) == 0 || reqs[1].SignAlgParams != nil {
			t.Error("signAlgoParams")
		}
	})
}

func TestSignBufferRules(t *testing.T) {
	e := newEnv(t, nil)
	h := e.open(0, false)
	e.login(h)
	key := e.key(h, ck.CKO_PRIVATE_KEY, "ec")
	msg := []byte("hello")
	e.fake().ResetCalls()

	e.must(e.m.SignInit(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key))
	e.wantRV(e.m.SignInit(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key), ck.CKR_OPERATION_ACTIVE)
	for range 3 {
		n, err := e.m.Sign(h, msg, nil)
		if err != nil || n != 64 {
			t.Fatalf("size query: %d %v", n, err)
		}
	}
	n, err := e.m.Sign(h, msg, make([]byte, 10))
	e.wantRV(err, ck.CKR_BUFFER_TOO_SMALL)
	if n != 64 {
		t.Fatalf("too small: n = %d", n)
	}
	if c := e.fake().Calls(fakeservice.MSignHash) + e.fake().Calls(fakeservice.MAuthorize); c != 0 {
		t.Fatalf("%d remote calls before a signature was possible", c)
	}
	sig := make([]byte, 100)
	n, err = e.m.Sign(h, msg, sig)
	e.must(err)
	if n != 64 || e.fake().Calls(fakeservice.MSignHash) != 1 {
		t.Fatalf("n = %d, signHash calls = %d", n, e.fake().Calls(fakeservice.MSignHash))
	}
	_, err = e.m.Sign(h, msg, sig)
	e.wantRV(err, ck.CKR_OPERATION_NOT_INITIALIZED)

	// Multi-part, in chunks, with a size query and a too-small buffer.
	data := bytes.Repeat([]byte("0123456789"), 1000)
	e.must(e.m.SignInit(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key))
	for i := 0; i < len(data); i += 777 {
		e.must(e.m.SignUpdate(h, data[i:min(i+777, len(data))]))
	}
	n, err = e.m.SignFinal(h, nil)
	if err != nil || n != 64 {
		t.Fatalf("SignFinal size: %d %v", n, err)
	}
	_, err = e.m.SignFinal(h, make([]byte, 63))
	e.wantRV(err, ck.CKR_BUFFER_TOO_SMALL)
	n, err = e.m.SignFinal(h, sig)
	e.must(err)
	pub := e.fake().Cred("ec").Key.Public().(*ecdsa.PublicKey)
	d := sha256.Sum256(data)
	if !ecdsa.Verify(pub, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:64])) {
		t.Fatal("multi-part signature invalid")
	}
	if c := e.fake().Calls(fakeservice.MSignHash); c != 2 {
		t.Fatalf("signHash calls = %d, want 2", c)
	}
	// Multi-part verify.
	pubH := e.key(h, ck.CKO_PUBLIC_KEY, "ec")
	e.must(e.m.VerifyInit(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, pubH))
	e.must(e.m.VerifyUpdate(h, data[:5000]))
	e.must(e.m.VerifyUpdate(h, data[5000:]))
	e.must(e.m.VerifyFinal(h, sig[:n]))

	// Operation state is per session.
	h2 := e.open(0, false)
	e.must(e.m.SignInit(h, ck.Mechanism{Type: ck.CKM_ECDSA}, key))
	_, err = e.m.Sign(h2, d[:], sig)
	e.wantRV(err, ck.CKR_OPERATION_NOT_INITIALIZED)
	e.must(e.m.SignInit(h2, ck.Mechanism{Type: ck.CKM_ECDSA}, key))
	_, err = e.m.Sign(h2, d[:], sig)
	e.must(err)
	_, err = e.m.Sign(h, d[:], sig)
	e.must(err)

	// Keys: certificates and public keys cannot sign; handles are checked.
	e.wantRV(e.m.SignInit(h, ck.Mechanism{Type: ck.CKM_ECDSA}, pubH), ck.CKR_KEY_FUNCTION_NOT_PERMITTED)
	e.wantRV(e.m.SignInit(h, ck.Mechanism{Type: ck.CKM_ECDSA}, e.key(h, ck.CKO_CERTIFICATE, "ec")), ck.CKR_KEY_HANDLE_INVALID)
	e.wantRV(e.m.SignInit(h, ck.Mechanism{Type: ck.CKM_ECDSA}, 987654), ck.CKR_KEY_HANDLE_INVALID)
	e.wantRV(e.m.VerifyInit(h, ck.Mechanism{Type: ck.CKM_ECDSA}, key), ck.CKR_KEY_FUNCTION_NOT_PERMITTED)
	_, err = e.m.SignFinal(h, sig)
	e.wantRV(err, ck.CKR_OPERATION_NOT_INITIALIZED)
	e.wantRV(e.m.SignUpdate(h, msg), ck.CKR_OPERATION_NOT_INITIALIZED)

	// Not logged in: the private key is hidden and cannot be used.
	e.must(e.m.Logout(h))
	e.wantRV(e.m.SignInit(h, ck.Mechanism{Type: ck.CKM_ECDSA}, key), ck.CKR_USER_NOT_LOGGED_IN)
}

func TestDigest(t *testing.T) {
	e := newEnv(t, nil)
	h := e.open(0, false)
	msg := []byte("digest me")
	want := sha256.Sum256(msg)

	e.must(e.m.DigestInit(h, ck.Mechanism{Type: ck.CKM_SHA256}))
	e.wantRV(e.m.DigestInit(h, ck.Mechanism{Type: ck.CKM_SHA256}), ck.CKR_OPERATION_ACTIVE)
	n, err := e.m.Digest(h, msg, nil)
	if err != nil || n != 32 {
		t.Fatal(n, err)
	}
	_, err = e.m.Digest(h, msg, make([]byte, 31))
	e.wantRV(err, ck.CKR_BUFFER_TOO_SMALL)
	out := make([]byte, 40)
	n, err = e.m.Digest(h, msg, out)
	e.must(err)
	if !bytes.Equal(out[:n], want[:]) {
		t.Fatal("digest mismatch")
	}
	_, err = e.m.Digest(h, msg, out)
	e.wantRV(err, ck.CKR_OPERATION_NOT_INITIALIZED)

	e.must(e.m.DigestInit(h, ck.Mechanism{Type: ck.CKM_SHA256}))
	e.must(e.m.DigestUpdate(h, msg[:3]))
	e.must(e.m.DigestUpdate(h, msg[3:]))
	_, err = e.m.DigestFinal(h, make([]byte, 1))
	e.wantRV(err, ck.CKR_BUFFER_TOO_SMALL)
	n, err = e.m.DigestFinal(h, out)
	e.must(err)
	if !bytes.Equal(out[:n], want[:]) {
		t.Fatal("multi-part digest mismatch")
	}
	e.wantRV(e.m.DigestInit(h, ck.Mechanism{Type: ck.CKM_MD5}), ck.CKR_MECHANISM_INVALID)
}

func TestMechanisms(t *testing.T) {
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		defaultCreds(f)
		f.AddRSA("rsa3072", 3072, 1, 1, module.AuthPIN)
	})
	h := e.open(0, false)
	e.login(h)
	list, err := e.m.GetMechanismList(0)
	e.must(err)
	has := map[uint]bool{}
	for _, m := range list {
		has[m] = true
	}
	for _, m := range []uint{ck.CKM_RSA_PKCS, ck.CKM_SHA256_RSA_PKCS, ck.CKM_SHA512_RSA_PKCS, ck.CKM_RSA_PKCS_PSS,
		ck.CKM_SHA256_RSA_PKCS_PSS, ck.CKM_ECDSA, ck.CKM_ECDSA_SHA256, ck.CKM_ECDSA_SHA384, ck.CKM_SHA256} {
		if !has[m] {
			t.Errorf("mechanism %#x missing", m)
		}
	}
	for _, m := range []uint{ck.CKM_SHA1_RSA_PKCS, ck.CKM_ECDSA_SHA1, ck.CKM_SHA224_RSA_PKCS, ck.CKM_RSA_X_509} {
		if has[m] {
			t.Errorf("mechanism %#x offered", m)
		}
	}
	info, err := e.m.GetMechanismInfo(0, ck.CKM_SHA256_RSA_PKCS)
	e.must(err)
	if info.MinKeySize != 2048 || info.MaxKeySize != 3072 || info.Flags != ck.CKF_HW|ck.CKF_SIGN|ck.CKF_VERIFY {
		t.Errorf("RSA info %+v", info)
	}
	info, err = e.m.GetMechanismInfo(0, ck.CKM_ECDSA)
	e.must(err)
	if info.MinKeySize != 256 || info.MaxKeySize != 384 || info.Flags&ck.CKF_HW == 0 || info.Flags&ck.CKF_SIGN == 0 || info.Flags&ck.CKF_EC_NAMEDCURVE == 0 {
		t.Errorf("ECDSA info %+v", info)
	}
	_, err = e.m.GetMechanismInfo(0, ck.CKM_SHA1_RSA_PKCS)
	e.wantRV(err, ck.CKR_MECHANISM_INVALID)

	// SHA-1 appears when the service offers it.
	e2 := newEnv(t, func(_ int, f *fakeservice.Fake) {
		c := f.AddRSA("old", 2048, 1, 1, module.AuthPIN)
		f.Set(func([]*fakeservice.Cred) { c.KeyAlgos = append(c.KeyAlgos, "1.2.840.113549.1.1.5") })
	})
	e2.must(e2.m.Refresh(context.Background(), 0))
	_, err = e2.m.GetMechanismInfo(0, ck.CKM_SHA1_RSA_PKCS)
	e2.must(err)
}

func TestSCAL1PreAuthorization(t *testing.T) {
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		f.AddRSA("rsa", 2048, 1, 5, module.AuthPIN)
	})
	h := e.open(0, false)
	e.login(h)
	reqs := e.fake().AuthorizeRequests()
	if len(reqs) != 1 || reqs[0].NumSignatures != 5 || string(reqs[0].PIN) != goodPIN {
		t.Fatalf("login authorizations: %+v", reqs)
	}
	key := e.key(h, ck.CKO_PRIVATE_KEY, "rsa")
	for i := range 7 {
		_, err := e.sign(h, ck.Mechanism{Type: ck.CKM_SHA256_RSA_PKCS}, key, []byte{byte(i)})
		e.must(err)
	}
	// 5 from the login batch, then one more batch of 5 for signatures 6 and 7.
	if n := e.fake().Calls(fakeservice.MAuthorize); n != 2 {
		t.Fatalf("authorize calls = %d, want 2", n)
	}
	if n := e.fake().Calls(fakeservice.MSignHash); n != 7 {
		t.Fatalf("signHash calls = %d", n)
	}
	// Logout forgets the SADs.
	e.must(e.m.Logout(h))
	e.login(h)
	if n := e.fake().Calls(fakeservice.MAuthorize); n != 3 {
		t.Fatalf("authorize calls after re-login = %d", n)
	}
}

func TestSCAL1PreauthCapAndSADRetry(t *testing.T) {
	var failOnce sync.Once
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		f.AddEC("ec", elliptic.P256(), 1, 100, module.AuthPIN)
		f.Hook = func(_ context.Context, m string) error {
			var err error
			if m == fakeservice.MSignHash {
				failOnce.Do(func() { err = module.ErrSADInvalid })
			}
			return err
		}
	}, withOptions(func(o *module.Options) { o.PreauthCap = 3 }))
	h := e.open(0, false)
	e.login(h)
	if r := e.fake().AuthorizeRequests(); r[0].NumSignatures != 3 {
		t.Fatalf("cap not applied: %d", r[0].NumSignatures)
	}
	_, err := e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, e.key(h, ck.CKO_PRIVATE_KEY, "ec"), []byte("x"))
	e.must(err)
	if n := e.fake().Calls(fakeservice.MAuthorize); n != 2 {
		t.Fatalf("a rejected SAD must be replaced once: %d authorizations", n)
	}
}

func TestSCAL2AuthorizesEachSignature(t *testing.T) {
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		f.AddEC("ec", elliptic.P256(), 2, 10, module.AuthPIN)
	})
	h := e.open(0, false)
	e.login(h)
	if n := e.fake().Calls(fakeservice.MAuthorize); n != 0 {
		t.Fatalf("SCAL2 PIN checked at login: %d", n)
	}
	key := e.key(h, ck.CKO_PRIVATE_KEY, "ec")
	for i := range 3 {
		msg := []byte{byte(i)}
		_, err := e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key, msg)
		e.must(err)
		reqs := e.fake().AuthorizeRequests()
		last := reqs[len(reqs)-1]
		d := sha256.Sum256(msg)
		if len(reqs) != i+1 || last.NumSignatures != 1 || len(last.Hashes) != 1 || !bytes.Equal(last.Hashes[0], d[:]) ||
			last.HashAlgOID != "2.16.840.1.101.3.4.2.1" {
			t.Fatalf("authorization %d: %+v", i, last)
		}
	}
}

func TestFinalizeDuringSign(t *testing.T) {
	started := make(chan struct{})
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		f.AddEC("ec", elliptic.P256(), 1, 1, module.AuthPIN)
		f.Hook = func(ctx context.Context, m string) error {
			if m == fakeservice.MSignHash {
				close(started)
				<-ctx.Done() // a service that never answers
				return fmt.Errorf("signHash: %w", ctx.Err())
			}
			return nil
		}
	})
	h := e.open(0, false)
	e.login(h)
	key := e.key(h, ck.CKO_PRIVATE_KEY, "ec")
	e.must(e.m.SignInit(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key))
	done := make(chan error)
	go func() {
		_, err := e.m.Sign(h, []byte("x"), make([]byte, 64))
		done <- err
	}()
	<-started
	t0 := time.Now()
	e.must(e.m.Finalize())
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("Finalize took %v", d)
	}
	select {
	case err := <-done:
		if got := rv(err); got != ck.CKR_CRYPTOKI_NOT_INITIALIZED && got != ck.CKR_FUNCTION_CANCELED {
			t.Fatalf("Sign after Finalize = %v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Sign still blocked after Finalize")
	}
	// The module can be initialized again.
	e.must(e.m.Initialize(module.InitArgs{}))
}

func TestCloseSessionDuringSign(t *testing.T) {
	started := make(chan struct{})
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		f.AddEC("ec", elliptic.P256(), 1, 1, module.AuthPIN)
		f.Hook = func(ctx context.Context, m string) error {
			if m == fakeservice.MSignHash {
				close(started)
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}
	})
	h := e.open(0, false)
	e.login(h)
	e.must(e.m.SignInit(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, e.key(h, ck.CKO_PRIVATE_KEY, "ec")))
	done := make(chan error)
	go func() {
		_, err := e.m.Sign(h, []byte("x"), make([]byte, 64))
		done <- err
	}()
	<-started
	// A second call on the busy operation does not start another signature.
	_, err := e.m.Sign(h, []byte("x"), make([]byte, 64))
	e.wantRV(err, ck.CKR_OPERATION_ACTIVE)
	e.must(e.m.CloseSession(h))
	e.wantRV(<-done, ck.CKR_SESSION_CLOSED)
}

func TestServiceErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want ck.Error
	}{
		{"unreachable", fmt.Errorf("dial: %w", module.ErrUnreachable), ck.CKR_DEVICE_ERROR},
		{"deadline", context.DeadlineExceeded, ck.CKR_DEVICE_ERROR},
		{"not logged in", module.ErrNotLoggedIn, ck.CKR_USER_NOT_LOGGED_IN},
		{"rejected (HTTP 400, 403)", module.ErrRejected, ck.CKR_FUNCTION_FAILED},
		{"locked", module.ErrPINLocked, ck.CKR_PIN_LOCKED},
		{"SAD invalid", module.ErrSADInvalid, ck.CKR_USER_NOT_LOGGED_IN},
		{"canceled", module.ErrCanceled, ck.CKR_FUNCTION_CANCELED},
		{"other", errors.New("weird"), ck.CKR_FUNCTION_FAILED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(_ int, f *fakeservice.Fake) {
				f.AddEC("ec", elliptic.P256(), 2, 1, module.AuthPIN)
			})
			h := e.open(0, false)
			e.login(h)
			key := e.key(h, ck.CKO_PRIVATE_KEY, "ec")
			e.fake().Hook = func(_ context.Context, m string) error {
				if m == fakeservice.MSignHash {
					return tt.err
				}
				return nil
			}
			_, err := e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key, []byte("x"))
			e.wantRV(err, tt.want)
		})
	}
}

func TestPanicInServiceIsContained(t *testing.T) {
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		f.AddEC("ec", elliptic.P256(), 2, 1, module.AuthPIN)
	})
	h := e.open(0, false)
	e.login(h)
	key := e.key(h, ck.CKO_PRIVATE_KEY, "ec")
	e.fake().Hook = func(_ context.Context, m string) error {
		if m == fakeservice.MSignHash {
			panic("boom")
		}
		return nil
	}
	_, err := e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key, []byte("x"))
	e.wantRV(err, ck.CKR_GENERAL_ERROR)
	e.fake().Hook = nil
	_, err = e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key, []byte("x"))
	e.must(err)

	e.fake().Hook = func(_ context.Context, m string) error { panic("boom in login") }
	e.must(e.m.Logout(h))
	e.wantRV(e.m.Login(h, ck.CKU_USER, []byte(goodPIN)), ck.CKR_GENERAL_ERROR)
	e.fake().Hook = nil
	e.login(h) // the login lock was released
}

func TestParallelSigning(t *testing.T) {
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		f.AddRSA("rsa", 2048, 1, 4, module.AuthPIN)
		f.AddEC("ec", elliptic.P256(), 2, 1, module.AuthPIN)
		f.Hook = func(ctx context.Context, m string) error {
			if m == fakeservice.MSignHash {
				time.Sleep(time.Millisecond) // let calls overlap
			}
			return nil
		}
	})
	h0 := e.open(0, false)
	e.login(h0)
	rsaKey := e.key(h0, ck.CKO_PRIVATE_KEY, "rsa")
	ecKey := e.key(h0, ck.CKO_PRIVATE_KEY, "ec")
	rsaPub := e.fake().Cred("rsa").Key.Public().(*rsa.PublicKey)
	ecPub := e.fake().Cred("ec").Key.Public().(*ecdsa.PublicKey)

	const workers, each = 12, 4
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := e.m.OpenSession(0, ck.CKF_SERIAL_SESSION)
			if err != nil {
				errs <- err
				return
			}
			defer e.m.CloseSession(h)
			for i := range each {
				msg := []byte(fmt.Sprintf("w%d-%d", w, i))
				d := sha256.Sum256(msg)
				if (w+i)%2 == 0 {
					if err := e.m.SignInit(h, ck.Mechanism{Type: ck.CKM_SHA256_RSA_PKCS}, rsaKey); err != nil {
						errs <- err
						continue
					}
					sig := make([]byte, 256)
					n, err := e.m.Sign(h, msg, sig)
					if err == nil {
						err = rsa.VerifyPKCS1v15(rsaPub, crypto.SHA256, d[:], sig[:n])
					}
					if err != nil {
						errs <- err
					}
				} else {
					if err := e.m.SignInit(h, ck.Mechanism{Type: ck.CKM_ECDSA}, ecKey); err != nil {
						errs <- err
						continue
					}
					sig := make([]byte, 64)
					n, err := e.m.Sign(h, d[:], sig)
					if err == nil && (n != 64 || !ecdsa.Verify(ecPub, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))) {
						err = errors.New("bad ECDSA signature")
					}
					if err != nil {
						errs <- err
					}
				}
				// Metadata calls interleave freely.
				if _, err := e.m.GetTokenInfo(0); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := e.fake().Calls(fakeservice.MSignHash); n != workers*each {
		t.Errorf("signHash calls = %d, want %d", n, workers*each)
	}
}

// TestServiceSignatureChecked: a service that signs with another key than
// the certificate's is caught on the first signature of each mechanism and
// hash (C_Sign fails with CKR_DEVICE_ERROR, no signature handed out), and on every signature with
// verify_every_signature.
func TestServiceSignatureChecked(t *testing.T) {
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sha256Mech := ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}
	sha384Mech := ck.Mechanism{Type: ck.CKM_ECDSA_SHA384}
	tests := []struct {
		name      string
		every     bool
		swapAfter int // good signatures (ECDSA-SHA256) before the service swaps keys
		mech      ck.Mechanism
		want      ck.Error // 0: the wrong signature is handed out (not checked)
	}{
		{name: "first signature", swapAfter: 0, mech: sha256Mech, want: ck.CKR_DEVICE_ERROR},
		{name: "new hash", swapAfter: 1, mech: sha384Mech, want: ck.CKR_DEVICE_ERROR},
		{name: "same shape, checked once", swapAfter: 1, mech: sha256Mech, want: 0},
		{name: "same shape, every signature", every: true, swapAfter: 1, mech: sha256Mech, want: ck.CKR_DEVICE_ERROR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cred *fakeservice.Cred
			svc := pinService("Test")
			svc.VerifyEverySignature = tt.every
			e := newEnv(t, func(_ int, f *fakeservice.Fake) {
				cred = f.AddEC("ec", elliptic.P256(), 1, 10, module.AuthPIN)
			}, withService(svc))
			h := e.open(0, false)
			e.login(h)
			key := e.key(h, ck.CKO_PRIVATE_KEY, "ec")
			for range tt.swapAfter {
				_, err := e.sign(h, sha256Mech, key, []byte("good"))
				e.must(err)
			}
			cred.Key = other
			sig, err := e.sign(h, tt.mech, key, []byte("bad"))
			if tt.want != 0 {
				e.wantRV(err, tt.want)
				if len(sig) != 0 {
					t.Fatalf("a signature was handed out: %x", sig)
				}
				return
			}
			e.must(err)
			// The documented cost of checking once: this signature is the
			// other key's.
			digest := sha256.Sum256([]byte("bad"))
			r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			if len(sig) != 64 || !ecdsa.Verify(&other.PublicKey, digest[:], r, s) {
				t.Fatalf("signature %x is not the other key's", sig)
			}
		})
	}
}

// TestOneDeadlinePerCall: the service's timeout bounds a whole C_Sign or
// C_Login, not each service call in it: with every call taking 80% of the
// timeout, both answer CKR_DEVICE_ERROR once the timeout has passed, not
// after the sum of their calls (160%).
func TestOneDeadlinePerCall(t *testing.T) {
	const timeout = time.Second
	slow := func(ctx context.Context, m string) error {
		if m == fakeservice.MAuthorize || m == fakeservice.MSignHash || m == fakeservice.MList {
			select {
			case <-time.After(timeout * 8 / 10):
			case <-ctx.Done():
				return fmt.Errorf("%w: %w", module.ErrUnreachable, ctx.Err())
			}
		}
		return nil
	}
	tests := []struct {
		name string
		scal int // 2: C_Sign authorizes, then signs
		call func(e *env, h module.SessionHandle, key module.ObjectHandle) error
	}{
		{name: "C_Sign authorize+signHash", scal: 2, call: func(e *env, h module.SessionHandle, key module.ObjectHandle) error {
			_, err := e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key, []byte("x"))
			return err
		}},
		{name: "C_Login listing+authorize", scal: 1, call: func(e *env, h module.SessionHandle, _ module.ObjectHandle) error {
			e.must(e.m.Logout(h))
			return e.m.Login(h, ck.CKU_USER, []byte(goodPIN))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := pinService("Test")
			svc.Timeout, svc.ListTimeout = timeout, timeout
			e := newEnv(t, func(_ int, f *fakeservice.Fake) {
				f.AddEC("ec", elliptic.P256(), tt.scal, 1, module.AuthPIN)
			}, withService(svc))
			h := e.open(0, false)
			e.login(h)
			key := e.key(h, ck.CKO_PRIVATE_KEY, "ec")
			e.fake().Hook = slow
			start := time.Now()
			err := tt.call(e, h, key)
			took := time.Since(start)
			e.fake().Hook = nil
			e.wantRV(err, ck.CKR_DEVICE_ERROR)
			if took < timeout || took > timeout*13/10 {
				t.Fatalf("answered after %v, want about the timeout %v (not %v)", took, timeout, timeout*16/10)
			}
		})
	}
}

// TestSessionCancel: C_SessionCancel(CKF_SIGN) ends a signature waiting on
// the service (CKR_FUNCTION_CANCELED, promptly) and an idle operation; the
// session signs again afterwards; other flags leave the signature alone.
func TestSessionCancel(t *testing.T) {
	e := newEnv(t, nil)
	h := e.open(0, false)
	e.login(h)
	key := e.key(h, ck.CKO_PRIVATE_KEY, "rsa")
	mech := ck.Mechanism{Type: ck.CKM_SHA256_RSA_PKCS}

	entered := make(chan struct{}, 1)
	e.fake().Hook = func(ctx context.Context, m string) error {
		if m == fakeservice.MSignHash {
			entered <- struct{}{}
			<-ctx.Done()
			return fmt.Errorf("%w: %w", module.ErrUnreachable, ctx.Err())
		}
		return nil
	}
	e.must(e.m.SignInit(h, mech, key))
	done := make(chan error, 1)
	go func() {
		_, err := e.m.Sign(h, []byte("x"), make([]byte, 256))
		done <- err
	}()
	<-entered
	e.must(e.m.SessionCancel(h, ck.CKF_VERIFY|ck.CKF_DIGEST)) // not the signature
	select {
	case err := <-done:
		t.Fatalf("C_Sign returned %v after cancelling other operations", err)
	case <-time.After(50 * time.Millisecond):
	}
	e.must(e.m.SessionCancel(h, ck.CKF_SIGN))
	select {
	case err := <-done:
		e.wantRV(err, ck.CKR_FUNCTION_CANCELED)
	case <-time.After(10 * time.Second):
		t.Fatal("C_Sign still waiting after C_SessionCancel")
	}
	e.fake().Hook = nil

	// An idle operation: ended, C_Sign then has none.
	e.must(e.m.SignInit(h, mech, key))
	e.must(e.m.SessionCancel(h, ck.CKF_SIGN))
	_, err := e.m.Sign(h, []byte("x"), nil)
	e.wantRV(err, ck.CKR_OPERATION_NOT_INITIALIZED)
	e.wantRV(e.m.SessionCancel(h+100, ck.CKF_SIGN), ck.CKR_SESSION_HANDLE_INVALID)

	sig, err := e.sign(h, mech, key, []byte("again"))
	e.must(err)
	if len(sig) != 256 {
		t.Fatalf("signature of %d bytes", len(sig))
	}
}
