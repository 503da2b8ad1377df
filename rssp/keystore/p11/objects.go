//go:build cgo

package p11

// Finding the token and its key objects; the templates and public keys
// of new keys.

import (
	"cmp"
	"crypto"
	"encoding/asn1"
	"fmt"
	"math/big"
	"strings"

	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/miekg/pkcs11"
)

// findKey returns the private key with CKA_ID ref, from the cache or the
// token.
func (b *Backend) findKey(c ctxAPI, sh pkcs11.SessionHandle, ref []byte) (keyObject, error) {
	if k, ok := b.handles.Get(string(ref)); ok {
		return k, nil
	}
	k, err := findKeyObject(c, sh, ref)
	if err != nil {
		return keyObject{}, err
	}
	b.handles.Add(string(ref), k)
	return k, nil
}

// findKeyObject looks the private key with CKA_ID ref up in the token.
func findKeyObject(c ctxAPI, sh pkcs11.SessionHandle, ref []byte) (keyObject, error) {
	objs, err := findObjects(c, sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_ID, ref),
	}, 2)
	if err != nil {
		return keyObject{}, mapError("find key", err, nil)
	}
	switch len(objs) {
	case 0:
		return keyObject{}, fmt.Errorf("p11: %w: no private key with CKA_ID %x", keystore.ErrKeyNotFound, ref)
	case 1:
	default:
		return keyObject{}, fmt.Errorf("p11: several private keys with CKA_ID %x", ref)
	}
	attrs, err := c.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil)})
	if err != nil {
		return keyObject{}, mapError("read CKA_KEY_TYPE", err, nil)
	}
	kt, err := ulong(attrs[0].Value)
	if err != nil {
		return keyObject{}, err
	}
	k := keyObject{handle: objs[0], keyType: kt}
	if kt == pkcs11.CKK_RSA {
		attrs, err := c.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil)})
		if err != nil {
			return keyObject{}, mapError("read CKA_MODULUS", err, nil)
		}
		k.bits = new(big.Int).SetBytes(attrs[0].Value).BitLen()
	}
	return k, nil
}

// findObjects returns up to n objects matching temp (callers ask for one
// more than they expect, to detect ambiguity).
func findObjects(c ctxAPI, sh pkcs11.SessionHandle, temp []*pkcs11.Attribute, n int) ([]pkcs11.ObjectHandle, error) {
	if err := c.FindObjectsInit(sh, temp); err != nil {
		return nil, err
	}
	objs, _, err := c.FindObjects(sh, n)
	ferr := c.FindObjectsFinal(sh) // always, even after an error
	if err != nil {
		return nil, err
	}
	if ferr != nil {
		return nil, ferr
	}
	return objs, nil
}

// findToken returns the slot of the one initialised token labelled label.
func findToken(c ctxAPI, label string) (uint, pkcs11.TokenInfo, error) {
	slots, err := c.GetSlotList(true)
	if err != nil {
		return 0, pkcs11.TokenInfo{}, fmt.Errorf("p11: C_GetSlotList: %w", err)
	}
	var (
		found   []uint
		info    pkcs11.TokenInfo
		present []string
	)
	for _, s := range slots {
		ti, err := c.GetTokenInfo(s)
		if err != nil {
			continue // a slot that cannot describe its token is not ours
		}
		if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		l := strings.TrimRight(ti.Label, " \x00")
		present = append(present, fmt.Sprintf("%q", l))
		if l == label {
			found = append(found, s)
			info = ti
		}
	}
	switch len(found) {
	case 1:
		return found[0], info, nil
	case 0:
		return 0, info, fmt.Errorf("%w: no initialised token labelled %q (tokens present: %s)",
			ErrTokenNotFound, label, cmp.Or(strings.Join(present, ", "), "none"))
	default:
		return 0, info, fmt.Errorf("p11: %d tokens are labelled %q (slots %v); labels must be unique", len(found), label, found)
	}
}

// templates builds the C_GenerateKeyPair arguments for spec.
func templates(spec keySpec, id []byte, label string) ([]*pkcs11.Mechanism, []*pkcs11.Attribute, []*pkcs11.Attribute, error) {
	pub := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, spec.keyType),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
	priv := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, spec.keyType),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
	var mech uint
	switch spec.keyType {
	case pkcs11.CKK_RSA:
		mech = pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN
		pub = append(pub,
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, spec.bits),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}))
	case pkcs11.CKK_EC:
		mech = pkcs11.CKM_EC_KEY_PAIR_GEN
		params, err := asn1.Marshal(spec.oid)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("p11: encode curve: %w", err)
		}
		pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params))
	}
	return []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, pub, priv, nil
}

// readPublic reads a generated public key back from the token.
func readPublic(c ctxAPI, sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, spec keySpec) (crypto.PublicKey, error) {
	if spec.keyType == pkcs11.CKK_RSA {
		attrs, err := c.GetAttributeValue(sh, o, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			return nil, mapError("read RSA public key", err, nil)
		}
		pub, err := rsaPublic(attrs[0].Value, attrs[1].Value)
		if err != nil {
			return nil, err
		}
		if pub.N.BitLen() != spec.bits {
			return nil, fmt.Errorf("p11: token generated a %d-bit modulus, want %d", pub.N.BitLen(), spec.bits)
		}
		return pub, nil
	}
	attrs, err := c.GetAttributeValue(sh, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
	if err != nil {
		return nil, mapError("read CKA_EC_POINT", err, nil)
	}
	return parseECPoint(spec.curve, attrs[0].Value)
}
