//go:build cgo

package p11

// The pool of logged-in sessions every operation borrows from.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/miekg/pkcs11"
)

// withSession runs f on a borrowed session. It waits for one at most
// b.wait, and no longer than ctx allows. If the token forgot the login, it
// logs in again and retries f once.
func (b *Backend) withSession(ctx context.Context, f func(ctxAPI, pkcs11.SessionHandle) error) error {
	b.opMu.RLock()
	defer b.opMu.RUnlock()
	if b.closed.Load() {
		return keystore.ErrClosed
	}
	sh, err := b.borrow(ctx)
	if err != nil {
		return err
	}
	err = f(b.mod.ctx, sh)
	if errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN)) {
		if lerr := b.mod.ctx.Login(sh, pkcs11.CKU_USER, b.pin); lerr == nil || errors.Is(lerr, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
			b.log.Warn("token had logged out; logged in again")
			err = f(b.mod.ctx, sh)
		}
	}
	b.giveBack(sh, err)
	return err
}

// borrow takes an idle session.
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
	case <-b.done:
		return 0, keystore.ErrClosed
	}
}

// giveBack returns sh to the pool, replacing it first if opErr says the
// session is gone.
func (b *Backend) giveBack(sh pkcs11.SessionHandle, opErr error) {
	if !isDeadSession(opErr) {
		b.pool <- sh
		return
	}
	_ = b.mod.ctx.CloseSession(sh)
	nsh, err := b.mod.ctx.OpenSession(b.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		n := b.live.Add(-1)
		b.log.Error("PKCS#11 session lost and could not be reopened; pool shrinks", "error", opErr, "reopen_error", err, "sessions", n)
		return
	}
	b.log.Warn("PKCS#11 session lost; reopened", "error", opErr)
	b.pool <- nsh
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

// Check borrows a session and asks the token for its state: ready when the
// token answers and the session is logged in (the private keys are
// usable). A token that forgot the login is logged in again by
// withSession; a token that went away fails.
func (b *Backend) Check(ctx context.Context) error {
	return b.withSession(ctx, func(c ctxAPI, sh pkcs11.SessionHandle) error {
		info, err := c.GetSessionInfo(sh)
		if err != nil {
			return fmt.Errorf("p11: session state: %w", err)
		}
		if info.State != pkcs11.CKS_RW_USER_FUNCTIONS && info.State != pkcs11.CKS_RO_USER_FUNCTIONS {
			return pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN)
		}
		return nil
	})
}

// PoolStats reports the session pool.
func (b *Backend) PoolStats() keystore.PoolStats {
	live := int(b.live.Load())
	return keystore.PoolStats{
		Size: live, InUse: max(0, live-len(b.pool)),
		Waits: b.waits.Load(), Timeouts: b.fails.Load(),
	}
}
