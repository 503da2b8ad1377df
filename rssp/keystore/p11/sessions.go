//go:build cgo

package p11

// The pool of logged-in sessions every operation borrows from.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/miekg/pkcs11"
)

// withSession runs f on a borrowed session. It waits for one at most
// b.wait, and no longer than ctx allows. If the token forgot the login, it
// logs in again and retries f once. If f's error says the token is gone,
// the token is re-opened in the background and the error wraps
// keystore.ErrUnavailable; until it is back, every call fails at once
// with such an error.
func (b *Backend) withSession(ctx context.Context, f func(ctxAPI, pkcs11.SessionHandle) error) error {
	if b.closed.Load() {
		return keystore.ErrClosed
	}
	if b.down.Load() {
		return b.unavailable(nil)
	}
	b.opMu.RLock()
	defer b.opMu.RUnlock()
	if b.closed.Load() {
		return keystore.ErrClosed
	}
	if b.down.Load() {
		return b.unavailable(nil)
	}
	sh, err := b.borrow(ctx)
	if err != nil {
		return err
	}
	defer func() { b.pool <- sh }()
	if b.down.Load() { // lost while this call waited for the session
		return b.unavailable(nil)
	}
	err = b.run(sh, f)
	if isTokenLost(err) {
		b.lose(err)
		return b.unavailable(err)
	}
	return err
}

// run calls f on sh with the library held for use (see module.use).
func (b *Backend) run(sh pkcs11.SessionHandle, f func(ctxAPI, pkcs11.SessionHandle) error) error {
	b.mod.use.RLock()
	defer b.mod.use.RUnlock()
	if b.gen != b.mod.gen.Load() {
		return fmt.Errorf("%w: the PKCS#11 library was re-initialised by another keystore on the same module", errTokenGone)
	}
	err := f(b.mod.ctx, sh)
	if errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN)) {
		if lerr := b.mod.ctx.Login(sh, pkcs11.CKU_USER, b.pin); lerr == nil || errors.Is(lerr, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
			b.log.Warn("token had logged out; logged in again")
			err = f(b.mod.ctx, sh)
		}
	}
	return err
}

// borrow takes an idle session. The caller holds opMu for reading.
func (b *Backend) borrow(ctx context.Context) (pkcs11.SessionHandle, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("p11: %w", err)
	}
	select {
	case sh := <-b.pool:
		return sh, nil
	default:
	}
	b.waits.Add(1)
	timer := time.NewTimer(b.wait)
	defer timer.Stop()
	select {
	case sh := <-b.pool:
		return sh, nil
	case <-ctx.Done():
		b.fails.Add(1)
		return 0, fmt.Errorf("p11: waiting for a session: %w", context.Cause(ctx))
	case <-timer.C:
		b.fails.Add(1)
		return 0, fmt.Errorf("%w after %v (%d sessions, all busy)", ErrPoolExhausted, b.wait, b.live.Load())
	case <-b.lost:
		return 0, b.unavailable(nil)
	case <-b.done:
		return 0, keystore.ErrClosed
	}
}

// poolSize applies Config.PoolSize's rules.
func poolSize(configured int, tokenMax uint) int {
	n := configured
	if n == 0 {
		n = max(4, 2*runtime.NumCPU())
	}
	n = max(n, runtime.NumCPU())
	if tokenMax != pkcs11.CK_EFFECTIVELY_INFINITE && tokenMax != pkcs11.CK_UNAVAILABLE_INFORMATION && uint(n) > tokenMax {
		n = int(tokenMax)
	}
	return n
}

// Check tells whether the Backend can sign now, for the readiness probe:
// the token describes itself (C_GetTokenInfo: a token that went away no
// longer does), the session is logged in (a token that forgot the login
// is logged in again by withSession), and a key the Backend has used is
// still found in the token (the first key in the token when it has used
// none yet). A failure that says the token is gone starts its re-opening.
// The result is reused for Config.CheckTTL, so that probes do not load
// the token; while the token is being re-opened, Check fails at once.
func (b *Backend) Check(ctx context.Context) error {
	if b.closed.Load() {
		return keystore.ErrClosed
	}
	if b.down.Load() {
		return b.unavailable(nil)
	}
	select {
	case b.checkSem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("p11: check: %w", context.Cause(ctx))
	}
	defer func() { <-b.checkSem }()
	gen := b.reopened.Load()
	if !b.checkAt.IsZero() && b.checkGen == gen && time.Since(b.checkAt) < b.checkTTL {
		return b.checkErr
	}
	err := b.withSession(ctx, b.check)
	b.checkAt, b.checkGen, b.checkErr = time.Now(), gen, err
	return err
}

// check is Check's question to the token.
func (b *Backend) check(c ctxAPI, sh pkcs11.SessionHandle) error {
	if err := b.tokenPresent(c); err != nil {
		return err
	}
	info, err := c.GetSessionInfo(sh)
	if err != nil {
		return fmt.Errorf("p11: session state: %w", err)
	}
	if info.State != pkcs11.CKS_RW_USER_FUNCTIONS && info.State != pkcs11.CKS_RO_USER_FUNCTIONS {
		return pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN)
	}
	w := b.witnessRef()
	if w == nil {
		return nil
	}
	objs, err := findObjects(c, sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_ID, w),
	}, 1)
	if err != nil {
		return mapError("find key", err, nil)
	}
	if len(objs) == 0 {
		return fmt.Errorf("%w: the key with CKA_ID %x is no longer found", errTokenGone, w)
	}
	return nil
}

// tokenPresent asks the token to describe itself: an error, or a token
// that is no longer the one opened, means it is gone.
func (b *Backend) tokenPresent(c ctxAPI) error {
	ti, err := c.GetTokenInfo(b.slot)
	if err != nil {
		return fmt.Errorf("%w: C_GetTokenInfo: %w", errTokenGone, err)
	}
	if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED == 0 || strings.TrimRight(ti.Label, " \x00") != b.label {
		return fmt.Errorf("%w: slot %d no longer holds the token", errTokenGone, b.slot)
	}
	return nil
}

// PoolStats reports the session pool.
func (b *Backend) PoolStats() keystore.PoolStats {
	live := int(b.live.Load())
	return keystore.PoolStats{
		Size: live, InUse: max(0, live-len(b.pool)),
		Waits: b.waits.Load(), Timeouts: b.fails.Load(),
	}
}
