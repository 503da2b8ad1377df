package objects

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/csctoken/csctoken/module/ck"
)

// KeyInfo is what signing needs about one credential.
type KeyInfo struct {
	Cred    Credential
	cf      certFields // the end-entity certificate
	KeyType uint       // CKK_RSA or CKK_EC
	Bits    int        // modulus bits or curve field size
	SigLen  int        // PKCS#11 signature length in bytes
	id      []byte
	Algos   []string // signAlgos(cred)
	Mechs   []uint   // offered signature mechanisms
	RSAPub  *rsa.PublicKey
	ecPub   *ecdsa.PublicKey
	labelB  []byte // CKA_LABEL of its objects
	// Verified holds the signature shapes (SigShape) whose first signature
	// from the service was checked against the certificate's key.
	Verified sync.Map
}

// SigShape is what makes two signatures of one key alike for the check of
// the first: scheme, hash and PSS salt length.
type SigShape struct {
	Scheme  Scheme
	Hash    crypto.Hash
	SaltLen int
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

// certFields are the parts of an X.509 certificate the module presents,
// read with cryptobyte: slices of raw (the DER), no copy, no
// x509.ParseCertificate (which costs some 50 µs a certificate, too much
// for a token of a thousand credentials loaded at every C_Initialize).
type certFields struct {
	raw      []byte
	serial   []byte // the serialNumber INTEGER, DER
	issuer   []byte // RawIssuer
	subject  []byte // RawSubject
	spki     []byte // RawSubjectPublicKeyInfo
	validity []byte // the Validity's contents: notBefore, notAfter
}

// dates returns CKA_START_DATE and CKA_END_DATE.
func (cf *certFields) dates() (start, end []byte) {
	v := cryptobyte.String(cf.validity)
	nb, ok1 := readASN1Time(&v)
	na, ok2 := readASN1Time(&v)
	if !ok1 || !ok2 {
		return []byte{}, []byte{}
	}
	return ckDate(nb), ckDate(na)
}

var errBadCert = errors.New("malformed certificate")

// parseCertFields reads the TBSCertificate of der up to its
// subjectPublicKeyInfo.
func parseCertFields(der []byte) (certFields, error) {
	in := cryptobyte.String(der)
	var cert, tbs, serial, issuer, validity, subject, spki cryptobyte.String
	if !in.ReadASN1(&cert, cbasn1.SEQUENCE) || !in.Empty() ||
		!cert.ReadASN1(&tbs, cbasn1.SEQUENCE) ||
		!tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) ||
		!tbs.ReadASN1Element(&serial, cbasn1.INTEGER) ||
		!tbs.SkipASN1(cbasn1.SEQUENCE) ||
		!tbs.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
		!tbs.ReadASN1(&validity, cbasn1.SEQUENCE) {
		return certFields{}, errBadCert
	}
	if !tbs.ReadASN1Element(&subject, cbasn1.SEQUENCE) ||
		!tbs.ReadASN1Element(&spki, cbasn1.SEQUENCE) {
		return certFields{}, errBadCert
	}
	return certFields{raw: der, serial: serial, issuer: issuer, subject: subject, spki: spki,
		validity: validity}, nil
}

// readASN1Time reads a UTCTime or GeneralizedTime, as x509 does.
func readASN1Time(s *cryptobyte.String) (time.Time, bool) {
	var t time.Time
	switch {
	case s.PeekASN1Tag(cbasn1.UTCTime):
		return t, s.ReadASN1UTCTime(&t)
	case s.PeekASN1Tag(cbasn1.GeneralizedTime):
		return t, s.ReadASN1GeneralizedTime(&t)
	}
	return t, false
}

// Public key algorithm and named curve OIDs: the contents octets of their
// DER encoding (TestOIDContents).
const (
	oidPKRSA     = "\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01" // 1.2.840.113549.1.1.1
	oidPKEC      = "\x2a\x86\x48\xce\x3d\x02\x01"         // 1.2.840.10045.2.1
	oidCurveP256 = "\x2a\x86\x48\xce\x3d\x03\x01\x07"     // 1.2.840.10045.3.1.7
	oidCurveP384 = "\x2b\x81\x04\x00\x22"                 // 1.3.132.0.34
	oidCurveP521 = "\x2b\x81\x04\x00\x23"                 // 1.3.132.0.35
)

