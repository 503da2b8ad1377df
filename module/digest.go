package module

import (
	"hash"

	"github.com/csctoken/csctoken/module/ck"
)

// digestOp is a session's active digest.
type digestOp struct {
	h      hashAlg
	hasher hash.Hash
	multi  bool
}

// DigestInit is C_DigestInit (SHA-1, SHA-224, SHA-256, SHA-384, SHA-512,
// computed locally).
func (m *Module) DigestInit(h SessionHandle, mech ck.Mechanism) (err error) {
	defer m.finish("DigestInit", &err)
	_, s, err := m.session(h)
	if err != nil {
		return err
	}
	ha, ok := hashByDigestMech(mech.Type)
	if !ok {
		return ck.CKR_MECHANISM_INVALID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.digest != nil {
		return ck.CKR_OPERATION_ACTIVE
	}
	s.digest = &digestOp{h: ha, hasher: ha.hash.New()}
	return nil
}

// Digest is C_Digest, with C_Sign's buffer rules.
func (m *Module) Digest(h SessionHandle, data, out []byte) (n int, err error) {
	defer m.finish("Digest", &err)
	_, s, err := m.session(h)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	op := s.digest
	if op == nil {
		return 0, ck.CKR_OPERATION_NOT_INITIALIZED
	}
	if op.multi {
		return 0, ck.CKR_OPERATION_ACTIVE
	}
	size := op.h.hash.Size()
	if out == nil {
		return size, nil
	}
	if len(out) < size {
		return size, ck.CKR_BUFFER_TOO_SMALL
	}
	s.digest = nil
	hh := op.h.hash.New()
	hh.Write(data)
	return copy(out, hh.Sum(nil)), nil
}

// DigestUpdate is C_DigestUpdate.
func (m *Module) DigestUpdate(h SessionHandle, data []byte) (err error) {
	defer m.finish("DigestUpdate", &err)
	_, s, err := m.session(h)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.digest == nil {
		return ck.CKR_OPERATION_NOT_INITIALIZED
	}
	s.digest.multi = true
	s.digest.hasher.Write(data)
	return nil
}

// DigestKey is C_DigestKey: no key on this token can be digested (private
// keys are sensitive, and there are no secret keys).
func (m *Module) DigestKey(h SessionHandle, key ObjectHandle) (err error) {
	defer m.finish("DigestKey", &err)
	_, s, err := m.session(h)
	if err != nil {
		return err
	}
	s.mu.Lock()
	active := s.digest != nil
	s.mu.Unlock()
	if !active {
		return ck.CKR_OPERATION_NOT_INITIALIZED
	}
	if o := s.tok.objects().get(key); o == nil || !s.tok.visible(o) {
		return ck.CKR_KEY_HANDLE_INVALID
	}
	return ck.CKR_KEY_INDIGESTIBLE
}

// DigestFinal is C_DigestFinal, with C_Sign's buffer rules.
func (m *Module) DigestFinal(h SessionHandle, out []byte) (n int, err error) {
	defer m.finish("DigestFinal", &err)
	_, s, err := m.session(h)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	op := s.digest
	if op == nil {
		return 0, ck.CKR_OPERATION_NOT_INITIALIZED
	}
	size := op.h.hash.Size()
	if out == nil {
		return size, nil
	}
	if len(out) < size {
		return size, ck.CKR_BUFFER_TOO_SMALL
	}
	s.digest = nil
	return copy(out, op.hasher.Sum(nil)), nil
}
