package module

import (
	"github.com/csctoken/csctoken/module/ck"
)

// SessionCancel is C_SessionCancel (PKCS#11 3.0): it ends the session's
// active operations named in flags (CKF_SIGN, CKF_VERIFY, CKF_DIGEST;
// the token has no other operations, so other flags have nothing to end).
// A signature waiting on the service or on the consent page is cancelled:
// its C_Sign returns CKR_FUNCTION_CANCELED without a signature.
func (m *Module) SessionCancel(h SessionHandle, flags uint) error {
	return m.withSession("SessionCancel", h, func(_ *state, s *session) error {
		s.endOperations(flags)
		return nil
	})
}

// EndOperation ends the session's operations named in flags (CKF_SIGN,
// CKF_VERIFY, CKF_DIGEST) as C_SessionCancel does. The C layer calls it
// where PKCS#11 ends the active operation on arguments it cannot pass
// on: C_SignInit, C_VerifyInit or C_DigestInit with a NULL mechanism
// (PKCS#11 3.0 §5.11-5.13: that terminates the active operation), and
// C_Sign, C_SignFinal, C_Digest, C_DigestFinal, C_Verify or C_VerifyFinal
// with a NULL length pointer or a NULL buffer with a length (those calls
// end the operation whatever they answer, §5.2; the C layer then answers
// CKR_ARGUMENTS_BAD).
func (m *Module) EndOperation(h SessionHandle, flags uint) error {
	return m.withSession("EndOperation", h, func(_ *state, s *session) error {
		s.endOperations(flags)
		return nil
	})
}

// endOperations ends the operations named in flags; a signature in flight
// is cancelled. Called with s.mu held (inside withSession's f).
func (s *session) endOperations(flags uint) {
	if op := s.sign; op != nil && flags&ck.CKF_SIGN != 0 {
		if op.busy {
			op.canceled = true
			op.cancel()
		}
		s.sign = nil
	}
	if flags&ck.CKF_VERIFY != 0 {
		s.verify = nil
	}
	if flags&ck.CKF_DIGEST != 0 {
		s.digest = nil
	}
}
