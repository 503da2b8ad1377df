package module

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/csctoken/csctoken/module/ck"
)

// ObjectHandle is a CK_OBJECT_HANDLE.
type ObjectHandle uint

// object is one token object. Objects are immutable once built; a refresh
// builds new ones (keeping handles by identity key). Their attributes are
// computed at the first access (attributes), so that a token of many
// credentials loads fast; CKA_CLASS, CKA_LABEL and CKA_ID, what searches
// use most, are known from the start.
type object struct {
	handle     ObjectHandle
	key        string // identity across refreshes
	class      uint
	private    bool
	alwaysAuth bool     // CKA_ALWAYS_AUTHENTICATE (private keys)
	ki         *keyInfo // keys and user certificates: the credential's key
	ca         *caInfo  // CA certificates

	once  sync.Once
	attrs map[uint][]byte // use attributes(); built at the first need
	// sensitive lists attributes the class defines but never reveals.
	sensitive map[uint]bool
}

// objectSet is one immutable snapshot of a token's objects.
type objectSet struct {
	list     []*object
	byHandle map[ObjectHandle]*object
	keys     []*keyInfo
}

func (s *objectSet) get(h ObjectHandle) *object {
	if s == nil {
		return nil
	}
	return s.byHandle[h]
}

// ckDate encodes a CK_DATE ("YYYYMMDD").
func ckDate(t time.Time) []byte { return []byte(t.UTC().Format("20060102")) }

func uniqueID(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return []byte(hex.EncodeToString(sum[:16]))
}

func ulong(v uint) []byte { return ck.ULongBytes(v) }

func ulongs(vs []uint) []byte {
	var b []byte
	for _, v := range vs {
		b = ck.AppendULong(b, v)
	}
	return b
}

// storageAttrs are the attributes common to every object (CKO_* storage).
func storageAttrs(class uint, private bool, label []byte, key string) map[uint][]byte {
	return map[uint][]byte{
		ck.CKA_CLASS:       classValue(class),
		ck.CKA_TOKEN:       ckTrue,
		ck.CKA_PRIVATE:     ck.Bool(private),
		ck.CKA_MODIFIABLE:  ckFalse,
		ck.CKA_COPYABLE:    ckFalse,
		ck.CKA_DESTROYABLE: ckFalse,
		ck.CKA_LABEL:       label,
		ck.CKA_UNIQUE_ID:   uniqueID(key),
	}
}

// Shared attribute values (never written: getAttributes copies out).
var (
	ckTrue       = ck.Bool(true)
	ckFalse      = ck.Bool(false)
	classCert    = ulong(ck.CKO_CERTIFICATE)
	classPub     = ulong(ck.CKO_PUBLIC_KEY)
	classPriv    = ulong(ck.CKO_PRIVATE_KEY)
	classProfile = ulong(ck.CKO_PROFILE)
)

func classValue(c uint) []byte {
	switch c {
	case ck.CKO_CERTIFICATE:
		return classCert
	case ck.CKO_PUBLIC_KEY:
		return classPub
	case ck.CKO_PRIVATE_KEY:
		return classPriv
	case ck.CKO_PROFILE:
		return classProfile
	}
	return ulong(c)
}

// attributes returns the object's attributes, building them at the first
// call.
func (o *object) attributes() map[uint][]byte {
	o.once.Do(func() {
		if o.attrs == nil {
			o.attrs = o.buildAttrs()
		}
	})
	return o.attrs
}

// value returns one attribute, without building the others for CKA_CLASS,
// CKA_LABEL and CKA_ID.
func (o *object) value(t uint) ([]byte, bool) {
	if o.ki != nil || o.ca != nil {
		switch t {
		case ck.CKA_CLASS:
			return classValue(o.class), true
		case ck.CKA_LABEL:
			if o.ca != nil {
				return o.ca.label, true
			}
			return o.ki.labelB, true
		case ck.CKA_ID:
			if o.ca != nil {
				return o.ca.id, true
			}
			return o.ki.id, true
		}
	}
	v, ok := o.attributes()[t]
	return v, ok
}

