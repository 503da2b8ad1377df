package module

import (
	"github.com/csctoken/csctoken/module/ck"
)

// SessionCancel is C_SessionCancel (PKCS#11 3.0): it ends the session's
// active operations named in flags (CKF_SIGN, CKF_VERIFY, CKF_DIGEST;
// the token has no other operations, so other flags have nothing to end).
// A signature waiting on the service or on the consent page is cancelled:
// its C_Sign returns CKR_FUNCTION_CANCELED without a signature.
func (m *Module) SessionCancel(h SessionHandle, flags uint) (err error) {
	defer m.finish("SessionCancel", &err)
	_, s, err := m.session(h)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
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
	return nil
}
