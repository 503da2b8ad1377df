package csc

import (
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
)

// PSSParams are the RSASSA-PSS parameters (RFC 8017 A.2.3) that travel in
// signAlgoParams as base64 DER.
type PSSParams struct {
	Hash       crypto.Hash // message digest and MGF1 hash
	SaltLength int
}

type pssASN1 struct {
	Hash         pkix.AlgorithmIdentifier `asn1:"explicit,tag:0,optional"`
	MGF          pkix.AlgorithmIdentifier `asn1:"explicit,tag:1,optional"`
	SaltLength   int                      `asn1:"explicit,tag:2,optional,default:20"`
	TrailerField int                      `asn1:"explicit,tag:3,optional,default:1"`
}

var asn1Null = asn1.RawValue{Tag: asn1.TagNull}

// ErrPSSParams is wrapped by every PSS parameter error.
var ErrPSSParams = errors.New("invalid RSASSA-PSS parameters")

// MarshalPSSParams encodes p as DER.
func MarshalPSSParams(p PSSParams) ([]byte, error) {
	oid, err := ParseOID(HashOID(p.Hash))
	if err != nil {
		return nil, fmt.Errorf("%w: unsupported hash %v", ErrPSSParams, p.Hash)
	}
	hashAlg := pkix.AlgorithmIdentifier{Algorithm: oid, Parameters: asn1Null}
	hashDER, err := asn1.Marshal(hashAlg)
	if err != nil {
		return nil, err
	}
	mgfOID, _ := ParseOID(OIDMGF1)
	return asn1.Marshal(pssASN1{
		Hash:         hashAlg,
		MGF:          pkix.AlgorithmIdentifier{Algorithm: mgfOID, Parameters: asn1.RawValue{FullBytes: hashDER}},
		SaltLength:   p.SaltLength,
		TrailerField: 1,
	})
}

// ParsePSSParams decodes DER RSASSA-PSS parameters. Absent fields take the
// RFC's defaults (SHA-1, MGF1-SHA-1, salt 20); the MGF1 hash must equal the
// message hash, and the trailer field must be 1.
func ParsePSSParams(der []byte) (PSSParams, error) {
	var a pssASN1
	rest, err := asn1.Unmarshal(der, &a)
	if err != nil {
		return PSSParams{}, fmt.Errorf("%w: %w", ErrPSSParams, err)
	}
	if len(rest) != 0 {
		return PSSParams{}, fmt.Errorf("%w: trailing data", ErrPSSParams)
	}
	hash := crypto.SHA1
	if len(a.Hash.Algorithm) > 0 {
		h, ok := HashByOID(a.Hash.Algorithm.String())
		if !ok {
			return PSSParams{}, fmt.Errorf("%w: unknown hash %s", ErrPSSParams, a.Hash.Algorithm)
		}
		hash = h
	}
	mgfHash := crypto.SHA1
	if len(a.MGF.Algorithm) > 0 {
		if a.MGF.Algorithm.String() != OIDMGF1 {
			return PSSParams{}, fmt.Errorf("%w: mask generation %s is not MGF1", ErrPSSParams, a.MGF.Algorithm)
		}
		var inner pkix.AlgorithmIdentifier
		if _, err := asn1.Unmarshal(a.MGF.Parameters.FullBytes, &inner); err != nil {
			return PSSParams{}, fmt.Errorf("%w: MGF1 hash: %w", ErrPSSParams, err)
		}
		h, ok := HashByOID(inner.Algorithm.String())
		if !ok {
			return PSSParams{}, fmt.Errorf("%w: unknown MGF1 hash %s", ErrPSSParams, inner.Algorithm)
		}
		mgfHash = h
	}
	if mgfHash != hash {
		return PSSParams{}, fmt.Errorf("%w: MGF1 hash differs from the message hash", ErrPSSParams)
	}
	if a.TrailerField != 1 {
		return PSSParams{}, fmt.Errorf("%w: trailer field %d", ErrPSSParams, a.TrailerField)
	}
	if a.SaltLength < 0 || a.SaltLength > 512 {
		return PSSParams{}, fmt.Errorf("%w: salt length %d", ErrPSSParams, a.SaltLength)
	}
	return PSSParams{Hash: hash, SaltLength: a.SaltLength}, nil
}
