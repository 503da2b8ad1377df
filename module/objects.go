package module

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/csctoken/csctoken/module/ck"
)

// ObjectHandle is a CK_OBJECT_HANDLE.
type ObjectHandle uint

// object is one token object. Objects are immutable once built; a refresh
// builds new ones (keeping handles by identity key).
type object struct {
	handle  ObjectHandle
	key     string // identity across refreshes
	class   uint
	private bool
	attrs   map[uint][]byte
	// sensitive lists attributes the class defines but never reveals.
	sensitive map[uint]bool
	ki        *keyInfo // keys and user certificates: the credential's key
}

// keyInfo is what signing needs about one credential.
type keyInfo struct {
	cred    Credential
	cert    *x509.Certificate
	keyType uint // CKK_RSA or CKK_EC
	bits    int  // modulus bits or curve field size
	sigLen  int  // PKCS#11 signature length in bytes
	id      []byte
	algos   []string // signAlgos(cred)
	mechs   []uint   // offered signature mechanisms
	rsaPub  *rsa.PublicKey
	ecPub   *ecdsa.PublicKey

	// verified holds the signature shapes (sigShape) for which a signature
	// from the service has been checked against the certificate's key.
	verified sync.Map
}

// sigShape is what a service could get wrong systematically about a
// signature: the scheme, the hash and the PSS salt length.
type sigShape struct {
	scheme  scheme
	hash    crypto.Hash
	saltLen int
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

// keyID is the CKA_ID of a key: SHA-1 of the subjectPublicKey BIT STRING
// contents, as OpenSC, NSS and most tools compute it. Stable across runs,
// machines and services.
func keyID(spki []byte) ([]byte, error) {
	s := cryptobyte.String(spki)
	var seq, alg cryptobyte.String
	var bits asn1.BitString
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!seq.ReadASN1BitString(&bits) {
		return nil, errors.New("malformed SubjectPublicKeyInfo")
	}
	sum := sha1.Sum(bits.Bytes)
	return sum[:], nil
}

// ecParamsAndPoint returns CKA_EC_PARAMS (the namedCurve OID, DER) and
// CKA_EC_POINT (DER OCTET STRING of the uncompressed point) from an SPKI.
func ecParamsAndPoint(spki []byte) (params, point []byte, err error) {
	s := cryptobyte.String(spki)
	var seq, alg, rawParams cryptobyte.String
	var oid asn1.ObjectIdentifier
	var bits asn1.BitString
	var tag cbasn1.Tag
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!alg.ReadASN1ObjectIdentifier(&oid) || !alg.ReadAnyASN1Element(&rawParams, &tag) ||
		!seq.ReadASN1BitString(&bits) {
		return nil, nil, errors.New("malformed EC SubjectPublicKeyInfo")
	}
	var b cryptobyte.Builder
	b.AddASN1OctetString(bits.Bytes)
	return bytes.Clone(rawParams), b.BytesOrPanic(), nil
}

func newKeyInfo(c Credential) (*keyInfo, error) {
	if len(c.Certificates) == 0 {
		return nil, errors.New("no certificate")
	}
	cert, err := x509.ParseCertificate(c.Certificates[0])
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	id, err := keyID(cert.RawSubjectPublicKeyInfo)
	if err != nil {
		return nil, err
	}
	k := &keyInfo{cred: c, cert: cert, id: id}
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		k.keyType, k.rsaPub = ck.CKK_RSA, pub
		k.bits = pub.N.BitLen()
		k.sigLen = (k.bits + 7) / 8
	case *ecdsa.PublicKey:
		k.keyType, k.ecPub = ck.CKK_EC, pub
		k.bits = pub.Curve.Params().BitSize
		k.sigLen = 2 * ((k.bits + 7) / 8)
	default:
		return nil, fmt.Errorf("unsupported public key %T", cert.PublicKey)
	}
	k.algos = signAlgos(&k.cred, k.keyType)
	k.mechs = offeredMechs(k.algos, k.keyType)
	return k, nil
}

