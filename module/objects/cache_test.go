package objects_test

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"reflect"
	"testing"
	"time"

	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/objects"
	"github.com/csctoken/csctoken/module/objects/objectstest"
)

func TestCacheRoundTrip(t *testing.T) {
	creds := objectstest.Mixed(t)
	listed := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	data, err := objects.EncodeCache(objects.CacheData{URL: "https://a/csc/v2", User: "u", Listed: listed, Creds: creds})
	if err != nil {
		t.Fatal(err)
	}
	d, err := objects.DecodeCache(data)
	if err != nil {
		t.Fatal(err)
	}
	if d.URL != "https://a/csc/v2" || d.User != "u" || !d.Listed.Equal(listed) || !reflect.DeepEqual(d.Creds, creds) {
		t.Fatalf("decoded %s %s %v, %d credentials: not what was encoded", d.URL, d.User, d.Listed, len(d.Creds))
	}
	// Every truncation and every single-byte change is refused, never a
	// panic.
	for i := range data {
		if _, err := objects.DecodeCache(data[:i]); err == nil {
			t.Fatalf("truncated to %d bytes: accepted", i)
		}
	}
	for i := 0; i < len(data); i += 7 {
		bad := bytes.Clone(data)
		bad[i] ^= 0x20
		if _, err := objects.DecodeCache(bad); err == nil {
			t.Fatalf("byte %d changed: accepted", i)
		}
	}
}

func FuzzDecodeCache(f *testing.F) {
	data, _ := objects.EncodeCache(objects.CacheData{URL: "u", Creds: []objects.Credential{{ID: "a", KeyAlgos: []string{"x"}, Certificates: [][]byte{{1, 2}, {3}}}}})
	f.Add(data)
	f.Add([]byte(objects.CacheMagic + "\x00\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := objects.DecodeCache(b)
		if err != nil {
			return
		}
		// Whatever decodes builds objects without panicking.
		ks := objects.ParseCredentials(d.Creds, false, func(objects.Credential, error) {})
		for _, o := range objects.BuildObjects(ks, objects.BuildOptions{PrivateKeys: true}) {
			o.Attributes()
		}
	})
}

// attrTypes are the attribute types the module defines on some object.
var attrTypes = []uint{ck.CKA_CLASS, ck.CKA_TOKEN, ck.CKA_PRIVATE, ck.CKA_MODIFIABLE, ck.CKA_COPYABLE,
	ck.CKA_DESTROYABLE, ck.CKA_LABEL, ck.CKA_UNIQUE_ID, ck.CKA_CERTIFICATE_TYPE, ck.CKA_TRUSTED,
	ck.CKA_CERTIFICATE_CATEGORY, ck.CKA_CHECK_VALUE, ck.CKA_START_DATE, ck.CKA_END_DATE,
	ck.CKA_PUBLIC_KEY_INFO, ck.CKA_SUBJECT, ck.CKA_ID, ck.CKA_ISSUER, ck.CKA_SERIAL_NUMBER, ck.CKA_VALUE,
	ck.CKA_URL, ck.CKA_HASH_OF_SUBJECT_PUBLIC_KEY, ck.CKA_HASH_OF_ISSUER_PUBLIC_KEY,
	ck.CKA_JAVA_MIDP_SECURITY_DOMAIN, ck.CKA_NAME_HASH_ALGORITHM, ck.CKA_KEY_TYPE, ck.CKA_DERIVE,
	ck.CKA_LOCAL, ck.CKA_KEY_GEN_MECHANISM, ck.CKA_ALLOWED_MECHANISMS, ck.CKA_MODULUS, ck.CKA_MODULUS_BITS,
	ck.CKA_PUBLIC_EXPONENT, ck.CKA_EC_PARAMS, ck.CKA_EC_POINT, ck.CKA_ENCRYPT, ck.CKA_VERIFY,
	ck.CKA_VERIFY_RECOVER, ck.CKA_WRAP, ck.CKA_WRAP_TEMPLATE, ck.CKA_SENSITIVE, ck.CKA_DECRYPT, ck.CKA_SIGN,
	ck.CKA_SIGN_RECOVER, ck.CKA_UNWRAP, ck.CKA_EXTRACTABLE, ck.CKA_ALWAYS_SENSITIVE,
	ck.CKA_NEVER_EXTRACTABLE, ck.CKA_WRAP_WITH_TRUSTED, ck.CKA_UNWRAP_TEMPLATE, ck.CKA_ALWAYS_AUTHENTICATE,
	ck.CKA_PROFILE_ID}