// publicKey reads an RSA (rsaEncryption) or EC (named curve P-256, P-384,
// P-521, uncompressed point) SubjectPublicKeyInfo. The EC point is not
// checked to be on the curve here: listings are validated by
// x509.ParseCertificate before they are used or cached, and a point off
// the curve would only make signature verification fail.
func publicKey(spki []byte) (any, error) {
	s := cryptobyte.String(spki)
	var seq, alg, oid cryptobyte.String
	var bits asn1.BitString
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1(&alg, cbasn1.SEQUENCE) ||
		!alg.ReadASN1(&oid, cbasn1.OBJECT_IDENTIFIER) || !seq.ReadASN1BitString(&bits) || bits.BitLength%8 != 0 {
		return nil, errors.New("malformed SubjectPublicKeyInfo")
	}
	switch string(oid) {
	case oidPKRSA:
		k := cryptobyte.String(bits.Bytes)
		var rk cryptobyte.String
		n, e := new(big.Int), 0
		if !k.ReadASN1(&rk, cbasn1.SEQUENCE) || !rk.ReadASN1Integer(n) || !rk.ReadASN1Integer(&e) ||
			n.Sign() <= 0 || e < 2 {
			return nil, errors.New("malformed RSA public key")
		}
		return &rsa.PublicKey{N: n, E: e}, nil
	case oidPKEC:
		var curveOID cryptobyte.String
		if !alg.ReadASN1(&curveOID, cbasn1.OBJECT_IDENTIFIER) {
			return nil, errors.New("EC key without a named curve")
		}
		var curve elliptic.Curve
		switch string(curveOID) {
		case oidCurveP256:
			curve = elliptic.P256()
		case oidCurveP384:
			curve = elliptic.P384()
		case oidCurveP521:
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("unsupported curve %x", []byte(curveOID))
		}
		size := (curve.Params().BitSize + 7) / 8
		p := bits.Bytes
		if len(p) != 1+2*size || p[0] != 4 {
			return nil, errors.New("EC point not in uncompressed form")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, p)
		if err != nil {
			return nil, fmt.Errorf("EC point: %w", err)
		}
		return pub, nil
	}
	return nil, fmt.Errorf("unsupported public key algorithm %x", []byte(oid))
}

// mechCache memoizes offeredMechs within one build: credentials of one
// service mostly share their algorithm lists (the last one is tried
// first, without building a key).
type mechCache struct {
	m        map[string][]uint
	lastType uint
	last     []string
	lastM    []uint
}

func (mc *mechCache) Mechs(algos []string, keyType uint) []uint {
	if mc.lastM != nil && keyType == mc.lastType && slices.Equal(algos, mc.last) {
		return mc.lastM
	}
	key := strings.Join(append(algos[:len(algos):len(algos)], strconv.FormatUint(uint64(keyType), 10)), " ")
	m, ok := mc.m[key]
	if !ok {
		m = offeredMechs(algos, keyType)
		if mc.m == nil {
			mc.m = map[string][]uint{}
		}
		mc.m[key] = m
	}
	mc.lastType, mc.last, mc.lastM = keyType, algos, m
	return m
}

// newKeyInfo reads a credential's end-entity certificate. validate runs
// x509.ParseCertificate too (fresh listings: the cache holds only
// credentials that passed it).
func newKeyInfo(c Credential, validate bool, mc *mechCache) (*KeyInfo, error) {
	if len(c.Certificates) == 0 {
		return nil, errors.New("no certificate")
	}
	if validate {
		if _, err := x509.ParseCertificate(c.Certificates[0]); err != nil {
			return nil, fmt.Errorf("certificate: %w", err)
		}
	}
	cf, err := parseCertFields(c.Certificates[0])
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	id, err := keyID(cf.spki)
	if err != nil {
		return nil, err
	}
	pub, err := publicKey(cf.spki)
	if err != nil {
		return nil, err
	}
	k := &KeyInfo{Cred: c, cf: cf, id: id}
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		k.KeyType, k.RSAPub = ck.CKK_RSA, pub
		k.Bits = pub.N.BitLen()
		k.SigLen = (k.Bits + 7) / 8
	case *ecdsa.PublicKey:
		k.KeyType, k.ecPub = ck.CKK_EC, pub
		k.Bits = pub.Curve.Params().BitSize
		k.SigLen = 2 * ((k.Bits + 7) / 8)
	}
	k.Algos = signAlgos(&k.Cred, k.KeyType)
	if mc == nil {
		mc = &mechCache{}
	}
	k.Mechs = mc.Mechs(k.Algos, k.KeyType)
	k.labelB = []byte(k.label())
	return k, nil
}

func (k *KeyInfo) label() string {
	if k.Cred.Description != "" {
		return k.Cred.Description
	}
	return k.Cred.ID
}