func (k *keyInfo) label() string {
	if k.cred.Description != "" {
		return k.cred.Description
	}
	return k.cred.ID
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
func storageAttrs(class uint, private bool, label, key string) map[uint][]byte {
	return map[uint][]byte{
		ck.CKA_CLASS:       ulong(class),
		ck.CKA_TOKEN:       ck.Bool(true),
		ck.CKA_PRIVATE:     ck.Bool(private),
		ck.CKA_MODIFIABLE:  ck.Bool(false),
		ck.CKA_COPYABLE:    ck.Bool(false),
		ck.CKA_DESTROYABLE: ck.Bool(false),
		ck.CKA_LABEL:       []byte(label),
		ck.CKA_UNIQUE_ID:   uniqueID(key),
	}
}

func certObject(key string, cert *x509.Certificate, id []byte, label string, category uint) *object {
	serial, _ := asn1.Marshal(cert.SerialNumber)
	check := sha1.Sum(cert.Raw)
	spkiID, _ := keyID(cert.RawSubjectPublicKeyInfo)
	a := storageAttrs(ck.CKO_CERTIFICATE, false, label, key)
	for t, v := range map[uint][]byte{
		ck.CKA_CERTIFICATE_TYPE:           ulong(ck.CKC_X_509),
		ck.CKA_TRUSTED:                    ck.Bool(false),
		ck.CKA_CERTIFICATE_CATEGORY:       ulong(category),
		ck.CKA_CHECK_VALUE:                check[:3],
		ck.CKA_START_DATE:                 ckDate(cert.NotBefore),
		ck.CKA_END_DATE:                   ckDate(cert.NotAfter),
		ck.CKA_PUBLIC_KEY_INFO:            cert.RawSubjectPublicKeyInfo,
		ck.CKA_SUBJECT:                    cert.RawSubject,
		ck.CKA_ID:                         id,
		ck.CKA_ISSUER:                     cert.RawIssuer,
		ck.CKA_SERIAL_NUMBER:              serial,
		ck.CKA_VALUE:                      cert.Raw,
		ck.CKA_URL:                        {},
		ck.CKA_HASH_OF_SUBJECT_PUBLIC_KEY: spkiID,
		ck.CKA_HASH_OF_ISSUER_PUBLIC_KEY:  {},
		ck.CKA_JAVA_MIDP_SECURITY_DOMAIN:  ulong(ck.CK_SECURITY_DOMAIN_UNSPECIFIED),
		ck.CKA_NAME_HASH_ALGORITHM:        ulong(ck.CKM_SHA_1),
	} {
		a[t] = v
	}
	return &object{key: key, class: ck.CKO_CERTIFICATE, attrs: a}
}

// keyCommonAttrs are the CKO_PUBLIC_KEY / CKO_PRIVATE_KEY attributes shared
// by both classes.
func keyCommonAttrs(a map[uint][]byte, k *keyInfo) {
	a[ck.CKA_KEY_TYPE] = ulong(k.keyType)
	a[ck.CKA_ID] = k.id
	a[ck.CKA_START_DATE] = []byte{}
	a[ck.CKA_END_DATE] = []byte{}
	a[ck.CKA_DERIVE] = ck.Bool(false)
	a[ck.CKA_LOCAL] = ck.Bool(false)
	a[ck.CKA_KEY_GEN_MECHANISM] = ulong(ck.UnavailableInformation)
	a[ck.CKA_ALLOWED_MECHANISMS] = ulongs(k.mechs)
	a[ck.CKA_SUBJECT] = k.cert.RawSubject
	a[ck.CKA_PUBLIC_KEY_INFO] = k.cert.RawSubjectPublicKeyInfo
	switch k.keyType {
	case ck.CKK_RSA:
		a[ck.CKA_MODULUS] = k.rsaPub.N.Bytes()
		a[ck.CKA_MODULUS_BITS] = ulong(uint(k.bits))
		a[ck.CKA_PUBLIC_EXPONENT] = big.NewInt(int64(k.rsaPub.E)).Bytes()
	case ck.CKK_EC:
		params, point, err := ecParamsAndPoint(k.cert.RawSubjectPublicKeyInfo)
		if err == nil {
			a[ck.CKA_EC_PARAMS] = params
			a[ck.CKA_EC_POINT] = point
		}
	}
}

func publicKeyObject(key string, k *keyInfo) *object {
	a := storageAttrs(ck.CKO_PUBLIC_KEY, false, k.label(), key)
	keyCommonAttrs(a, k)
	for t, v := range map[uint][]byte{
		ck.CKA_ENCRYPT:        ck.Bool(false),
		ck.CKA_VERIFY:         ck.Bool(true),
		ck.CKA_VERIFY_RECOVER: ck.Bool(false),
		ck.CKA_WRAP:           ck.Bool(false),
		ck.CKA_TRUSTED:        ck.Bool(false),
		ck.CKA_WRAP_TEMPLATE:  {},
	} {
		a[t] = v
	}
	return &object{key: key, class: ck.CKO_PUBLIC_KEY, attrs: a, ki: k}
}

func privateKeyObject(key string, k *keyInfo, private, alwaysAuth bool) *object {
	a := storageAttrs(ck.CKO_PRIVATE_KEY, private, k.label(), key)
	keyCommonAttrs(a, k)
	for t, v := range map[uint][]byte{
		ck.CKA_SENSITIVE:           ck.Bool(true),
		ck.CKA_DECRYPT:             ck.Bool(false),
		ck.CKA_SIGN:                ck.Bool(true),
		ck.CKA_SIGN_RECOVER:        ck.Bool(false),
		ck.CKA_UNWRAP:              ck.Bool(false),
		ck.CKA_EXTRACTABLE:         ck.Bool(false),
		ck.CKA_ALWAYS_SENSITIVE:    ck.Bool(true),
		ck.CKA_NEVER_EXTRACTABLE:   ck.Bool(true),
		ck.CKA_WRAP_WITH_TRUSTED:   ck.Bool(false),
		ck.CKA_UNWRAP_TEMPLATE:     {},
		ck.CKA_ALWAYS_AUTHENTICATE: ck.Bool(alwaysAuth),
	} {
		a[t] = v
	}
	sens := map[uint]bool{}
	switch k.keyType {
	case ck.CKK_RSA:
		for _, t := range []uint{ck.CKA_PRIVATE_EXPONENT, ck.CKA_PRIME_1, ck.CKA_PRIME_2,
			ck.CKA_EXPONENT_1, ck.CKA_EXPONENT_2, ck.CKA_COEFFICIENT} {
			sens[t] = true
		}
	case ck.CKK_EC:
		sens[ck.CKA_VALUE] = true
	}
	return &object{key: key, class: ck.CKO_PRIVATE_KEY, private: private, attrs: a, sensitive: sens, ki: k}
}

func profileObject() *object {
	a := storageAttrs(ck.CKO_PROFILE, false, "", "profile")
	a[ck.CKA_PROFILE_ID] = ulong(ck.CKP_PUBLIC_CERTIFICATES_TOKEN)
	return &object{key: "profile", class: ck.CKO_PROFILE, attrs: a}
}

// buildOptions say how a token presents its keys.
type buildOptions struct {
	privateKeys bool // CKA_PRIVATE on private keys (pin mode)
	alwaysAuth  bool // CKA_ALWAYS_AUTHENTICATE
}

// buildObjects turns credentials into objects. Credentials that cannot be
// used (no or bad certificate) are reported through skip and left out.
func buildObjects(creds []Credential, o buildOptions, skip func(Credential, error)) []*object {
	objs := []*object{profileObject()}
	seenCA := map[[32]byte]bool{}
	var cas []*object
	for _, c := range creds {
		k, err := newKeyInfo(c)
		if err != nil {
			skip(c, err)
			continue
		}
		objs = append(objs, certObject("cert:"+c.ID, k.cert, k.id, k.label(), ck.CK_CERTIFICATE_CATEGORY_TOKEN_USER))
		pub := publicKeyObject("pub:"+c.ID, k)
		objs = append(objs, pub)
		if c.Enabled {
			objs = append(objs, privateKeyObject("priv:"+c.ID, k, o.privateKeys, o.alwaysAuth && c.Auth == AuthPIN))
		}
		for _, der := range c.Certificates[1:] {
			sum := sha256.Sum256(der)
			if seenCA[sum] {
				continue
			}
			ca, err := x509.ParseCertificate(der)
			if err != nil {
				skip(c, fmt.Errorf("chain certificate: %w", err))
				continue
			}
			seenCA[sum] = true
			id, err := keyID(ca.RawSubjectPublicKeyInfo)
			if err != nil {
				continue
			}
			label := ca.Subject.CommonName
			if label == "" {
				label = ca.Subject.String()
			}
			cas = append(cas, certObject("ca:"+hex.EncodeToString(sum[:]), ca, id, label, ck.CK_CERTIFICATE_CATEGORY_AUTHORITY))
		}
	}
	// A CA certificate never shares a key's CKA_ID: drop one that would
	// (a credential's own certificate repeated in another chain).
	keyIDs := map[string]bool{}
	for _, ob := range objs {
		if ob.class == ck.CKO_CERTIFICATE {
			keyIDs[string(ob.attrs[ck.CKA_ID])] = true
		}
	}
	for _, ca := range cas {
		if !keyIDs[string(ca.attrs[ck.CKA_ID])] {
			objs = append(objs, ca)
		}
	}
	return objs
}
