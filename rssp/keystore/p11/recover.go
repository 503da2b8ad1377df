//go:build cgo

package p11

// Losing the token and getting it back: when an operation finds the token
// gone, the Backend stops using its sessions (every call fails at once
// with an error wrapping keystore.ErrUnavailable) and a goroutine re-opens
// the token, with a growing wait between attempts.

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/miekg/pkcs11"
)

// lose marks the token lost and wakes the re-opening goroutine, once per
// outage. The caller holds opMu for reading (b.lost is stable).
func (b *Backend) lose(cause error) {
	if !b.down.CompareAndSwap(false, true) {
		return
	}
	b.downMu.Lock()
	b.downCause, b.downSince, b.nextTry = cause, time.Now(), time.Now().Add(b.minWait)
	b.downMu.Unlock()
	close(b.lost) // wakes the calls waiting for a session
	b.log.Error("PKCS#11 token lost; signing stops until it is re-opened", "error", cause)
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// unavailable is the error of a call made while the token is away; cause,
// when not nil, replaces the cause of the outage in the message.
func (b *Backend) unavailable(cause error) error {
	b.downMu.Lock()
	defer b.downMu.Unlock()
	return &unavailableError{token: b.label, cause: cmpErr(cause, b.downCause), retry: time.Until(b.nextTry)}
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// Available fails at once, without calling the token, while the token is
// being re-opened (keystore.Availability).
func (b *Backend) Available() error {
	if b.closed.Load() {
		return keystore.ErrClosed
	}
	if b.down.Load() {
		return b.unavailable(nil)
	}
	return nil
}

// supervise re-opens the token each time lose asks, until Close.
func (b *Backend) supervise() {
	defer b.bg.Done()
	for {
		select {
		case <-b.done:
			return
		case <-b.kick:
		}
		b.recoverToken()
	}
}

// recoverToken tries to re-open the token until it succeeds or the
// Backend is closed: first after ReopenMinWait, then with the wait doubled
// after each failure, up to ReopenMaxWait, so that a dead HSM is asked
// rarely.
func (b *Backend) recoverToken() {
	wait := b.minWait
	for attempt := 1; ; attempt++ {
		b.downMu.Lock()
		b.nextTry = time.Now().Add(wait)
		since := b.downSince
		b.downMu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-b.done:
			t.Stop()
			return
		case <-t.C:
		}
		err := b.reopen()
		if err == nil {
			b.log.Info("PKCS#11 token re-opened; signing again", "attempts", attempt,
				"outage", time.Since(since).Round(time.Millisecond).String(), "sessions", b.live.Load())
			return
		}
		if errors.Is(err, keystore.ErrClosed) {
			return
		}
		wait = min(2*wait, b.maxWait)
		b.downMu.Lock()
		b.downCause = err
		b.downMu.Unlock()
		b.log.Warn("PKCS#11 token still unavailable", "attempt", attempt, "error", err, "next_attempt_in", wait.String())
	}
}

// reopen drops the sessions, re-initialises the library when it is ours
// (SoftHSM2 sees a token store again only after C_Finalize and
// C_Initialize), finds the token again, opens the sessions and logs in.
// It holds opMu for writing, so no operation of this Backend is in flight,
// and the module's use lock for writing, so no operation of another
// Backend on the same library is either.
func (b *Backend) reopen() error {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	if b.closed.Load() {
		return keystore.ErrClosed
	}
	m := b.mod
	m.use.Lock()
	defer m.use.Unlock()

	var old []pkcs11.SessionHandle
	for len(b.pool) > 0 {
		old = append(old, <-b.pool)
	}
	b.live.Store(0)
	b.handles.Purge()
	// fresh: the library was re-initialised (or finalized by a failed
	// attempt) since our sessions were opened.
	fresh := b.gen != m.gen.Load()
	if !fresh && m.initialized.Load() {
		// Our sessions are the library's current ones: let them go.
		if b.loggedIn {
			m.dropLogin(b.slot)
		}
		if !m.ownsInit {
			for _, sh := range old {
				_ = m.ctx.CloseSession(sh) // errors expected: the token is gone
			}
		}
	}
	// Otherwise the library was re-initialised since they were opened:
	// they and the login are gone already.
	b.loggedIn = false
	if m.ownsInit && (!fresh || !m.initialized.Load()) {
		if err := m.reinitLocked(); err != nil {
			return err
		}
	} else if !m.initialized.Load() {
		return errors.New("p11: the PKCS#11 library is not initialised, and something else in the process initialised it")
	}
	b.gen = m.gen.Load()

	slot, _, err := findToken(m.ctx, b.label)
	if err != nil {
		return err
	}
	var sessions []pkcs11.SessionHandle
	for range b.size {
		sh, err := m.ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if errors.Is(err, pkcs11.Error(pkcs11.CKR_SESSION_COUNT)) && len(sessions) > 0 {
			break
		}
		if err != nil {
			for _, sh := range sessions {
				_ = m.ctx.CloseSession(sh)
			}
			return fmt.Errorf("p11: open session: %w", err)
		}
		sessions = append(sessions, sh)
	}
	if err := m.login(slot, sessions[0], b.pin); err != nil {
		for _, sh := range sessions {
			_ = m.ctx.CloseSession(sh)
		}
		return loginError(b.label, err)
	}
	b.loggedIn = true
	b.slot = slot
	if w := b.witnessRef(); w != nil {
		if _, err := findKeyObject(m.ctx, sessions[0], w); err != nil {
			// The token is back without that key: a matter of that key,
			// not of the token (Sign says ErrKeyNotFound).
			b.log.Error("PKCS#11 token re-opened without a key it had", "cka_id", fmt.Sprintf("%x", w), "error", err)
			b.setWitness(nil, w)
		}
	}
	for _, sh := range sessions {
		b.pool <- sh
	}
	b.live.Store(int64(len(sessions)))
	b.lost = make(chan struct{})
	b.reopened.Add(1)
	b.down.Store(false)
	return nil
}

// witnessRef is the CKA_ID of a key the Backend knows in the token, which
// Check looks for; nil when it knows none.
func (b *Backend) witnessRef() []byte {
	if w := b.witness.Load(); w != nil {
		return *w
	}
	return nil
}

// setWitness makes ref the witness key if the Backend has none yet, or
// forgets the witness if it is old (a deleted key). It costs an atomic
// load when there is nothing to change (Sign calls it each time).
func (b *Backend) setWitness(ref, old []byte) {
	w := b.witness.Load()
	switch {
	case old != nil && w != nil && bytes.Equal(*w, old):
		b.witness.CompareAndSwap(w, nil)
	case ref != nil && w == nil:
		c := bytes.Clone(ref)
		b.witness.CompareAndSwap(nil, &c)
	}
}

// firstKeyID is the CKA_ID of some private key in the token, nil if none.
func firstKeyID(c ctxAPI, sh pkcs11.SessionHandle) []byte {
	objs, err := findObjects(c, sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)}, 1)
	if err != nil || len(objs) == 0 {
		return nil
	}
	attrs, err := c.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, nil)})
	if err != nil || len(attrs) == 0 || len(attrs[0].Value) == 0 {
		return nil
	}
	return attrs[0].Value
}
