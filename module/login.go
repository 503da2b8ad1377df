package module

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/objects"
)

// Login is C_Login. pin is nil when pPin is NULL.
//
//   - CKU_USER: authenticates to the service (browser when needed), lists
//     the credentials (in the background when a listing, cached or not,
//     is known: see below) and, in pin mode, keeps the PIN. Every enabled SCAL1
//     credential with a PIN factor is authorized right away for
//     min(multisign, PreauthCap) signatures: a wrong PIN is
//     CKR_PIN_INCORRECT, a locked credential CKR_PIN_LOCKED, and the SADs
//     are kept as pre-authorization. In browser mode the PIN is ignored.
//   - CKU_SO: the token has no security officer. As PKCS#11 says for
//     any SO login: CKR_SESSION_READ_ONLY_EXISTS while a read-only
//     session with the token is open, else
//     CKR_USER_ANOTHER_ALREADY_LOGGED_IN while the user is logged in;
//     otherwise CKR_PIN_LOCKED, the token's "no SO" answer (as if the SO
//     PIN were locked: CKU_SO is a valid type, so not
//     CKR_USER_TYPE_INVALID, and the PIN value is never the problem).
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
		if all, rw := st.sessionCounts(s.tok); all > rw {
			return ck.CKR_SESSION_READ_ONLY_EXISTS
		}
		if s.tok.isLoggedIn() {
			return ck.CKR_USER_ANOTHER_ALREADY_LOGGED_IN
		}
		return fmt.Errorf("the token has no security officer: %w", ck.CKR_PIN_LOCKED)
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
		preauth, err = m.preauthorize(ctx, st, s, pin, pools)
		if err != nil && !listed && errors.Is(err, ErrRejected) && ctx.Err() == nil {
			// A credential of the cached listing may be gone or changed:
			// list, and check the PIN on what the service has now.
			t.log.Info("authorization refused on the cached listing; listing again", "err", err.Error())
			if rerr := t.refresh(ctx); rerr == nil {
				pools = map[string]*sadPool{}
				preauth, err = m.preauthorize(ctx, st, s, pin, pools)
			}
		}
		if err != nil {
			return err
		}
	}
	t.mu.Lock()
	t.loggedIn = true
	if !t.browserMode() {
		clear(t.pin)
		t.pin = bytes.Clone(pin) // the token's copy; cgo wipes the caller's
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
func (m *Module) preauthorize(ctx context.Context, st *state, s *session, pin []byte, pools map[string]*sadPool) (*background, error) {
	t := s.tok
	var keys []*objects.KeyInfo
	for _, k := range t.objects().Keys {
		if k.Cred.Enabled && k.Cred.Auth == AuthPIN && k.Cred.SCAL <= 1 {
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
	return m.preauthorizeLater(st, t, bytes.Clone(pin), rest, pools), nil
}

// checkPIN is C_Login's PIN check: it authorizes k's credential with pin
// for a batch of signatures, notes the PIN result and fills pools.
func (m *Module) checkPIN(ctx context.Context, st *state, s *session, pin []byte, k *objects.KeyInfo, pools map[string]*sadPool) error {
	t := s.tok
	n := st.batchSize(k.Cred)
	req := authorizeRequest(k.Cred, n)
	req.PIN = pin
	sad, err := t.svc.Authorize(ctx, req)
	switch {
	case errors.Is(err, ErrPINIncorrect) || errors.Is(err, ErrPINLocked):
		t.notePINResult(err)
		return fmt.Errorf("authorize: %w", err)
	case err != nil:
		return m.ctxErr(st, s, fmt.Errorf("authorize: %w", err))
	}
	t.notePINResult(nil)
	p := newSADPool()
	p.put(sad, n)
	pools[k.Cred.ID] = p
	return nil
}

// preauthorizeLater pre-authorizes keys in the background, each within the
// service's timeout, until Finalize or logout stops it. Each key's pool
// stays locked until its authorization ends, so a signature with that
// credential waits for it instead of sending another (as long as its own
// context lets it: C_SessionCancel, C_CloseSession and its deadline end
// the wait). A failure leaves the
// pool empty (the credential then authorizes at its first signature) and
// is logged; a PIN failure is kept in the pool as that first signature's
// answer, so the PIN is not sent again. A refused authorization
// (ErrRejected: the cached listing may be out of date) starts a listing.
// pin is the background's own copy, wiped when the last authorization
// ends.
func (m *Module) preauthorizeLater(st *state, t *token, pin []byte, keys []*objects.KeyInfo, pools map[string]*sadPool) *background {
	ctx, cancel := context.WithTimeout(st.ctx, t.cfg.Timeout)
	var wg sync.WaitGroup
	var rejected atomic.Bool
	for _, k := range keys {
		p := newSADPool()
		p.lock() // unlocked by the goroutine below
		pools[k.Cred.ID] = p
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.unlock()
			defer func() {
				if r := recover(); r != nil {
					t.log.Error("panic in background pre-authorization", "credential", k.Cred.ID, "panic", fmt.Sprint(r))
				}
			}()
			n := st.batchSize(k.Cred)
			req := authorizeRequest(k.Cred, n)
			req.PIN = pin
			sad, err := t.svc.Authorize(ctx, req)
			if err != nil {
				switch {
				case errors.Is(err, ErrPINIncorrect) || errors.Is(err, ErrPINLocked):
					p.err = fmt.Errorf("pre-authorization at login: %w", err)
				case errors.Is(err, ErrRejected):
					rejected.Store(true)
				}
				t.log.Warn("pre-authorization failed; the credential authorizes at its first signature",
					"credential", k.Cred.ID, "err", err.Error())
				return
			}
			p.set(sad, n)
		}()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		wg.Wait()
		clear(pin)
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
