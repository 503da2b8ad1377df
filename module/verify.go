package module

import (
	"crypto/rsa"
	"fmt"
	"hash"

	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/objects"
)

// verifyOp is a session's active verification.
type verifyOp struct {
	k      *objects.KeyInfo
	md     objects.MechDef
	pss    pssSpec
	hasher hash.Hash
	buf    []byte
	multi  bool
}

// VerifyInit is C_VerifyInit; verification is local, with the public key.
func (m *Module) VerifyInit(h SessionHandle, mech ck.Mechanism, key ObjectHandle) (err error) {
	defer m.finish("VerifyInit", &err)
	s, k, md, ps, hasher, err := m.opInit(h, mech, key, ck.CKO_PUBLIC_KEY)
	if err != nil {
		return err
	}
	op := &verifyOp{k: k, md: md, pss: ps, hasher: hasher}
	return s.locked(func() error {
		if s.verify != nil {
			return ck.CKR_OPERATION_ACTIVE
		}
		s.verify = op
		return nil
	})
}

// Verify is C_Verify. It always ends the operation (PKCS#11 §5.2; there
// is no length query), CKR_OPERATION_ACTIVE after C_VerifyUpdate
// included.
func (m *Module) Verify(h SessionHandle, data, sig []byte) error {
	return m.withSession("Verify", h, func(_ *state, s *session) error {
		op := s.verify
		if op == nil {
			return ck.CKR_OPERATION_NOT_INITIALIZED
		}
		s.verify = nil
		if op.multi {
			return fmt.Errorf("C_Verify after C_VerifyUpdate: %w", ck.CKR_OPERATION_ACTIVE)
		}
		return op.check(data, sig, false)
	})
}

// VerifyUpdate is C_VerifyUpdate; an error ends the operation.
func (m *Module) VerifyUpdate(h SessionHandle, data []byte) error {
	return m.withSession("VerifyUpdate", h, func(_ *state, s *session) error {
		op := s.verify
		if op == nil {
			return ck.CKR_OPERATION_NOT_INITIALIZED
		}
		op.multi = true
		if op.hasher != nil {
			op.hasher.Write(data)
			return nil
		}
		if len(op.buf)+len(data) > maxRawInput {
			s.verify = nil
			return ck.CKR_DATA_LEN_RANGE
		}
		op.buf = append(op.buf, data...)
		return nil
	})
}

// VerifyFinal is C_VerifyFinal; it always ends the operation.
func (m *Module) VerifyFinal(h SessionHandle, sig []byte) error {
	return m.withSession("VerifyFinal", h, func(_ *state, s *session) error {
		op := s.verify
		if op == nil {
			return ck.CKR_OPERATION_NOT_INITIALIZED
		}
		s.verify = nil
		return op.check(nil, sig, true)
	})
}

func (op *verifyOp) check(data, sig []byte, final bool) error {
	input := data
	if final {
		input = op.buf
	}
	k := op.k
	if len(sig) != k.SigLen {
		return ck.CKR_SIGNATURE_LEN_RANGE
	}
	if op.md.Hash != 0 {
		h, _ := objects.HashByCrypto(op.md.Hash)
		var digest []byte
		if final {
			digest = op.hasher.Sum(nil)
		} else {
			hh := op.md.Hash.New()
			hh.Write(data)
			digest = hh.Sum(nil)
		}
		return k.VerifyDigest(op.md.Scheme, h, digest, sig, op.pss.saltLen)
	}
	switch op.md.Scheme {
	case objects.SchemePKCS1:
		// Raw PKCS#1 v1.5: the input is signed as given (a DigestInfo).
		if rsa.VerifyPKCS1v15(k.RSAPub, 0, input, sig) != nil {
			return ck.CKR_SIGNATURE_INVALID
		}
		return nil
	case objects.SchemePSS:
		if len(input) != op.pss.hash.Hash.Size() {
			return ck.CKR_DATA_LEN_RANGE
		}
		return k.VerifyDigest(objects.SchemePSS, op.pss.hash, input, sig, op.pss.saltLen)
	default: // ECDSA over the given hash
		return k.VerifyDigest(objects.SchemeECDSA, objects.HashAlg{}, input, sig, 0)
	}
}
