package module

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

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

// OpenSession is C_OpenSession. Read-write sessions are accepted on the
// write-protected token (DESIGN.md); CKF_SERIAL_SESSION is required.
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

// Login is C_Login. pin is nil when pPin is NULL.
//
//   - CKU_USER: authenticates to the service (browser when needed), lists
//     the credentials (in the background when a listing, cached or not,
//     is known: see below) and, in pin mode, keeps the PIN. Every enabled SCAL1
//     credential with a PIN factor is authorized right away for
//     min(multisign, PreauthCap) signatures: a wrong PIN is
//     CKR_PIN_INCORRECT, a locked credential CKR_PIN_LOCKED, and the SADs
//     are kept as pre-authorization. In browser mode the PIN is ignored.
//   - CKU_SO: there is no security officer; always CKR_PIN_LOCKED (as if
//     the SO PIN were locked; CKU_SO is a valid type, so not
//     CKR_USER_TYPE_INVALID).
//   - CKU_CONTEXT_SPECIFIC: the per-signature factor for a key with
//     CKA_ALWAYS_AUTHENTICATE, right after C_SignInit.
func (m *Module) Login(h SessionHandle, userType uint, pin []byte) (err error) {
	defer m.finish("Login", &err)
	st, s, err := m.session(h)
	if err != nil {
		return err
	}
	switch userType {
	case ck.CKU_SO:
		return ck.CKR_PIN_LOCKED
	case ck.CKU_CONTEXT_SPECIFIC:
		return m.contextLogin(st, s, pin)
	case ck.CKU_USER:
	default:
		return ck.CKR_USER_TYPE_INVALID
	}
	t := s.tok
	if pin == nil && !t.browserMode() {
		return ck.CKR_ARGUMENTS_BAD
	}
	t.loginMu.Lock()
	defer t.loginMu.Unlock()
	if t.isLoggedIn() {
		return ck.CKR_USER_ALREADY_LOGGED_IN
	}
	if t.svc == nil {
		return errNoService
	}
	ictx, cancel := context.WithTimeout(s.ctx, st.opts.InteractiveTimeout)
	defer cancel()
	if err := t.svc.Login(ictx, true); err != nil {
		return m.ctxErr(st, s, fmt.Errorf("service login: %w", err))
	}
	// One deadline (the service's timeout) bounds what follows the service
	// login: the listing (within its own list_timeout) and the PIN check.
	ctx, cancelCtx := context.WithTimeout(s.ctx, t.cfg.Timeout)
	defer cancelCtx()
	// The listing is waited for when the token has none (nor a cached
	// one), or without background refresh; otherwise the known one is used
	// and, when older than the TTL, refreshed in the background, so that a
	// program's first signature waits on no listing.
	listed := false
	if t.neverListed() || st.opts.NoBackgroundRefresh {
		if err := t.refresh(ctx); err != nil {
			if s.ctx.Err() != nil {
				return m.ctxErr(st, s, err)
			}
			// Keep going on the cached listing.
			t.log.Warn("listing at login failed; using the cached one", "err", err.Error())
		}
		listed = true
	} else {
		t.maybeRefresh()
	}
	pools := map[string]*sadPool{}
	var preauth *background
	if !t.browserMode() {
		var err error
		preauth, err = m.preauthorize(ctx, st, s, string(pin), pools)
		if err != nil && !listed && errors.Is(err, ErrRejected) && ctx.Err() == nil {
			// A credential of the cached listing may be gone or changed:
			// list, and check the PIN on what the service has now.
			t.log.Info("authorization refused on the cached listing; listing again", "err", err.Error())
			if rerr := t.refresh(ctx); rerr == nil {
				pools = map[string]*sadPool{}
				preauth, err = m.preauthorize(ctx, st, s, string(pin), pools)
			}
		}
		if err != nil {
			return err
		}
	}
	t.mu.Lock()
	t.loggedIn = true
	if !t.browserMode() {
		t.pin = string(pin)
	}
	t.sads = pools
	t.preauth = preauth
	t.mu.Unlock()
	t.log.Info("logged in")
	return nil
}

// maxPreauthorized bounds the credentials pre-authorized at C_Login; the
// others are authorized at their first signature, with the same PIN.
const maxPreauthorized = 8

