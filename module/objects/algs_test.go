package objects

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"math/big"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/module/ck"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestParseDigestInfo(t *testing.T) {
	sha256Prefix := "3031300d060960864801650304020105000420"
	d32 := bytes.Repeat([]byte{0xAB}, 32)
	tests := []struct {
		name    string
		in      []byte
		want    crypto.Hash
		wantErr bool
	}{
		{"ok sha256 NULL params", append(mustHex(sha256Prefix), d32...), crypto.SHA256, false},
		{"ok sha256 absent params", append(mustHex("302f300b0609608648016503040201"+"0420"), d32...), crypto.SHA256, false},
		{"ok sha1", append(mustHex("3021300906052b0e03021a05000414"), bytes.Repeat([]byte{1}, 20)...), crypto.SHA1, false},
		{"ok sha384", DigestInfo(hashAlgs[3], bytes.Repeat([]byte{2}, 48)), crypto.SHA384, false},
		{"ok sha512", DigestInfo(hashAlgs[4], bytes.Repeat([]byte{2}, 64)), crypto.SHA512, false},
		{"fail md5", append(mustHex("3020300c06082a864886f70d020505000410"), bytes.Repeat([]byte{1}, 16)...), 0, true},
		{"fail bare md5||sha1 36 bytes", bytes.Repeat([]byte{1}, 36), 0, true},
		{"fail bare sha256", d32, 0, true},
		{"fail trailing data", append(append(mustHex(sha256Prefix), d32...), 0), 0, true},
		{"fail short digest", append(mustHex("3030300d06096086480165030402010500041f"), d32[:31]...), 0, true},
		{"fail non-NULL params", append(mustHex("3032300e0609608648016503040201020100"+"0420"), d32...), 0, true},
		{"fail empty", nil, 0, true},
		{"fail long-form length", append(mustHex("308131300d060960864801650304020105000420"), d32...), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, d, err := ParseDigestInfo(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (h.Hash != tt.want || len(d) != tt.want.Size()) {
				t.Fatalf("got %v/%d bytes, want %v", h.Hash, len(d), tt.want)
			}
		})
	}
}

func FuzzDigestInfo(f *testing.F) {
	for _, h := range hashAlgs {
		f.Add(DigestInfo(h, make([]byte, h.Hash.Size())))
	}
	f.Add([]byte{0x30, 0x00})
	f.Add(bytes.Repeat([]byte{0x30}, 40))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, d, err := ParseDigestInfo(in)
		if err != nil {
			return
		}
		if len(d) != h.Hash.Size() {
			t.Fatalf("digest of %d bytes for %v", len(d), h.Hash)
		}
		// Whatever parses is a canonical DigestInfo, with or without NULL.
		re := DigestInfo(h, d)
		if bytes.Equal(re, in) {
			return
		}
		// The only other accepted form omits the NULL (two bytes shorter).
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(mustOID(h.OID))
			})
			b.AddASN1OctetString(d)
		})
		if !bytes.Equal(b.BytesOrPanic(), in) {
			t.Fatalf("accepted non-canonical input %x", in)
		}
	})
}

func TestPSSParamsDER(t *testing.T) {
	type params struct {
		Hash pkix.AlgorithmIdentifier `asn1:"explicit,optional,tag:0"`
		MGF  pkix.AlgorithmIdentifier `asn1:"explicit,optional,tag:1"`
		Salt int                      `asn1:"explicit,optional,tag:2,default:20"`
	}
	for _, h := range hashAlgs {
		der := PSSParamsDER(h, h, h.Hash.Size())
		var p params
		rest, err := asn1.Unmarshal(der, &p)
		if err != nil || len(rest) != 0 {
			t.Fatalf("%v: %v", h.Hash, err)
		}
		if h.Hash == crypto.SHA1 {
			if len(p.Hash.Algorithm) != 0 || p.Salt != 20 || !bytes.Equal(der, []byte{0x30, 0x00}) {
				t.Errorf("SHA-1 defaults not omitted: %x", der)
			}
			continue
		}
		if p.Hash.Algorithm.String() != h.OID || p.MGF.Algorithm.String() != oidMGF1 || p.Salt != h.Hash.Size() {
			t.Errorf("%v: decoded %+v", h.Hash, p)
		}
	}
	// Known answer: SHA-256, MGF1-SHA-256, salt 32, as in RFC 4055 examples.
	want := "3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120"
	if got := hex.EncodeToString(PSSParamsDER(hashAlgs[2], hashAlgs[2], 32)); got != want {
		t.Errorf("PSS SHA-256 params\n got %s\nwant %s", got, want)
	}
}