func (o *object) buildAttrs() map[uint][]byte {
	switch o.class {
	case ck.CKO_CERTIFICATE:
		if o.ca != nil {
			return certAttrs(o.key, &o.ca.cf, o.ca.id, o.ca.label, ck.CK_CERTIFICATE_CATEGORY_AUTHORITY)
		}
		return certAttrs(o.key, &o.ki.cf, o.ki.id, o.ki.labelB, ck.CK_CERTIFICATE_CATEGORY_TOKEN_USER)
	case ck.CKO_PUBLIC_KEY:
		return publicKeyAttrs(o.key, o.ki)
	case ck.CKO_PRIVATE_KEY:
		return privateKeyAttrs(o.key, o.ki, o.private, o.alwaysAuth)
	}
	return map[uint][]byte{}
}

func certAttrs(key string, cert *certFields, id, label []byte, category uint) map[uint][]byte {
	check := sha1.Sum(cert.raw)
	spkiID, _ := keyID(cert.spki)
	start, end := cert.dates()
	a := storageAttrs(ck.CKO_CERTIFICATE, false, label, key)
	for t, v := range map[uint][]byte{
		ck.CKA_CERTIFICATE_TYPE:           ulong(ck.CKC_X_509),
		ck.CKA_TRUSTED:                    ckFalse,
		ck.CKA_CERTIFICATE_CATEGORY:       ulong(category),
		ck.CKA_CHECK_VALUE:                check[:3],
		ck.CKA_START_DATE:                 start,
		ck.CKA_END_DATE:                   end,
		ck.CKA_PUBLIC_KEY_INFO:            cert.spki,
		ck.CKA_SUBJECT:                    cert.subject,
		ck.CKA_ID:                         id,
		ck.CKA_ISSUER:                     cert.issuer,
		ck.CKA_SERIAL_NUMBER:              cert.serial,
		ck.CKA_VALUE:                      cert.raw,
		ck.CKA_URL:                        {},
		ck.CKA_HASH_OF_SUBJECT_PUBLIC_KEY: spkiID,
		ck.CKA_HASH_OF_ISSUER_PUBLIC_KEY:  {},
		ck.CKA_JAVA_MIDP_SECURITY_DOMAIN:  ulong(ck.CK_SECURITY_DOMAIN_UNSPECIFIED),
		ck.CKA_NAME_HASH_ALGORITHM:        ulong(ck.CKM_SHA_1),
	} {
		a[t] = v
	}
	return a
}

// certObject fills dst with a credential's certificate object.
func certObject(dst *object, key string, k *keyInfo) *object {
	*dst = object{key: key, class: ck.CKO_CERTIFICATE, ki: k}
	return dst
}

// caObject returns a CA certificate object.
func caObject(ca *caInfo) *object {
	return &object{key: ca.key, class: ck.CKO_CERTIFICATE, ca: ca}
}

// keyCommonAttrs are the CKO_PUBLIC_KEY / CKO_PRIVATE_KEY attributes shared
// by both classes.
func keyCommonAttrs(a map[uint][]byte, k *keyInfo) {
	a[ck.CKA_KEY_TYPE] = ulong(k.keyType)
	a[ck.CKA_ID] = k.id
	a[ck.CKA_START_DATE] = []byte{}
	a[ck.CKA_END_DATE] = []byte{}
	a[ck.CKA_DERIVE] = ckFalse
	a[ck.CKA_LOCAL] = ckFalse
	a[ck.CKA_KEY_GEN_MECHANISM] = ulong(ck.UnavailableInformation)
	a[ck.CKA_ALLOWED_MECHANISMS] = ulongs(k.mechs)
	a[ck.CKA_SUBJECT] = k.cf.subject
	a[ck.CKA_PUBLIC_KEY_INFO] = k.cf.spki
	switch k.keyType {
	case ck.CKK_RSA:
		a[ck.CKA_MODULUS] = k.rsaPub.N.Bytes()
		a[ck.CKA_MODULUS_BITS] = ulong(uint(k.bits))
		a[ck.CKA_PUBLIC_EXPONENT] = big.NewInt(int64(k.rsaPub.E)).Bytes()
	case ck.CKK_EC:
		params, point, err := ecParamsAndPoint(k.cf.spki)
		if err == nil {
			a[ck.CKA_EC_PARAMS] = params
			a[ck.CKA_EC_POINT] = point
		}
	}
}