// preauthorize checks the PIN and pre-authorizes SCAL1 signatures: on the
// first enabled SCAL1 PIN credential alone (a mistyped PIN then costs one
// credential one attempt, not every credential), then, the PIN being
// right, on up to maxPreauthorized-1 more in the background (a user with a
// thousand credentials does not send a thousand authorizations, each an
// expensive PIN check on the service, at every login, and C_Login waits
// for one of them only). It fills pools with the resulting SADs and returns
// the background work (nil when there is none).
func (m *Module) preauthorize(ctx context.Context, st *state, s *session, pin string, pools map[string]*sadPool) (*background, error) {
	t := s.tok
	var keys []*keyInfo
	for _, k := range t.objects().keys {
		if k.cred.Enabled && k.cred.Auth == AuthPIN && k.cred.SCAL <= 1 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	if err := m.checkPIN(ctx, st, s, pin, keys[0], pools); err != nil {
		return nil, err
	}
	rest := keys[1:min(len(keys), maxPreauthorized)]
	if len(rest) == 0 {
		return nil, nil
	}
	return m.preauthorizeLater(st, t, pin, rest, pools), nil
}

// checkPIN is C_Login's PIN check: it authorizes k's credential with pin
// for a batch of signatures, notes the PIN result and fills pools.
func (m *Module) checkPIN(ctx context.Context, st *state, s *session, pin string, k *keyInfo, pools map[string]*sadPool) error {
	t := s.tok
	n := st.batchSize(k.cred)
	sad, err := t.svc.Authorize(ctx, AuthorizeRequest{CredentialID: k.cred.ID, NumSignatures: n, PIN: pin})
	switch {
	case errors.Is(err, ErrPINIncorrect) || errors.Is(err, ErrPINLocked):
		t.notePINResult(err)
		return fmt.Errorf("authorize: %w", err)
	case err != nil:
		return m.ctxErr(st, s, fmt.Errorf("authorize: %w", err))
	}
	t.notePINResult(nil)
	p := &sadPool{}
	p.put(sad, n)
	pools[k.cred.ID] = p
	return nil
}

// preauthorizeLater pre-authorizes keys in the background, each within the
// service's timeout, until Finalize or logout stops it. Each key's pool
// stays locked until its authorization ends, so a signature with that
// credential waits for it instead of sending another. A failure leaves the
// pool empty (the credential then authorizes at its first signature) and
// is logged; a PIN failure is kept in the pool as that first signature's
// answer, so the PIN is not sent again. A refused authorization
// (ErrRejected: the cached listing may be out of date) starts a listing.
func (m *Module) preauthorizeLater(st *state, t *token, pin string, keys []*keyInfo, pools map[string]*sadPool) *background {
	ctx, cancel := context.WithTimeout(st.ctx, t.cfg.Timeout)
	var wg sync.WaitGroup
	var rejected atomic.Bool
	for _, k := range keys {
		p := &sadPool{}
		p.mu.Lock() // unlocked by the goroutine below
		pools[k.cred.ID] = p
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.mu.Unlock()
			defer func() {
				if r := recover(); r != nil {
					t.log.Error("panic in background pre-authorization", "credential", k.cred.ID, "panic", fmt.Sprint(r))
				}
			}()
			n := st.batchSize(k.cred)
			sad, err := t.svc.Authorize(ctx, AuthorizeRequest{CredentialID: k.cred.ID, NumSignatures: n, PIN: pin})
			if err != nil {
				switch {
				case errors.Is(err, ErrPINIncorrect) || errors.Is(err, ErrPINLocked):
					p.err = fmt.Errorf("pre-authorization at login: %w", err)
				case errors.Is(err, ErrRejected):
					rejected.Store(true)
				}
				t.log.Warn("pre-authorization failed; the credential authorizes at its first signature",
					"credential", k.cred.ID, "err", err.Error())
				return
			}
			p.set(sad, n)
		}()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		wg.Wait()
		cancel()
		if rejected.Load() && st.ctx.Err() == nil {
			t.log.Info("pre-authorization refused on the cached listing; listing again")
			if err := t.refresh(st.ctx); err != nil {
				t.log.Info("listing after a refused pre-authorization failed", "err", err.Error())
			}
		}
	}()
	return &background{stop: cancel, done: done}
}

// batchSize is how many signatures one SCAL1 authorization of c asks for:
// the credential's multisign, at most Options.PreauthCap.
func (st *state) batchSize(c Credential) int {
	return min(max(c.Multisign, 1), st.opts.PreauthCap)
}

// Logout is C_Logout: forgets the PIN and every SAD; the service token is
// kept (`csctoken logout` forgets that).
func (m *Module) Logout(h SessionHandle) (err error) {
	defer m.finish("Logout", &err)
	_, s, err := m.session(h)
	if err != nil {
		return err
	}
	if !s.tok.isLoggedIn() {
		return ck.CKR_USER_NOT_LOGGED_IN
	}
	s.tok.logout()
	return nil
}

// InitPIN is C_InitPIN: needs the SO, who never logs in.
func (m *Module) InitPIN(h SessionHandle, pin []byte) (err error) {
	defer m.finish("InitPIN", &err)
	_, s, err := m.session(h)
	if err != nil {
		return err
	}
	if !s.rw {
		return ck.CKR_SESSION_READ_ONLY
	}
	return ck.CKR_USER_NOT_LOGGED_IN
}

// SetPIN is C_SetPIN: PINs are managed by the service.
func (m *Module) SetPIN(h SessionHandle, oldPIN, newPIN []byte) (err error) {
	defer m.finish("SetPIN", &err)
	_, s, err := m.session(h)
	if err != nil {
		return err
	}
	if !s.rw {
		return ck.CKR_SESSION_READ_ONLY
	}
	return ck.CKR_TOKEN_WRITE_PROTECTED
}

