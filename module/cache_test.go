package module

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/module/ck"
)

// testCredentials: EC credentials of genCredentials plus an RSA one with
// a GeneralizedTime validity, a description and a disabled EC one.
func testCredentials(t *testing.T) []Credential {
	t.Helper()
	creds := append([]Credential(nil), genCredentials(t, 3)...)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: new(big.Int).Lsh(big.NewInt(1), 130), Subject: pkix.Name{CommonName: "RSA user"},
		NotBefore: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2055, 1, 1, 0, 0, 0, 0, time.UTC)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	creds = append(creds, Credential{ID: "rsa", Description: "An RSA key", Enabled: true, KeyLen: 2048,
		KeyAlgos: []string{"1.2.840.113549.1.1.11", "1.2.840.113549.1.1.10"}, Certificates: [][]byte{der},
		SCAL: 2, Multisign: 1, Auth: AuthBrowser})
	creds[1].Enabled = false
	creds[2].KeyAlgos = nil
	return creds
}

func TestCacheRoundTrip(t *testing.T) {
	creds := testCredentials(t)
	listed := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	data, err := encodeCache(cacheData{url: "https://a/csc/v2", user: "u", listed: listed, creds: creds})
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeCache(data)
	if err != nil {
		t.Fatal(err)
	}
	if d.url != "https://a/csc/v2" || d.user != "u" || !d.listed.Equal(listed) || !reflect.DeepEqual(d.creds, creds) {
		t.Fatalf("decoded %s %s %v, %d credentials: not what was encoded", d.url, d.user, d.listed, len(d.creds))
	}
	// Every truncation and every single-byte change is refused, never a
	// panic.
	for i := range data {
		if _, err := decodeCache(data[:i]); err == nil {
			t.Fatalf("truncated to %d bytes: accepted", i)
		}
	}
	for i := 0; i < len(data); i += 7 {
		bad := bytes.Clone(data)
		bad[i] ^= 0x20
		if _, err := decodeCache(bad); err == nil {
			t.Fatalf("byte %d changed: accepted", i)
		}
	}
}