func publicKeyAttrs(key string, k *keyInfo) map[uint][]byte {
	a := storageAttrs(ck.CKO_PUBLIC_KEY, false, k.labelB, key)
	keyCommonAttrs(a, k)
	for t, v := range map[uint][]byte{
		ck.CKA_ENCRYPT:        ckFalse,
		ck.CKA_VERIFY:         ckTrue,
		ck.CKA_VERIFY_RECOVER: ckFalse,
		ck.CKA_WRAP:           ckFalse,
		ck.CKA_TRUSTED:        ckFalse,
		ck.CKA_WRAP_TEMPLATE:  {},
	} {
		a[t] = v
	}
	return a
}

// publicKeyObject fills dst with a public key object.
func publicKeyObject(dst *object, key string, k *keyInfo) *object {
	*dst = object{key: key, class: ck.CKO_PUBLIC_KEY, ki: k}
	return dst
}

func privateKeyAttrs(key string, k *keyInfo, private, alwaysAuth bool) map[uint][]byte {
	a := storageAttrs(ck.CKO_PRIVATE_KEY, private, k.labelB, key)
	keyCommonAttrs(a, k)
	for t, v := range map[uint][]byte{
		ck.CKA_SENSITIVE:           ckTrue,
		ck.CKA_DECRYPT:             ckFalse,
		ck.CKA_SIGN:                ckTrue,
		ck.CKA_SIGN_RECOVER:        ckFalse,
		ck.CKA_UNWRAP:              ckFalse,
		ck.CKA_EXTRACTABLE:         ckFalse,
		ck.CKA_ALWAYS_SENSITIVE:    ckTrue,
		ck.CKA_NEVER_EXTRACTABLE:   ckTrue,
		ck.CKA_WRAP_WITH_TRUSTED:   ckFalse,
		ck.CKA_UNWRAP_TEMPLATE:     {},
		ck.CKA_ALWAYS_AUTHENTICATE: ck.Bool(alwaysAuth),
	} {
		a[t] = v
	}
	return a
}

// The private key attributes that exist but are never revealed, per key
// type (shared, read-only).
var (
	rsaSensitive = map[uint]bool{ck.CKA_PRIVATE_EXPONENT: true, ck.CKA_PRIME_1: true, ck.CKA_PRIME_2: true,
		ck.CKA_EXPONENT_1: true, ck.CKA_EXPONENT_2: true, ck.CKA_COEFFICIENT: true}
	ecSensitive = map[uint]bool{ck.CKA_VALUE: true}
)

// privateKeyObject fills dst with a private key object.
func privateKeyObject(dst *object, key string, k *keyInfo, private, alwaysAuth bool) *object {
	*dst = object{key: key, class: ck.CKO_PRIVATE_KEY, private: private, alwaysAuth: alwaysAuth, ki: k}
	switch k.keyType {
	case ck.CKK_RSA:
		dst.sensitive = rsaSensitive
	case ck.CKK_EC:
		dst.sensitive = ecSensitive
	}
	return dst
}

func profileObject() *object {
	a := storageAttrs(ck.CKO_PROFILE, false, []byte{}, "profile")
	a[ck.CKA_PROFILE_ID] = ulong(ck.CKP_PUBLIC_CERTIFICATES_TOKEN)
	return &object{key: "profile", class: ck.CKO_PROFILE, attrs: a}
}