// writeOp answers every call that would create or change objects:
// CKR_SESSION_READ_ONLY for a token object in a read-only session, else
// CKR_TOKEN_WRITE_PROTECTED.
func (m *Module) writeOp(op string, h SessionHandle, tmpl []ck.Attribute) (err error) {
	defer m.finish(op, &err)
	_, s, err := m.session(h)
	if err != nil {
		return err
	}
	if !s.rw {
		for _, a := range tmpl {
			if a.Type == ck.CKA_TOKEN && len(a.Value) == 1 && a.Value[0] != 0 {
				return ck.CKR_SESSION_READ_ONLY
			}
		}
	}
	return ck.CKR_TOKEN_WRITE_PROTECTED
}

// CreateObject is C_CreateObject.
func (m *Module) CreateObject(h SessionHandle, tmpl []ck.Attribute) (ObjectHandle, error) {
	return 0, m.writeOp("CreateObject", h, tmpl)
}

// CopyObject is C_CopyObject.
func (m *Module) CopyObject(h SessionHandle, obj ObjectHandle, tmpl []ck.Attribute) (_ ObjectHandle, err error) {
	defer m.finish("CopyObject", &err)
	if _, err := m.lookupObject(h, obj); err != nil {
		return 0, err
	}
	return 0, m.writeOp("CopyObject", h, tmpl)
}

// DestroyObject is C_DestroyObject.
func (m *Module) DestroyObject(h SessionHandle, obj ObjectHandle) (err error) {
	defer m.finish("DestroyObject", &err)
	if _, err := m.lookupObject(h, obj); err != nil {
		return err
	}
	return m.writeOp("DestroyObject", h, nil)
}

// SetAttributeValue is C_SetAttributeValue.
func (m *Module) SetAttributeValue(h SessionHandle, obj ObjectHandle, tmpl []ck.Attribute) (err error) {
	defer m.finish("SetAttributeValue", &err)
	if _, err := m.lookupObject(h, obj); err != nil {
		return err
	}
	return m.writeOp("SetAttributeValue", h, nil)
}

// GenerateKey is C_GenerateKey (the C layer also uses it for
// C_GenerateKeyPair, C_UnwrapKey and C_DeriveKey, which all create objects).
func (m *Module) GenerateKey(h SessionHandle, tmpl []ck.Attribute) (ObjectHandle, error) {
	return 0, m.writeOp("GenerateKey", h, tmpl)
}

// lookupObject finds an object visible to the session.
func (m *Module) lookupObject(h SessionHandle, obj ObjectHandle) (*object, error) {
	_, s, err := m.session(h)
	if err != nil {
		return nil, err
	}
	o := s.tok.objects().get(obj)
	if o == nil || !s.tok.visible(o) {
		return nil, ck.CKR_OBJECT_HANDLE_INVALID
	}
	return o, nil
}

// GetObjectSize is C_GetObjectSize.
func (m *Module) GetObjectSize(h SessionHandle, obj ObjectHandle) (_ uint, err error) {
	defer m.finish("GetObjectSize", &err)
	o, err := m.lookupObject(h, obj)
	if err != nil {
		return 0, err
	}
	return o.size(), nil
}

// GetAttributeValue is C_GetAttributeValue with the per-attribute rules
// of AttributeRequest; the returned error is the combined code.
func (m *Module) GetAttributeValue(h SessionHandle, obj ObjectHandle, tmpl []AttributeRequest) (err error) {
	defer m.finish("GetAttributeValue", &err)
	o, err := m.lookupObject(h, obj)
	if err != nil {
		return err
	}
	return o.getAttributes(tmpl)
}

// FindObjectsInit is C_FindObjectsInit: the matching objects are chosen
// now, from memory.
func (m *Module) FindObjectsInit(h SessionHandle, tmpl []ck.Attribute) (err error) {
	defer m.finish("FindObjectsInit", &err)
	_, s, err := m.session(h)
	if err != nil {
		return err
	}
	t := s.tok
	t.maybeRefresh()
	var found []ObjectHandle
	for _, o := range t.objects().list {
		if t.visible(o) && o.matches(tmpl) {
			found = append(found, o.handle)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finding {
		return ck.CKR_OPERATION_ACTIVE
	}
	s.finding, s.find = true, found
	return nil
}

// FindObjects is C_FindObjects: up to max handles.
func (m *Module) FindObjects(h SessionHandle, max int) (out []ObjectHandle, err error) {
	defer m.finish("FindObjects", &err)
	_, s, err := m.session(h)
	if err != nil {
		return nil, err
	}
	if max < 0 {
		return nil, ck.CKR_ARGUMENTS_BAD
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.finding {
		return nil, ck.CKR_OPERATION_NOT_INITIALIZED
	}
	n := min(max, len(s.find))
	out = append([]ObjectHandle(nil), s.find[:n]...)
	s.find = s.find[n:]
	return out, nil
}

// FindObjectsFinal is C_FindObjectsFinal.
func (m *Module) FindObjectsFinal(h SessionHandle) (err error) {
	defer m.finish("FindObjectsFinal", &err)
	_, s, err := m.session(h)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.finding {
		return ck.CKR_OPERATION_NOT_INITIALIZED
	}
	s.finding, s.find = false, nil
	return nil
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
