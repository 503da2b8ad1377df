package objects

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

// Handle is a CK_OBJECT_HANDLE.
type Handle uint

// Object is one token object. Objects are immutable once built; a refresh
// builds new ones (keeping handles by identity key). Their attributes are
// computed at the first access (attributes), so that a token of many
// credentials loads fast; CKA_CLASS, CKA_LABEL and CKA_ID, what searches
// use most, are known from the start.
type Object struct {
	Handle     Handle
	Key        string // identity across refreshes
	Class      uint
	Private    bool
	alwaysAuth bool     // CKA_ALWAYS_AUTHENTICATE (private keys)
	KeyInfo    *KeyInfo // keys and user certificates: the credential's key
	ca         *caInfo  // CA certificates

	once  sync.Once
	attrs map[uint][]byte // use attributes(); built at the first need
	// sensitive lists attributes the class defines but never reveals.
	sensitive map[uint]bool
}

// Set is one immutable snapshot of a token's objects.
type Set struct {
	List     []*Object          // in listing order, the profile object first
	ByHandle map[Handle]*Object // the same objects by their handles
	Keys     []*KeyInfo         // the credentials' keys
}

// Get returns the object of handle h, or nil (also on a nil Set).
func (s *Set) Get(h Handle) *Object {
	if s == nil {
		return nil
	}
	return s.ByHandle[h]
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
func (o *Object) attributes() map[uint][]byte {
	o.once.Do(func() {
		if o.attrs == nil {
			o.attrs = o.buildAttrs()
		}
	})
	return o.attrs
}

// value returns one attribute, without building the others for CKA_CLASS,
// CKA_LABEL and CKA_ID.
func (o *Object) value(t uint) ([]byte, bool) {
	if o.KeyInfo != nil || o.ca != nil {
		switch t {
		case ck.CKA_CLASS:
			return classValue(o.Class), true
		case ck.CKA_LABEL:
			if o.ca != nil {
				return o.ca.label, true
			}
			return o.KeyInfo.labelB, true
		case ck.CKA_ID:
			if o.ca != nil {
				return o.ca.id, true
			}
			return o.KeyInfo.id, true
		}
	}
	v, ok := o.attributes()[t]
	return v, ok
}

func (o *Object) buildAttrs() map[uint][]byte {
	switch o.Class {
	case ck.CKO_CERTIFICATE:
		if o.ca != nil {
			return certAttrs(o.Key, &o.ca.cf, o.ca.id, o.ca.label, ck.CK_CERTIFICATE_CATEGORY_AUTHORITY)
		}
		return certAttrs(o.Key, &o.KeyInfo.cf, o.KeyInfo.id, o.KeyInfo.labelB, ck.CK_CERTIFICATE_CATEGORY_TOKEN_USER)
	case ck.CKO_PUBLIC_KEY:
		return publicKeyAttrs(o.Key, o.KeyInfo)
	case ck.CKO_PRIVATE_KEY:
		return privateKeyAttrs(o.Key, o.KeyInfo, o.Private, o.alwaysAuth)
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
func certObject(dst *Object, key string, k *KeyInfo) *Object {
	*dst = Object{Key: key, Class: ck.CKO_CERTIFICATE, KeyInfo: k}
	return dst
}

// caObject returns a CA certificate object.
func caObject(ca *caInfo) *Object {
	return &Object{Key: ca.Key, Class: ck.CKO_CERTIFICATE, ca: ca}
}

// keyCommonAttrs are the CKO_PUBLIC_KEY / CKO_PRIVATE_KEY attributes shared
// by both classes.
func keyCommonAttrs(a map[uint][]byte, k *KeyInfo) {
	a[ck.CKA_KEY_TYPE] = ulong(k.KeyType)
	a[ck.CKA_ID] = k.id
	a[ck.CKA_START_DATE] = []byte{}
	a[ck.CKA_END_DATE] = []byte{}
	a[ck.CKA_DERIVE] = ckFalse
	a[ck.CKA_LOCAL] = ckFalse
	a[ck.CKA_KEY_GEN_MECHANISM] = ulong(ck.UnavailableInformation)
	a[ck.CKA_ALLOWED_MECHANISMS] = ulongs(k.Mechs)
	a[ck.CKA_SUBJECT] = k.cf.subject
	a[ck.CKA_PUBLIC_KEY_INFO] = k.cf.spki
	switch k.KeyType {
	case ck.CKK_RSA:
		a[ck.CKA_MODULUS] = k.RSAPub.N.Bytes()
		a[ck.CKA_MODULUS_BITS] = ulong(uint(k.Bits))
		a[ck.CKA_PUBLIC_EXPONENT] = big.NewInt(int64(k.RSAPub.E)).Bytes()
	case ck.CKK_EC:
		params, point, err := ecParamsAndPoint(k.cf.spki)
		if err == nil {
			a[ck.CKA_EC_PARAMS] = params
			a[ck.CKA_EC_POINT] = point
		}
	}
}

func publicKeyAttrs(key string, k *KeyInfo) map[uint][]byte {
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
func publicKeyObject(dst *Object, key string, k *KeyInfo) *Object {
	*dst = Object{Key: key, Class: ck.CKO_PUBLIC_KEY, KeyInfo: k}
	return dst
}

func privateKeyAttrs(key string, k *KeyInfo, private, alwaysAuth bool) map[uint][]byte {
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
func privateKeyObject(dst *Object, key string, k *KeyInfo, private, alwaysAuth bool) *Object {
	*dst = Object{Key: key, Class: ck.CKO_PRIVATE_KEY, Private: private, alwaysAuth: alwaysAuth, KeyInfo: k}
	switch k.KeyType {
	case ck.CKK_RSA:
		dst.sensitive = rsaSensitive
	case ck.CKK_EC:
		dst.sensitive = ecSensitive
	}
	return dst
}

func profileObject() *Object {
	a := storageAttrs(ck.CKO_PROFILE, false, []byte{}, "profile")
	a[ck.CKA_PROFILE_ID] = ulong(ck.CKP_PUBLIC_CERTIFICATES_TOKEN)
	return &Object{Key: "profile", Class: ck.CKO_PROFILE, attrs: a}
}

// BuildOptions say how a token presents its keys.
type BuildOptions struct {
	PrivateKeys bool // CKA_PRIVATE on private keys (pin mode)
	AlwaysAuth  bool // CKA_ALWAYS_AUTHENTICATE
}

// caInfo is one CA certificate of the credentials' chains.
type caInfo struct {
	Key   string // "ca:" + hex SHA-256 of the DER
	cf    certFields
	id    []byte
	label []byte
}

// KeySet is the parsed credentials of a listing: what building objects
// needs, computed without the token's lock.
type KeySet struct {
	Keys []*KeyInfo
	cas  []*caInfo
}

// Creds returns the usable credentials (what the cache keeps).
func (ks *KeySet) Creds() []Credential {
	out := make([]Credential, len(ks.Keys))
	for i, k := range ks.Keys {
		out[i] = k.Cred
	}
	return out
}

// ParseCredentials reads the credentials' certificates. Credentials that
// cannot be used (no or bad certificate) are reported through skip and
// left out; validate runs x509.ParseCertificate on every certificate
// (fresh listings).
func ParseCredentials(creds []Credential, validate bool, skip func(Credential, error)) *KeySet {
	ks := &KeySet{Keys: make([]*KeyInfo, 0, len(creds))}
	mc := &mechCache{}
	seenCA := map[string]bool{}
	for _, c := range creds {
		k, err := newKeyInfo(c, validate, mc)
		if err != nil {
			skip(c, err)
			continue
		}
		ks.Keys = append(ks.Keys, k)
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
	return &caInfo{Key: "ca:" + hex.EncodeToString(sum[:]), cf: cf, id: id, label: []byte(label)}, nil
}

// BuildObjects turns parsed credentials into objects.
func BuildObjects(ks *KeySet, o BuildOptions) []*Object {
	n := 3 * len(ks.Keys)
	objs := make([]*Object, 0, 1+n+len(ks.cas))
	objs = append(objs, profileObject())
	slab := make([]Object, n) // one allocation for the keys' objects
	next := func() *Object {
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
	for _, k := range ks.Keys {
		c := &k.Cred
		objs = append(objs, certObject(next(), "cert:"+c.ID, k))
		objs = append(objs, publicKeyObject(next(), "pub:"+c.ID, k))
		if c.Enabled {
			objs = append(objs, privateKeyObject(next(), "priv:"+c.ID, k, o.PrivateKeys, o.AlwaysAuth && c.Auth == AuthPIN))
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