// TestECDSARaw: the conversion the module uses on signHash answers.
func TestECDSARaw(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	digest := make([]byte, 32)
	for range 50 {
		der, _ := ecdsa.SignASN1(rand.Reader, k, digest)
		raw, err := csc.ECDSAToRaw(der, 32)
		if err != nil || len(raw) != 64 {
			t.Fatalf("ECDSAToRaw: %v", err)
		}
		r, s := new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])
		if !ecdsa.Verify(&k.PublicKey, digest, r, s) {
			t.Fatal("converted signature does not verify")
		}
		again, err := csc.ECDSAToRaw(raw, 32)
		if err != nil || !bytes.Equal(again, raw) {
			t.Fatal("raw input not passed through")
		}
	}
	// Small r and s are left-padded.
	var b []byte
	b, _ = asn1.Marshal(struct{ R, S *big.Int }{big.NewInt(1), big.NewInt(2)})
	raw, err := csc.ECDSAToRaw(b, 32)
	if err != nil || raw[31] != 1 || raw[63] != 2 || raw[0] != 0 {
		t.Fatalf("padding: %x %v", raw, err)
	}
	if _, err := csc.ECDSAToRaw([]byte{1, 2, 3}, 32); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestRSAFixed(t *testing.T) {
	got, err := RSAFixed([]byte{1, 2}, 4)
	if err != nil || !bytes.Equal(got, []byte{0, 0, 1, 2}) {
		t.Fatalf("got %x %v", got, err)
	}
	got, err = RSAFixed([]byte{0, 0, 1, 2, 3, 4}, 4)
	if err != nil || !bytes.Equal(got, []byte{1, 2, 3, 4}) {
		t.Fatalf("got %x %v", got, err)
	}
	if _, err := RSAFixed([]byte{9, 1, 2, 3, 4}, 4); err == nil {
		t.Fatal("oversized accepted")
	}
}

func TestChooseSignAlgo(t *testing.T) {
	sha1, sha256 := hashAlgs[0], hashAlgs[2]
	tests := []struct {
		name     string
		Algos    []string
		s        Scheme
		h        HashAlg
		wantAlgo string
		wantHash string
		ok       bool
	}{
		{"ok specific rsa", []string{oidSHA256WithRSA}, SchemePKCS1, sha256, oidSHA256WithRSA, "", true},
		{"ok generic rsa", []string{oidRSAEncryption}, SchemePKCS1, sha256, oidRSAEncryption, oidSHA256, true},
		{"fail sha1 not offered", []string{oidRSAEncryption}, SchemePKCS1, sha1, "", "", false},
		{"ok sha1 offered", []string{oidRSAEncryption, oidSHA1WithRSA}, SchemePKCS1, sha1, oidSHA1WithRSA, "", true},
		{"ok pss", []string{oidRSASSAPSS}, SchemePSS, sha256, oidRSASSAPSS, oidSHA256, true},
		{"fail pss absent", []string{oidRSAEncryption}, SchemePSS, sha256, "", "", false},
		{"ok ecdsa specific", []string{oidECDSAWithSHA256}, SchemeECDSA, sha256, oidECDSAWithSHA256, "", true},
		{"ok ecdsa via ecPublicKey", []string{oidECPublicKey}, SchemeECDSA, sha256, oidECPublicKey, oidSHA256, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, h, ok := ChooseSignAlgo(tt.Algos, tt.s, tt.h)
			if ok != tt.ok || a != tt.wantAlgo || h != tt.wantHash {
				t.Fatalf("got %q %q %v", a, h, ok)
			}
		})
	}
	if got := offeredMechs([]string{oidRSAEncryption}, ck.CKK_RSA); len(got) != 4 || got[0] != ck.CKM_RSA_PKCS {
		t.Errorf("offeredMechs(rsaEncryption) = %v", got)
	}
}

func testObject() *Object {
	return &Object{
		attrs: map[uint][]byte{
			ck.CKA_CLASS: ck.ULongBytes(ck.CKO_PRIVATE_KEY),
			ck.CKA_LABEL: []byte("label"),
			ck.CKA_ID:    {1, 2, 3},
			ck.CKA_SIGN:  ck.Bool(true),
			ck.CKA_URL:   {},
		},
		sensitive: map[uint]bool{ck.CKA_PRIVATE_EXPONENT: true},
	}
}

