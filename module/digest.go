package module

import (
	"fmt"
	"hash"

	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/objects"
)

// digestOp is a session's active digest.
type digestOp struct {
	h      objects.HashAlg
	hasher hash.Hash
	multi  bool // C_DigestUpdate, C_DigestKey or C_DigestFinal was called
	single bool // C_Digest was called (a length query, a buffer too small)
}

// DigestInit is C_DigestInit (SHA-1, SHA-224, SHA-256, SHA-384, SHA-512,
// computed locally).
func (m *Module) DigestInit(h SessionHandle, mech ck.Mechanism) error {
	return m.withSession("DigestInit", h, func(_ *state, s *session) error {
		ha, ok := objects.HashByDigestMech(mech.Type)
		if !ok {
			return ck.CKR_MECHANISM_INVALID
		}
		if s.digest != nil {
			return ck.CKR_OPERATION_ACTIVE
		}
		s.digest = &digestOp{h: ha, hasher: ha.Hash.New()}
		return nil
	})
}

// Digest is C_Digest, with C_Sign's rules: a length query or
// CKR_BUFFER_TOO_SMALL keeps the operation, which then can only end with
// C_Digest; any other answer ends it, CKR_OPERATION_ACTIVE after
// C_DigestUpdate included.
func (m *Module) Digest(h SessionHandle, data, out []byte) (n int, err error) {
	err = m.withSession("Digest", h, func(_ *state, s *session) error {
		op := s.digest
		if op == nil {
			return ck.CKR_OPERATION_NOT_INITIALIZED
		}
		if op.multi {
			s.digest = nil
			return fmt.Errorf("C_Digest after C_DigestUpdate: %w", ck.CKR_OPERATION_ACTIVE)
		}
		op.single = true
		size := op.h.Hash.Size()
		if out == nil {
			n = size
			return nil
		}
		if len(out) < size {
			n = size
			return ck.CKR_BUFFER_TOO_SMALL
		}
		s.digest = nil
		hh := op.h.Hash.New()
		hh.Write(data)
		n = copy(out, hh.Sum(nil))
		return nil
	})
	return n, err
}

// continueDigest is the common start of the multi-part calls: the active
// digest, marked multi-part; after a single-part C_Digest began the
// operation it ends it with CKR_OPERATION_ACTIVE. Called with s.mu held
// (inside withSession's f).
func (s *session) continueDigest(fn string) (*digestOp, error) {
	op := s.digest
	switch {
	case op == nil:
		return nil, ck.CKR_OPERATION_NOT_INITIALIZED
	case op.single:
		s.digest = nil
		return nil, fmt.Errorf("%s after a single-part C_Digest: %w", fn, ck.CKR_OPERATION_ACTIVE)
	}
	op.multi = true
	return op, nil
}

// DigestUpdate is C_DigestUpdate.
func (m *Module) DigestUpdate(h SessionHandle, data []byte) error {
	return m.withSession("DigestUpdate", h, func(_ *state, s *session) error {
		op, err := s.continueDigest("C_DigestUpdate")
		if err != nil {
			return err
		}
		op.hasher.Write(data)
		return nil
	})
}

// DigestKey is C_DigestKey: no key on this token can be digested (private
// keys are sensitive, and there are no secret keys). Like a failed
// C_DigestUpdate, the failure ends the operation.
func (m *Module) DigestKey(h SessionHandle, key ObjectHandle) error {
	return m.withSession("DigestKey", h, func(_ *state, s *session) error {
		if _, err := s.continueDigest("C_DigestKey"); err != nil {
			return err
		}
		s.digest = nil
		if o := s.tok.objects().Get(key); o == nil || !s.tok.visible(o) {
			return ck.CKR_KEY_HANDLE_INVALID
		}
		return ck.CKR_KEY_INDIGESTIBLE
	})
}

// DigestFinal is C_DigestFinal, with C_Digest's buffer rules.
func (m *Module) DigestFinal(h SessionHandle, out []byte) (n int, err error) {
	err = m.withSession("DigestFinal", h, func(_ *state, s *session) error {
		op, err := s.continueDigest("C_DigestFinal")
		if err != nil {
			return err
		}
		n = op.h.Hash.Size()
		if out == nil {
			return nil
		}
		if len(out) < n {
			return ck.CKR_BUFFER_TOO_SMALL
		}
		s.digest = nil
		n = copy(out, op.hasher.Sum(nil))
		return nil
	})
	return n, err
}