func FuzzDecodeCache(f *testing.F) {
	data, _ := encodeCache(cacheData{url: "u", creds: []Credential{{ID: "a", KeyAlgos: []string{"x"}, Certificates: [][]byte{{1, 2}, {3}}}}})
	f.Add(data)
	f.Add([]byte(cacheMagic + "\x00\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeCache(b)
		if err != nil {
			return
		}
		// Whatever decodes builds objects without panicking.
		ks := parseCredentials(d.creds, false, func(Credential, error) {})
		for _, o := range buildObjects(ks, buildOptions{privateKeys: true}) {
			o.attributes()
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

// TestCacheObjects: the objects loaded from the cache are those of the
// listing, attribute for attribute; the attributes match x509's reading of
// the certificates; searches by class, label and ID need no attributes.
func TestCacheObjects(t *testing.T) {
	creds := testCredentials(t)
	dir := t.TempDir()
	listed := benchToken(dir)
	ks := listed.parse(creds, true)
	listed.objs = listed.build(ks)
	listed.saveCache(ks.creds())
	loaded := benchToken(dir)
	loaded.loadCache()
	a, b := listed.objects().list, loaded.objects().list
	if len(a) != len(b) || len(a) != 1+3*len(creds)-1+2 {
		t.Fatalf("%d objects listed, %d loaded", len(a), len(b))
	}
	for _, o := range b[1:] {
		if o.attrs != nil {
			t.Fatalf("%s: attributes built at load", o.key)
		}
		for _, typ := range []uint{ck.CKA_CLASS, ck.CKA_LABEL, ck.CKA_ID} {
			if !o.matches([]ck.Attribute{{Type: typ, Value: o.attributes()[typ]}}) {
				t.Fatalf("%s: no match on its own attribute %#x", o.key, typ)
			}
			o.attrs, o.once = nil, syncOnce()
		}
	}
	for i := range a {
		if a[i].key != b[i].key || a[i].class != b[i].class || a[i].private != b[i].private {
			t.Fatalf("object %d: %s vs %s", i, a[i].key, b[i].key)
		}
		for _, typ := range attrTypes {
			va, oka := a[i].value(typ)
			vb, okb := b[i].value(typ)
			wa, okwa := a[i].attributes()[typ]
			if oka != okb || !bytes.Equal(va, vb) || oka != okwa || !bytes.Equal(va, wa) {
				t.Errorf("%s attribute %#x: listed %x (%v), loaded %x (%v), map %x", a[i].key, typ, va, oka, vb, okb, wa)
			}
		}
		if !reflect.DeepEqual(a[i].sensitive, b[i].sensitive) {
			t.Errorf("%s: sensitive attributes differ", a[i].key)
		}
		if a[i].class != ck.CKO_CERTIFICATE {
			continue
		}
		attrs := b[i].attributes()
		x, err := x509.ParseCertificate(attrs[ck.CKA_VALUE])
		if err != nil {
			t.Fatal(err)
		}
		serial, _ := asn1Marshal(x.SerialNumber)
		for typ, want := range map[uint][]byte{
			ck.CKA_SUBJECT: x.RawSubject, ck.CKA_ISSUER: x.RawIssuer, ck.CKA_PUBLIC_KEY_INFO: x.RawSubjectPublicKeyInfo,
			ck.CKA_SERIAL_NUMBER: serial, ck.CKA_START_DATE: ckDate(x.NotBefore), ck.CKA_END_DATE: ckDate(x.NotAfter),
		} {
			if !bytes.Equal(attrs[typ], want) {
				t.Errorf("%s attribute %#x = %x, want %x", b[i].key, typ, attrs[typ], want)
			}
		}
	}
	// The keys are those of the certificates.
	for i, k := range loaded.objects().keys {
		x, _ := x509.ParseCertificate(k.cred.Certificates[0])
		switch pub := x.PublicKey.(type) {
		case *rsa.PublicKey:
			if !pub.Equal(k.rsaPub) || k.bits != 2048 || k.sigLen != 256 {
				t.Errorf("key %d: RSA key differs", i)
			}
		default:
			if !reflect.DeepEqual(pub, k.ecPub) && !k.ecPub.Equal(pub) {
				t.Errorf("key %d: EC key differs", i)
			}
		}
		if !reflect.DeepEqual(k.mechs, listed.objects().keys[i].mechs) || len(k.mechs) == 0 {
			t.Errorf("key %d: mechanisms %v", i, k.mechs)
		}
	}
}

// TestCacheIgnored: a corrupt, foreign, other-version or old JSON cache is
// ignored with a log line; the token shows no credential, nothing panics.
func TestCacheIgnored(t *testing.T) {
	creds := testCredentials(t)
	for _, tc := range []struct {
		name, want string
		mangle     func(t *token, data []byte)
	}{
		{"flipped byte", "checksum", func(tk *token, data []byte) {
			data[len(data)/2] ^= 1
			os.WriteFile(tk.cachePath, data, 0o600)
		}},
		{"truncated", "checksum", func(tk *token, data []byte) { os.WriteFile(tk.cachePath, data[:len(data)-9], 0o600) }},
		{"other version", "version", func(tk *token, data []byte) {
			data[len(cacheMagic)+1]++
			os.WriteFile(tk.cachePath, data, 0o600)
		}},
		{"not a cache", "not a cache", func(tk *token, data []byte) { os.WriteFile(tk.cachePath, []byte("{}"), 0o600) }},
		{"other user", "another service", func(tk *token, _ []byte) {
			d, _ := encodeCache(cacheData{url: tk.cfg.URL, user: "mallory", creds: creds})
			os.WriteFile(tk.cachePath, d, 0o600)
		}},
		{"old JSON cache", "older version", func(tk *token, _ []byte) {
			os.Remove(tk.cachePath)
			os.WriteFile(tk.oldCachePath(), []byte(`{"version":1}`), 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tk := benchToken(dir)
			tk.saveCache(creds)
			data, err := os.ReadFile(tk.cachePath)
			if err != nil {
				t.Fatal(err)
			}
			tc.mangle(tk, data)
			var log strings.Builder
			tk2 := benchToken(dir)
			tk2.log = slog.New(slog.NewTextHandler(&log, nil))
			tk2.loadCache()
			if n := len(tk2.objects().list); n != 1 || !tk2.listedAt.IsZero() {
				t.Fatalf("%d objects from an ignored cache", n)
			}
			if !strings.Contains(log.String(), tc.want) {
				t.Fatalf("log %q, want %q", log.String(), tc.want)
			}
			// The next listing replaces it (and the old JSON file).
			tk2.saveCache(creds)
			tk3 := benchToken(dir)
			tk3.loadCache()
			if n := len(tk3.objects().list); n < len(creds) || fileExists(tk3.oldCachePath()) {
				t.Fatalf("after a new save: %d objects, old cache %v", n, fileExists(tk3.oldCachePath()))
			}
			if files, _ := filepath.Glob(filepath.Join(dir, ".tmp-*")); len(files) != 0 {
				t.Fatalf("temporary files left: %v", files)
			}
		})
	}
}

func syncOnce() sync.Once { return sync.Once{} }

func asn1Marshal(v any) ([]byte, error) { return asn1.Marshal(v) }

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