func TestGetAttributes(t *testing.T) {
	unavail := ck.UnavailableInformation
	tests := []struct {
		name    string
		tmpl    []AttributeRequest
		wantLen []uint
		wantRV  error
	}{
		{"ok length query", []AttributeRequest{{Type: ck.CKA_LABEL}, {Type: ck.CKA_ID}}, []uint{5, 3}, nil},
		{"ok values", []AttributeRequest{{Type: ck.CKA_LABEL, Buf: make([]byte, 10)}, {Type: ck.CKA_URL, Buf: make([]byte, 0)}}, []uint{5, 0}, nil},
		{"fail too small", []AttributeRequest{{Type: ck.CKA_LABEL, Buf: make([]byte, 4)}, {Type: ck.CKA_ID, Buf: make([]byte, 3)}}, []uint{unavail, 3}, ck.CKR_BUFFER_TOO_SMALL},
		{"fail invalid", []AttributeRequest{{Type: ck.CKA_MODULUS}, {Type: ck.CKA_ID}}, []uint{unavail, 3}, ck.CKR_ATTRIBUTE_TYPE_INVALID},
		{"fail sensitive beats the others", []AttributeRequest{{Type: ck.CKA_LABEL, Buf: make([]byte, 1)}, {Type: ck.CKA_MODULUS}, {Type: ck.CKA_PRIVATE_EXPONENT}}, []uint{unavail, unavail, unavail}, ck.CKR_ATTRIBUTE_SENSITIVE},
		{"fail invalid beats too small", []AttributeRequest{{Type: ck.CKA_LABEL, Buf: make([]byte, 1)}, {Type: 0x7777}}, []uint{unavail, unavail}, ck.CKR_ATTRIBUTE_TYPE_INVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := testObject().GetAttributes(tt.tmpl)
			if err != tt.wantRV {
				t.Fatalf("rv = %v, want %v", err, tt.wantRV)
			}
			for i, r := range tt.tmpl {
				if r.Len != tt.wantLen[i] {
					t.Errorf("[%d] Len = %d, want %d", i, r.Len, tt.wantLen[i])
				}
			}
		})
	}
	tmpl := []AttributeRequest{{Type: ck.CKA_LABEL, Buf: make([]byte, 8)}}
	_ = testObject().GetAttributes(tmpl)
	if string(tmpl[0].Buf[:tmpl[0].Len]) != "label" {
		t.Errorf("value = %q", tmpl[0].Buf)
	}
}

func TestMatches(t *testing.T) {
	o := testObject()
	tests := []struct {
		name string
		tmpl []ck.Attribute
		want bool
	}{
		{"ok empty", nil, true},
		{"ok class", []ck.Attribute{{Type: ck.CKA_CLASS, Value: ck.ULongBytes(ck.CKO_PRIVATE_KEY)}}, true},
		{"ok class and id", []ck.Attribute{{Type: ck.CKA_CLASS, Value: ck.ULongBytes(ck.CKO_PRIVATE_KEY)}, {Type: ck.CKA_ID, Value: []byte{1, 2, 3}}}, true},
		{"ok empty value", []ck.Attribute{{Type: ck.CKA_URL, Value: nil}}, true},
		{"fail other class", []ck.Attribute{{Type: ck.CKA_CLASS, Value: ck.ULongBytes(ck.CKO_CERTIFICATE)}}, false},
		{"fail prefix of id", []ck.Attribute{{Type: ck.CKA_ID, Value: []byte{1, 2}}}, false},
		{"fail 4-byte class", []ck.Attribute{{Type: ck.CKA_CLASS, Value: []byte{3, 0, 0, 0}}}, false},
		{"fail missing attribute", []ck.Attribute{{Type: ck.CKA_MODULUS, Value: nil}}, false},
		{"fail sensitive attribute", []ck.Attribute{{Type: ck.CKA_PRIVATE_EXPONENT, Value: nil}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := o.Matches(tt.tmpl); got != tt.want {
				t.Fatalf("matches = %v", got)
			}
		})
	}
}

func FuzzMatch(f *testing.F) {
	f.Add(uint(ck.CKA_CLASS), ck.ULongBytes(ck.CKO_PRIVATE_KEY), uint(ck.CKA_ID), []byte{1, 2, 3})
	f.Add(uint(ck.CKA_LABEL), []byte("label"), uint(ck.CKA_PRIVATE_EXPONENT), []byte{})
	f.Fuzz(func(t *testing.T, t1 uint, v1 []byte, t2 uint, v2 []byte) {
		o := testObject()
		tmpl := []ck.Attribute{{Type: t1, Value: v1}, {Type: t2, Value: v2}}
		got := o.Matches(tmpl)
		want := true
		for _, a := range tmpl {
			v, ok := o.attrs[a.Type]
			if !ok || o.sensitive[a.Type] || !bytes.Equal(v, a.Value) {
				want = false
			}
		}
		if got != want {
			t.Fatalf("matches(%v) = %v, want %v", tmpl, got, want)
		}
		// Matching is order independent and a sub-template matches too.
		rev := []ck.Attribute{tmpl[1], tmpl[0]}
		if o.Matches(rev) != got || (got && !o.Matches(tmpl[:1])) {
			t.Fatal("order or subset changes the result")
		}
	})
}
func TestOIDContents(t *testing.T) {
	for want, oid := range map[string]asn1.ObjectIdentifier{
		oidPKRSA: {1, 2, 840, 113549, 1, 1, 1}, oidPKEC: {1, 2, 840, 10045, 2, 1},
		oidCurveP256: {1, 2, 840, 10045, 3, 1, 7}, oidCurveP384: {1, 3, 132, 0, 34}, oidCurveP521: {1, 3, 132, 0, 35},
	} {
		der, _ := asn1.Marshal(oid)
		if string(der[2:]) != want {
			t.Errorf("%v: %x, want %x", oid, der[2:], want)
		}
	}
}
