package module_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"math/big"
	"testing"

	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/ck"
)

func TestObjectsAndVisibility(t *testing.T) {
	e := newEnv(t, nil)
	h := e.open(0, false)
	e.login(h)
	e.must(e.m.Logout(h))

	// Before login: profile, 3 user certificates, 1 CA certificate, 3
	// public keys; no private key.
	if n := len(e.find(h)); n != 8 {
		t.Fatalf("public objects = %d, want 8", n)
	}
	if n := len(e.find(h, class(ck.CKO_PRIVATE_KEY))); n != 0 {
		t.Fatalf("private keys visible before login: %d", n)
	}
	prof := e.find(h, class(ck.CKO_PROFILE))
	if len(prof) != 1 || ck.ULong(e.attr(h, prof[0], ck.CKA_PROFILE_ID)) != ck.CKP_PUBLIC_CERTIFICATES_TOKEN {
		t.Fatal("profile object")
	}
	e.login(h)
	if n := len(e.find(h, class(ck.CKO_PRIVATE_KEY))); n != 3 {
		t.Fatalf("private keys after login: %d", n)
	}

	// One CKA_ID ties certificate, public and private key; it is the SHA-1
	// of the subjectPublicKey bits.
	for _, id := range []string{"rsa", "ec", "ec384"} {
		cert := e.key(h, ck.CKO_CERTIFICATE, id)
		pub := e.key(h, ck.CKO_PUBLIC_KEY, id)
		priv := e.key(h, ck.CKO_PRIVATE_KEY, id)
		cid := e.attr(h, cert, ck.CKA_ID)
		if !bytes.Equal(cid, e.attr(h, pub, ck.CKA_ID)) || !bytes.Equal(cid, e.attr(h, priv, ck.CKA_ID)) {
			t.Errorf("%s: CKA_ID differs between objects", id)
		}
		x, err := x509.ParseCertificate(e.attr(h, cert, ck.CKA_VALUE))
		e.must(err)
		var spki struct {
			Alg asn1.RawValue
			Key asn1.BitString
		}
		_, _ = asn1.Unmarshal(x.RawSubjectPublicKeyInfo, &spki)
		want := sha1.Sum(spki.Key.Bytes)
		if !bytes.Equal(cid, want[:]) {
			t.Errorf("%s: CKA_ID is not SHA-1(subjectPublicKey)", id)
		}
		// Private keys are private objects in pin mode; certificates not.
		if e.attr(h, priv, ck.CKA_PRIVATE)[0] != 1 || e.attr(h, cert, ck.CKA_PRIVATE)[0] != 0 || e.attr(h, pub, ck.CKA_PRIVATE)[0] != 0 {
			t.Errorf("%s: CKA_PRIVATE", id)
		}
	}
	// The CA certificate: authority category, its own CKA_ID.
	cas := e.find(h, class(ck.CKO_CERTIFICATE), ck.Attribute{Type: ck.CKA_CERTIFICATE_CATEGORY, Value: ck.ULongBytes(ck.CK_CERTIFICATE_CATEGORY_AUTHORITY)})
	if len(cas) != 1 {
		t.Fatalf("%d CA certificates", len(cas))
	}
	caID := e.attr(h, cas[0], ck.CKA_ID)
	if n := len(e.find(h, ck.Attribute{Type: ck.CKA_ID, Value: caID})); n != 1 {
		t.Errorf("CA CKA_ID shared with %d objects", n)
	}
	// Handles are stable across refreshes.
	before := e.find(h)
	e.login2(h)
	after := e.find(h)
	if len(before) != len(after) {
		t.Fatal("object count changed")
	}
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("handles changed: %v vs %v", before, after)
		}
	}
}

// login2 logs out and in again (a fresh listing).
func (e *env) login2(h module.SessionHandle) {
	e.t.Helper()
	e.must(e.m.Logout(h))
	e.login(h)
}