// TestCacheObjects: the objects built from a decoded cache are those of the
// listing, attribute for attribute; the attributes match x509's reading of
// the certificates; searches by class, label and ID need no attributes.
func TestCacheObjects(t *testing.T) {
	creds := objectstest.Mixed(t)
	opts := objects.BuildOptions{PrivateKeys: true}
	fail := func(c objects.Credential, err error) { t.Errorf("credential %s skipped: %v", c.ID, err) }
	listedKS := objects.ParseCredentials(creds, true, func(objects.Credential, error) {})
	data, err := objects.EncodeCache(objects.CacheData{URL: "u", Creds: listedKS.Creds()})
	if err != nil {
		t.Fatal(err)
	}
	d, err := objects.DecodeCache(data)
	if err != nil {
		t.Fatal(err)
	}
	loadedKS := objects.ParseCredentials(d.Creds, false, fail)
	a, b := objects.BuildObjects(listedKS, opts), objects.BuildObjects(loadedKS, opts)
	if len(a) != len(b) || len(a) != 1+3*len(creds)-1+2 {
		t.Fatalf("%d objects listed, %d loaded", len(a), len(b))
	}
	for _, o := range b[1:] {
		if o.AttrsBuilt() {
			t.Fatalf("%s: attributes built at load", o.Key)
		}
		for _, typ := range []uint{ck.CKA_CLASS, ck.CKA_LABEL, ck.CKA_ID} {
			if !o.Matches([]ck.Attribute{{Type: typ, Value: o.Attributes()[typ]}}) {
				t.Fatalf("%s: no match on its own attribute %#x", o.Key, typ)
			}
			o.ResetAttrs()
		}
	}
	for i := range a {
		if a[i].Key != b[i].Key || a[i].Class != b[i].Class || a[i].Private != b[i].Private {
			t.Fatalf("object %d: %s vs %s", i, a[i].Key, b[i].Key)
		}
		for _, typ := range attrTypes {
			va, oka := a[i].Value(typ)
			vb, okb := b[i].Value(typ)
			wa, okwa := a[i].Attributes()[typ]
			if oka != okb || !bytes.Equal(va, vb) || oka != okwa || !bytes.Equal(va, wa) {
				t.Errorf("%s attribute %#x: listed %x (%v), loaded %x (%v), map %x", a[i].Key, typ, va, oka, vb, okb, wa)
			}
		}
		if !reflect.DeepEqual(a[i].Sensitive(), b[i].Sensitive()) {
			t.Errorf("%s: sensitive attributes differ", a[i].Key)
		}
		if a[i].Class != ck.CKO_CERTIFICATE {
			continue
		}
		attrs := b[i].Attributes()
		x, err := x509.ParseCertificate(attrs[ck.CKA_VALUE])
		if err != nil {
			t.Fatal(err)
		}
		serial, _ := asn1.Marshal(x.SerialNumber)
		for typ, want := range map[uint][]byte{
			ck.CKA_SUBJECT: x.RawSubject, ck.CKA_ISSUER: x.RawIssuer, ck.CKA_PUBLIC_KEY_INFO: x.RawSubjectPublicKeyInfo,
			ck.CKA_SERIAL_NUMBER: serial, ck.CKA_START_DATE: objects.CKDate(x.NotBefore), ck.CKA_END_DATE: objects.CKDate(x.NotAfter),
		} {
			if !bytes.Equal(attrs[typ], want) {
				t.Errorf("%s attribute %#x = %x, want %x", b[i].Key, typ, attrs[typ], want)
			}
		}
	}
	// The keys are those of the certificates.
	for i, k := range loadedKS.Keys {
		x, _ := x509.ParseCertificate(k.Cred.Certificates[0])
		switch pub := x.PublicKey.(type) {
		case *rsa.PublicKey:
			if !pub.Equal(k.RSAPub) || k.Bits != 2048 || k.SigLen != 256 {
				t.Errorf("key %d: RSA key differs", i)
			}
		default:
			if !reflect.DeepEqual(pub, k.ECPub()) && !k.ECPub().Equal(pub) {
				t.Errorf("key %d: EC key differs", i)
			}
		}
		if !reflect.DeepEqual(k.Mechs, listedKS.Keys[i].Mechs) || len(k.Mechs) == 0 {
			t.Errorf("key %d: mechanisms %v", i, k.Mechs)
		}
	}
}