// buildOptions say how a token presents its keys.
type buildOptions struct {
	privateKeys bool // CKA_PRIVATE on private keys (pin mode)
	alwaysAuth  bool // CKA_ALWAYS_AUTHENTICATE
}

// caInfo is one CA certificate of the credentials' chains.
type caInfo struct {
	key   string // "ca:" + hex SHA-256 of the DER
	cf    certFields
	id    []byte
	label []byte
}

// keySet is the parsed credentials of a listing: what building objects
// needs, computed without the token's lock.
type keySet struct {
	keys []*keyInfo
	cas  []*caInfo
}

// creds returns the usable credentials (what the cache keeps).
func (ks *keySet) creds() []Credential {
	out := make([]Credential, len(ks.keys))
	for i, k := range ks.keys {
		out[i] = k.cred
	}
	return out
}

// parseCredentials reads the credentials' certificates. Credentials that
// cannot be used (no or bad certificate) are reported through skip and
// left out; validate runs x509.ParseCertificate on every certificate
// (fresh listings).
func parseCredentials(creds []Credential, validate bool, skip func(Credential, error)) *keySet {
	ks := &keySet{keys: make([]*keyInfo, 0, len(creds))}
	mc := &mechCache{}
	seenCA := map[string]bool{}
	for _, c := range creds {
		k, err := newKeyInfo(c, validate, mc)
		if err != nil {
			skip(c, err)
			continue
		}
		ks.keys = append(ks.keys, k)
		for _, der := range c.Certificates[1:] {
			if seenCA[string(der)] {
				continue
			}
			ca, err := newCAInfo(der)
			if err != nil {
				skip(c, fmt.Errorf("chain certificate: %w", err))
				continue
			}
			seenCA[string(der)] = true
			if ca != nil {
				ks.cas = append(ks.cas, ca)
			}
		}
	}
	return ks
}

// newCAInfo reads a chain certificate; nil without error for one whose
// public key cannot be read (left out, as before).
func newCAInfo(der []byte) (*caInfo, error) {
	ca, err := x509.ParseCertificate(der) // for the label; CA certificates are few
	if err != nil {
		return nil, err
	}
	cf, err := parseCertFields(der)
	if err != nil {
		return nil, err
	}
	id, err := keyID(cf.spki)
	if err != nil {
		return nil, nil
	}
	label := ca.Subject.CommonName
	if label == "" {
		label = ca.Subject.String()
	}
	sum := sha256.Sum256(der)
	return &caInfo{key: "ca:" + hex.EncodeToString(sum[:]), cf: cf, id: id, label: []byte(label)}, nil
}

// buildObjects turns parsed credentials into objects.
func buildObjects(ks *keySet, o buildOptions) []*object {
	n := 3 * len(ks.keys)
	objs := make([]*object, 0, 1+n+len(ks.cas))
	objs = append(objs, profileObject())
	slab := make([]object, n) // one allocation for the keys' objects
	next := func() *object {
		p := &slab[0]
		slab = slab[1:]
		return p
	}
	// A CA certificate never shares a key's CKA_ID: drop one that would
	// (a credential's own certificate repeated in another chain).
	caIDs := make(map[string]bool, len(ks.cas))
	for _, ca := range ks.cas {
		caIDs[string(ca.id)] = true
	}
	shared := map[string]bool{}
	for _, k := range ks.keys {
		c := &k.cred
		objs = append(objs, certObject(next(), "cert:"+c.ID, k))
		objs = append(objs, publicKeyObject(next(), "pub:"+c.ID, k))
		if c.Enabled {
			objs = append(objs, privateKeyObject(next(), "priv:"+c.ID, k, o.privateKeys, o.alwaysAuth && c.Auth == AuthPIN))
		}
		if caIDs[string(k.id)] {
			shared[string(k.id)] = true
		}
	}
	for _, ca := range ks.cas {
		if !shared[string(ca.id)] {
			objs = append(objs, caObject(ca))
		}
	}
	return objs
}