func TestAttributes(t *testing.T) {
	e := newEnv(t, nil)
	h := e.open(0, false)
	e.login(h)
	rsaCred := e.fake().Cred("rsa")
	ecCred := e.fake().Cred("ec")
	rsaPub := rsaCred.Key.Public().(*rsa.PublicKey)
	ecPub := ecCred.Key.Public().(*ecdsa.PublicKey)

	cert := e.key(h, ck.CKO_CERTIFICATE, "rsa")
	x, _ := x509.ParseCertificate(rsaCred.Certificates[0])
	serial, _ := asn1.Marshal(x.SerialNumber)
	ecPoint, _ := asn1.Marshal(ecPointBytes(ecPub))
	checks := []struct {
		name string
		obj  module.ObjectHandle
		typ  uint
		want []byte
	}{
		{"cert value", cert, ck.CKA_VALUE, rsaCred.Certificates[0]},
		{"cert subject", cert, ck.CKA_SUBJECT, x.RawSubject},
		{"cert issuer", cert, ck.CKA_ISSUER, x.RawIssuer},
		{"cert serial", cert, ck.CKA_SERIAL_NUMBER, serial},
		{"cert type", cert, ck.CKA_CERTIFICATE_TYPE, ck.ULongBytes(ck.CKC_X_509)},
		{"cert category", cert, ck.CKA_CERTIFICATE_CATEGORY, ck.ULongBytes(ck.CK_CERTIFICATE_CATEGORY_TOKEN_USER)},
		{"cert trusted", cert, ck.CKA_TRUSTED, ck.Bool(false)},
		{"cert start", cert, ck.CKA_START_DATE, []byte("20250102")},
		{"cert end", cert, ck.CKA_END_DATE, []byte("20350102")},
		{"cert label", cert, ck.CKA_LABEL, []byte("Key rsa")},
		{"cert token", cert, ck.CKA_TOKEN, ck.Bool(true)},
		{"rsa pub modulus", e.key(h, ck.CKO_PUBLIC_KEY, "rsa"), ck.CKA_MODULUS, rsaPub.N.Bytes()},
		{"rsa pub exponent", e.key(h, ck.CKO_PUBLIC_KEY, "rsa"), ck.CKA_PUBLIC_EXPONENT, big.NewInt(int64(rsaPub.E)).Bytes()},
		{"rsa pub bits", e.key(h, ck.CKO_PUBLIC_KEY, "rsa"), ck.CKA_MODULUS_BITS, ck.ULongBytes(2048)},
		{"rsa pub verify", e.key(h, ck.CKO_PUBLIC_KEY, "rsa"), ck.CKA_VERIFY, ck.Bool(true)},
		{"rsa priv modulus", e.key(h, ck.CKO_PRIVATE_KEY, "rsa"), ck.CKA_MODULUS, rsaPub.N.Bytes()},
		{"rsa priv sign", e.key(h, ck.CKO_PRIVATE_KEY, "rsa"), ck.CKA_SIGN, ck.Bool(true)},
		{"rsa priv sensitive", e.key(h, ck.CKO_PRIVATE_KEY, "rsa"), ck.CKA_SENSITIVE, ck.Bool(true)},
		{"rsa priv extractable", e.key(h, ck.CKO_PRIVATE_KEY, "rsa"), ck.CKA_EXTRACTABLE, ck.Bool(false)},
		{"rsa priv never extractable", e.key(h, ck.CKO_PRIVATE_KEY, "rsa"), ck.CKA_NEVER_EXTRACTABLE, ck.Bool(true)},
		{"rsa priv always sensitive", e.key(h, ck.CKO_PRIVATE_KEY, "rsa"), ck.CKA_ALWAYS_SENSITIVE, ck.Bool(true)},
		{"rsa priv always authenticate", e.key(h, ck.CKO_PRIVATE_KEY, "rsa"), ck.CKA_ALWAYS_AUTHENTICATE, ck.Bool(false)},
		{"rsa priv key type", e.key(h, ck.CKO_PRIVATE_KEY, "rsa"), ck.CKA_KEY_TYPE, ck.ULongBytes(ck.CKK_RSA)},
		{"ec pub params", e.key(h, ck.CKO_PUBLIC_KEY, "ec"), ck.CKA_EC_PARAMS, []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}},
		{"ec pub point", e.key(h, ck.CKO_PUBLIC_KEY, "ec"), ck.CKA_EC_POINT, ecPoint},
		{"ec priv key type", e.key(h, ck.CKO_PRIVATE_KEY, "ec"), ck.CKA_KEY_TYPE, ck.ULongBytes(ck.CKK_EC)},
		{"ec priv allowed mechanisms", e.key(h, ck.CKO_PRIVATE_KEY, "ec"), ck.CKA_ALLOWED_MECHANISMS,
			append(append(append(ck.ULongBytes(ck.CKM_ECDSA), ck.ULongBytes(ck.CKM_ECDSA_SHA256)...), ck.ULongBytes(ck.CKM_ECDSA_SHA384)...), ck.ULongBytes(ck.CKM_ECDSA_SHA512)...)},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if got := e.attr(h, c.obj, c.typ); !bytes.Equal(got, c.want) {
				t.Fatalf("got %x, want %x", got, c.want)
			}
		})
	}

	priv := e.key(h, ck.CKO_PRIVATE_KEY, "rsa")
	// Per-attribute semantics through the public API.
	q := []module.AttributeRequest{
		{Type: ck.CKA_LABEL, Buf: make([]byte, 64)},
		{Type: ck.CKA_PRIVATE_EXPONENT},
		{Type: ck.CKA_EC_POINT},
		{Type: ck.CKA_MODULUS, Buf: make([]byte, 10)},
	}
	e.wantRV(e.m.GetAttributeValue(h, priv, q), ck.CKR_ATTRIBUTE_SENSITIVE)
	if q[0].Len != 7 || q[1].Len != ck.UnavailableInformation || q[2].Len != ck.UnavailableInformation || q[3].Len != ck.UnavailableInformation {
		t.Errorf("lengths %d %d %d %d", q[0].Len, q[1].Len, q[2].Len, q[3].Len)
	}
	e.wantRV(e.m.GetAttributeValue(h, priv, []module.AttributeRequest{{Type: 0x12345}}), ck.CKR_ATTRIBUTE_TYPE_INVALID)
	e.wantRV(e.m.GetAttributeValue(h, priv, []module.AttributeRequest{{Type: ck.CKA_MODULUS, Buf: make([]byte, 1)}}), ck.CKR_BUFFER_TOO_SMALL)
	e.wantRV(e.m.GetAttributeValue(h, 424242, nil), ck.CKR_OBJECT_HANDLE_INVALID)
	ecPriv := e.key(h, ck.CKO_PRIVATE_KEY, "ec")
	e.wantRV(e.m.GetAttributeValue(h, ecPriv, []module.AttributeRequest{{Type: ck.CKA_VALUE}}), ck.CKR_ATTRIBUTE_SENSITIVE)
	size, err := e.m.GetObjectSize(h, cert)
	e.must(err)
	if size < uint(len(rsaCred.Certificates[0])) {
		t.Errorf("object size %d", size)
	}

	// Every standard attribute of each class is answered.
	classAttrs := map[uint][]uint{
		ck.CKO_CERTIFICATE: {ck.CKA_CLASS, ck.CKA_TOKEN, ck.CKA_PRIVATE, ck.CKA_MODIFIABLE, ck.CKA_LABEL, ck.CKA_COPYABLE, ck.CKA_DESTROYABLE,
			ck.CKA_UNIQUE_ID, ck.CKA_CERTIFICATE_TYPE, ck.CKA_TRUSTED, ck.CKA_CERTIFICATE_CATEGORY, ck.CKA_CHECK_VALUE, ck.CKA_START_DATE,
			ck.CKA_END_DATE, ck.CKA_PUBLIC_KEY_INFO, ck.CKA_SUBJECT, ck.CKA_ID, ck.CKA_ISSUER, ck.CKA_SERIAL_NUMBER, ck.CKA_VALUE, ck.CKA_URL,
			ck.CKA_HASH_OF_SUBJECT_PUBLIC_KEY, ck.CKA_HASH_OF_ISSUER_PUBLIC_KEY, ck.CKA_JAVA_MIDP_SECURITY_DOMAIN, ck.CKA_NAME_HASH_ALGORITHM},
		ck.CKO_PUBLIC_KEY: {ck.CKA_CLASS, ck.CKA_TOKEN, ck.CKA_PRIVATE, ck.CKA_MODIFIABLE, ck.CKA_LABEL, ck.CKA_KEY_TYPE, ck.CKA_ID,
			ck.CKA_START_DATE, ck.CKA_END_DATE, ck.CKA_DERIVE, ck.CKA_LOCAL, ck.CKA_KEY_GEN_MECHANISM, ck.CKA_ALLOWED_MECHANISMS,
			ck.CKA_SUBJECT, ck.CKA_ENCRYPT, ck.CKA_VERIFY, ck.CKA_VERIFY_RECOVER, ck.CKA_WRAP, ck.CKA_TRUSTED, ck.CKA_WRAP_TEMPLATE,
			ck.CKA_PUBLIC_KEY_INFO, ck.CKA_MODULUS, ck.CKA_MODULUS_BITS, ck.CKA_PUBLIC_EXPONENT},
		ck.CKO_PRIVATE_KEY: {ck.CKA_CLASS, ck.CKA_TOKEN, ck.CKA_PRIVATE, ck.CKA_MODIFIABLE, ck.CKA_LABEL, ck.CKA_KEY_TYPE, ck.CKA_ID,
			ck.CKA_START_DATE, ck.CKA_END_DATE, ck.CKA_DERIVE, ck.CKA_LOCAL, ck.CKA_KEY_GEN_MECHANISM, ck.CKA_ALLOWED_MECHANISMS,
			ck.CKA_SUBJECT, ck.CKA_SENSITIVE, ck.CKA_DECRYPT, ck.CKA_SIGN, ck.CKA_SIGN_RECOVER, ck.CKA_UNWRAP, ck.CKA_EXTRACTABLE,
			ck.CKA_ALWAYS_SENSITIVE, ck.CKA_NEVER_EXTRACTABLE, ck.CKA_WRAP_WITH_TRUSTED, ck.CKA_UNWRAP_TEMPLATE, ck.CKA_ALWAYS_AUTHENTICATE,
			ck.CKA_PUBLIC_KEY_INFO, ck.CKA_MODULUS, ck.CKA_PUBLIC_EXPONENT},
	}
	for c, attrs := range classAttrs {
		o := e.key(h, c, "rsa")
		q := make([]module.AttributeRequest, len(attrs))
		for i, a := range attrs {
			q[i].Type = a
		}
		if err := e.m.GetAttributeValue(h, o, q); err != nil {
			t.Errorf("class %d: %v", c, err)
		}
	}
}

