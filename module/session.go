package module

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"

	"github.com/csctoken/csctoken/module/ck"
)

// SessionHandle is a CK_SESSION_HANDLE.
type SessionHandle uint

// SessionInfo is CK_SESSION_INFO.
type SessionInfo struct {
	SlotID      SlotID
	State       uint
	Flags       uint
	DeviceError uint
}

// session is one open session. Its mutex guards the operation state; it is
// never held over the network.
type session struct {
	h      SessionHandle
	tok    *token
	rw     bool
	ctx    context.Context // cancelled when the session closes
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	find    []ObjectHandle // remaining results; nil when no search is active
	finding bool
	sign    *signOp
	verify  *verifyOp
	digest  *digestOp
}

func (st *state) sessionCounts(t *token) (all, rw uint) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, s := range st.sessions {
		if s.tok == t {
			all++
			if s.rw {
				rw++
			}
		}
	}
	return all, rw
}

// session looks a handle up.
func (m *Module) session(h SessionHandle) (*state, *session, error) {
	st, err := m.state()
	if err != nil {
		return nil, nil, err
	}
	st.mu.Lock()
	s, ok := st.sessions[h]
	st.mu.Unlock()
	if !ok {
		return nil, nil, ck.CKR_SESSION_HANDLE_INVALID
	}
	return st, s, nil
}

// withSession is the frame of every method that works on one session's
// state: it recovers panics and maps the error (finish), looks h up and
// runs f with the session's mutex held, released when f returns. f must
// not wait on the network: what does (C_Sign, C_SignFinal) calls
// withSession once before and once after its remote call.
func (m *Module) withSession(op string, h SessionHandle, f func(st *state, s *session) error) (err error) {
	defer m.finish(op, &err)
	st, s, err := m.session(h)
	if err != nil {
		return err
	}
	return s.locked(func() error { return f(st, s) })
}

// locked runs f with s.mu held; the one place that takes the session's
// mutex for an operation, so no function receives it held.
func (s *session) locked(f func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return f()
}

// OpenSession is C_OpenSession. Read-write sessions are accepted on the
// write-protected token (docs/mapping.md); CKF_SERIAL_SESSION is required.
// Notification callbacks are never called.
func (m *Module) OpenSession(id SlotID, flags uint) (h SessionHandle, err error) {
	defer m.finish("OpenSession", &err)
	st, err := m.state()
	if err != nil {
		return 0, err
	}
	t, err := st.token(id)
	if err != nil {
		return 0, err
	}
	if flags&ck.CKF_SERIAL_SESSION == 0 {
		return 0, ck.CKR_SESSION_PARALLEL_NOT_SUPPORTED
	}
	ctx, cancel := context.WithCancel(st.ctx)
	s := &session{tok: t, rw: flags&ck.CKF_RW_SESSION != 0, ctx: ctx, cancel: cancel}
	st.mu.Lock()
	st.sessSeq++
	s.h = st.sessSeq
	st.sessions[s.h] = s
	st.mu.Unlock()
	return s.h, nil
}

// closeSessions removes sessions and logs a token out when its last
// session goes (PKCS#11: login state lives as long as the application has
// a session with the token).
func (st *state) closeSessions(match func(*session) bool) {
	st.mu.Lock()
	var closed []*session
	for h, s := range st.sessions {
		if match(s) {
			closed = append(closed, s)
			delete(st.sessions, h)
		}
	}
	remaining := map[*token]bool{}
	for _, s := range st.sessions {
		remaining[s.tok] = true
	}
	st.mu.Unlock()
	for _, s := range closed {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		if !remaining[s.tok] {
			s.tok.logout()
		}
	}
}

// CloseSession is C_CloseSession. A call in flight on the session is
// cancelled.
func (m *Module) CloseSession(h SessionHandle) (err error) {
	defer m.finish("CloseSession", &err)
	st, s, err := m.session(h)
	if err != nil {
		return err
	}
	st.closeSessions(func(x *session) bool { return x == s })
	return nil
}

// CloseAllSessions is C_CloseAllSessions.
func (m *Module) CloseAllSessions(id SlotID) (err error) {
	defer m.finish("CloseAllSessions", &err)
	st, err := m.state()
	if err != nil {
		return err
	}
	t, err := st.token(id)
	if err != nil {
		return err
	}
	st.closeSessions(func(x *session) bool { return x.tok == t })
	return nil
}

// GetSessionInfo is C_GetSessionInfo. No network I/O.
func (m *Module) GetSessionInfo(h SessionHandle) (info SessionInfo, err error) {
	defer m.finish("GetSessionInfo", &err)
	_, s, err := m.session(h)
	if err != nil {
		return SessionInfo{}, err
	}
	info = SessionInfo{SlotID: s.tok.slot, Flags: ck.CKF_SERIAL_SESSION}
	user := s.tok.isLoggedIn()
	switch {
	case s.rw && user:
		info.State = ck.CKS_RW_USER_FUNCTIONS
	case s.rw:
		info.State = ck.CKS_RW_PUBLIC_SESSION
	case user:
		info.State = ck.CKS_RO_USER_FUNCTIONS
	default:
		info.State = ck.CKS_RO_PUBLIC_SESSION
	}
	if s.rw {
		info.Flags |= ck.CKF_RW_SESSION
	}
	return info, nil
}

// ctxErr maps the cancellation of a session's context: Finalize →
// CKR_CRYPTOKI_NOT_INITIALIZED, CloseSession → CKR_SESSION_CLOSED.
func (m *Module) ctxErr(st *state, s *session, err error) error {
	if err == nil {
		return nil
	}
	// Whatever the error says, a cancelled module or session explains it
	// (an HTTP client may not wrap context.Canceled).
	if st.ctx.Err() != nil {
		return wrapRV(ck.CKR_CRYPTOKI_NOT_INITIALIZED, err)
	}
	if s.ctx.Err() != nil {
		return wrapRV(ck.CKR_SESSION_CLOSED, err)
	}
	return err
}

// GenerateRandom is C_GenerateRandom (crypto/rand).
func (m *Module) GenerateRandom(h SessionHandle, out []byte) (err error) {
	defer m.finish("GenerateRandom", &err)
	if _, _, err := m.session(h); err != nil {
		return err
	}
	if _, err := rand.Read(out); err != nil {
		return fmt.Errorf("random: %w", err)
	}
	return nil
}

// SeedRandom is C_SeedRandom.
func (m *Module) SeedRandom(h SessionHandle, seed []byte) (err error) {
	defer m.finish("SeedRandom", &err)
	if _, _, err := m.session(h); err != nil {
		return err
	}
	return ck.CKR_RANDOM_SEED_NOT_SUPPORTED
}

// GetFunctionStatus is C_GetFunctionStatus (legacy).
func (m *Module) GetFunctionStatus(h SessionHandle) (err error) {
	defer m.finish("GetFunctionStatus", &err)
	if _, _, err := m.session(h); err != nil {
		return err
	}
	return ck.CKR_FUNCTION_NOT_PARALLEL
}

// CancelFunction is C_CancelFunction (legacy).
func (m *Module) CancelFunction(h SessionHandle) error {
	return m.GetFunctionStatus(h)
}