// ecPointBytes returns the uncompressed point of an EC public key.
func ecPointBytes(pub *ecdsa.PublicKey) []byte {
	b, err := pub.Bytes()
	if err != nil {
		panic(err)
	}
	return b
}

func TestFindTemplates(t *testing.T) {
	e := newEnv(t, nil)
	h := e.open(0, true)
	e.login(h)
	rsaID := e.attr(h, e.key(h, ck.CKO_PRIVATE_KEY, "rsa"), ck.CKA_ID)
	tests := []struct {
		name string
		tmpl []ck.Attribute
		want int
	}{
		{"ok all", nil, 11},
		{"ok certificates", []ck.Attribute{class(ck.CKO_CERTIFICATE)}, 4},
		{"ok by id", []ck.Attribute{{Type: ck.CKA_ID, Value: rsaID}}, 3},
		{"ok by id and class", []ck.Attribute{{Type: ck.CKA_ID, Value: rsaID}, class(ck.CKO_PRIVATE_KEY)}, 1},
		{"ok signing keys", []ck.Attribute{{Type: ck.CKA_SIGN, Value: ck.Bool(true)}}, 3},
		{"ok ec keys", []ck.Attribute{{Type: ck.CKA_KEY_TYPE, Value: ck.ULongBytes(ck.CKK_EC)}}, 4},
		{"ok token objects", []ck.Attribute{{Type: ck.CKA_TOKEN, Value: ck.Bool(true)}}, 11},
		{"fail session objects", []ck.Attribute{{Type: ck.CKA_TOKEN, Value: ck.Bool(false)}}, 0},
		{"fail secret keys", []ck.Attribute{class(ck.CKO_SECRET_KEY)}, 0},
		{"fail unknown label", []ck.Attribute{label("nope")}, 0},
		{"fail sensitive attribute", []ck.Attribute{{Type: ck.CKA_PRIVATE_EXPONENT, Value: nil}}, 0},
		{"fail unknown attribute", []ck.Attribute{{Type: 0x7fff0000, Value: nil}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := len(e.find(h, tt.tmpl...)); got != tt.want {
				t.Fatalf("found %d, want %d", got, tt.want)
			}
		})
	}
	// Operation rules.
	_, err := e.m.FindObjects(h, 1)
	e.wantRV(err, ck.CKR_OPERATION_NOT_INITIALIZED)
	e.wantRV(e.m.FindObjectsFinal(h), ck.CKR_OPERATION_NOT_INITIALIZED)
	e.must(e.m.FindObjectsInit(h, nil))
	e.wantRV(e.m.FindObjectsInit(h, nil), ck.CKR_OPERATION_ACTIVE)
	got, err := e.m.FindObjects(h, 0)
	if err != nil || len(got) != 0 {
		t.Fatalf("max 0: %v %v", got, err)
	}
	got, _ = e.m.FindObjects(h, 100)
	if len(got) != 11 {
		t.Fatalf("got %d", len(got))
	}
	got, _ = e.m.FindObjects(h, 100)
	if len(got) != 0 {
		t.Fatal("results repeated")
	}
	// A search in one session does not disturb another.
	h2 := e.open(0, false)
	e.must(e.m.FindObjectsInit(h2, []ck.Attribute{class(ck.CKO_PROFILE)}))
	e.must(e.m.FindObjectsFinal(h))
	got, _ = e.m.FindObjects(h2, 5)
	if len(got) != 1 {
		t.Fatalf("other session found %d", len(got))
	}
}
