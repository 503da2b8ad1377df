package module

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/objects"
)

// serviceCtx bounds a service call: the signature timeout, or the
// interactive one for browser steps.
func (t *token) serviceCtx(parent context.Context, interactive bool) (context.Context, context.CancelFunc) {
	if interactive {
		return context.WithTimeout(parent, t.st.opts.InteractiveTimeout)
	}
	return context.WithTimeout(parent, t.cfg.Timeout)
}

// browserErr turns a timeout of the consent page into ErrCanceled.
func browserErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrUnreachable) {
		return fmt.Errorf("%w: %w", ErrCanceled, err)
	}
	return err
}

// obtainSAD gets the SAD for one signature, per the credential's SCAL and
// authorization mode. pooled reports a SAD from a SCAL1 batch. ctx bounds
// the service calls; browser steps have the interactive timeout instead.
func (m *Module) obtainSAD(ctx context.Context, st *state, s *session, op *signOp, j signJob) (sad SAD, pooled bool, err error) {
	t := s.tok
	cred := op.k.Cred
	one := authorizeRequest(cred, 1)
	one.Hashes, one.HashAlgOID = [][]byte{j.digest}, j.h.OID
	batch := st.batchSize(cred)
	scal2 := cred.SCAL >= 2

	if t.browserMode() || cred.Auth == AuthBrowser {
		if !scal2 && batch > 1 && st.opts.SignWait > 0 {
			sad, err := m.consentBatch(st, t, op, cred.ID, batch)
			return sad, true, err
		}
		ictx, cancel := t.serviceCtx(op.ctx, true)
		defer cancel()
		if err := t.svc.Login(ictx, true); err != nil {
			return SAD{}, false, fmt.Errorf("service login: %w", browserErr(err))
		}
		if scal2 || batch == 1 {
			if limit := st.opts.HandshakeLimit; limit > 0 {
				// A signature after the host gave up its handshake is
				// made in vain, and this approval is bound to its hash.
				var lcancel context.CancelFunc
				ictx, lcancel = context.WithTimeout(ictx, limit)
				defer lcancel()
			}
			start := st.opts.Now()
			sad, err := t.svc.AuthorizeInBrowser(ictx, one)
			t.noteSlowConsent(st, cred.ID, st.opts.Now().Sub(start), 0, err)
			return sad, false, browserErr(err)
		}
		start := st.opts.Now()
		sad, err := t.pool(cred.ID).take(ictx, st.opts.Now(), batch, func(n int) (SAD, error) {
			req := one
			req.NumSignatures, req.Hashes, req.HashAlgOID = n, nil, ""
			sad, err := t.svc.AuthorizeInBrowser(ictx, req)
			t.noteSlowConsent(st, cred.ID, st.opts.Now().Sub(start), n-1, err)
			return sad, browserErr(err)
		})
		return sad, true, err
	}

	if !t.isLoggedIn() {
		return SAD{}, false, ck.CKR_USER_NOT_LOGGED_IN
	}

	if op.needCtxLogin {
		if op.ctxSAD != nil {
			return *op.ctxSAD, false, nil
		}
		req := one
		req.PIN = slices.Clone(op.ctxPIN)
		defer clear(req.PIN)
		sad, err := t.svc.Authorize(ctx, req)
		if errors.Is(err, ErrPINIncorrect) {
			return SAD{}, false, fmt.Errorf("context-specific PIN: %w: %w", err, ck.CKR_USER_NOT_LOGGED_IN)
		}
		return sad, false, err
	}

	// This signature's copy of the PIN, wiped when it is done (logout
	// wipes the token's own).
	var pin []byte
	if cred.Auth != AuthNone {
		pin = t.pinCopy()
		defer clear(pin)
	}
	// A wrong PIN at signing time logs the token out, so the program asks
	// for the PIN again (C_Sign answers CKR_USER_NOT_LOGGED_IN).
	pinFailure := func(err error) error {
		if errors.Is(err, ErrPINIncorrect) || errors.Is(err, ErrPINLocked) {
			t.notePINResult(err)
			t.logout()
			t.log.Info("PIN rejected at signing; logged out", "credential", cred.ID)
			if errors.Is(err, ErrPINLocked) {
				return err
			}
			return fmt.Errorf("%w: %w", err, ck.CKR_USER_NOT_LOGGED_IN)
		}
		return err
	}
	if scal2 {
		req := one
		req.PIN = pin
		sad, err := t.svc.Authorize(ctx, req)
		return sad, false, pinFailure(err)
	}
	sad, err = t.pool(cred.ID).take(ctx, st.opts.Now(), batch, func(n int) (SAD, error) {
		req := one
		req.NumSignatures, req.PIN = n, pin
		if n > 1 {
			req.Hashes, req.HashAlgOID = nil, ""
		}
		return t.svc.Authorize(ctx, req)
	})
	// pinFailure outside take: a PIN failure may also come from the
	// pre-authorization at login (sadPool.err).
	return sad, true, pinFailure(err)
}

// safeRemoteSign runs remoteSign, turning a panic into CKR_GENERAL_ERROR
// so the caller can reset the operation state.
func (m *Module) safeRemoteSign(st *state, s *session, op *signOp, j signJob) (sig []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			st.log.Error("panic recovered", "op", "remoteSign", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			sig, err = nil, wrapRV(ck.CKR_GENERAL_ERROR, errors.New("panic in remote signing"))
		}
	}()
	return m.remoteSign(st, s, op, j)
}

// remoteSign authorizes and signs one hash, normalises the signature to
// PKCS#11's form and checks it against the certificate's key.
func (m *Module) remoteSign(st *state, s *session, op *signOp, j signJob) ([]byte, error) {
	t := s.tok
	if t.svc == nil {
		return nil, errNoService
	}
	cred := op.k.Cred
	// One deadline (the service's timeout) bounds the whole signature:
	// authorize, signHash and a retry with a fresh SAD. In browser mode the
	// consent page has the interactive timeout, and signHash its own.
	browser := t.browserMode() || cred.Auth == AuthBrowser
	ctx, cancel := t.serviceCtx(op.ctx, false)
	defer cancel()
	var sigs [][]byte
	for attempt := 0; ; attempt++ {
		sad, pooled, err := m.obtainSAD(ctx, st, s, op, j)
		if err != nil {
			return nil, fmt.Errorf("authorize: %w", err)
		}
		sctx, scancel := ctx, context.CancelFunc(func() {})
		if browser {
			sctx, scancel = t.serviceCtx(op.ctx, false)
		}
		sigs, err = t.svc.SignHash(sctx, SignRequest{
			CredentialID:  cred.ID,
			SAD:           sad,
			Hashes:        [][]byte{j.digest},
			HashAlgOID:    j.hashOID,
			SignAlgOID:    j.signAlgo,
			SignAlgParams: j.params,
		})
		scancel()
		if err != nil && errors.Is(err, ErrSADInvalid) && pooled && attempt == 0 {
			t.pool(cred.ID).drop()
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("signHash: %w", err)
		}
		break
	}
	if len(sigs) != 1 {
		return nil, fmt.Errorf("signHash returned %d signatures for 1 hash", len(sigs))
	}
	var sig []byte
	var err error
	switch op.k.KeyType {
	case ck.CKK_RSA:
		sig, err = objects.RSAFixed(sigs[0], op.k.SigLen)
	case ck.CKK_EC:
		sig, err = csc.ECDSAToRaw(sigs[0], op.k.SigLen/2)
	}
	if err != nil {
		return nil, wrapRV(ck.CKR_DEVICE_ERROR, fmt.Errorf("signature from the service: %w", err))
	}
	// The first signature of each key and shape is checked against the
	// certificate's key (every one with verify_every_signature): a service
	// signing with another key, hash or salt length is caught before a
	// program embeds its signature, without an ECDSA verification (more
	// than the module's own work) on every signature.
	shape := objects.SigShape{Scheme: op.md.Scheme, Hash: j.h.Hash, SaltLen: op.pss.saltLen}
	if _, done := op.k.Verified.Load(shape); !done || t.cfg.VerifyEverySignature {
		if err := op.k.VerifyDigest(op.md.Scheme, j.h, j.digest, sig, op.pss.saltLen); err != nil {
			// CKR_SIGNATURE_INVALID is not a C_Sign return value: the
			// device (the service) misbehaved.
			return nil, wrapRV(ck.CKR_DEVICE_ERROR, fmt.Errorf("signature from the service does not match the certificate: %w", err))
		}
		op.k.Verified.Store(shape, struct{}{})
	}
	return sig, nil
}

// contextLogin handles C_Login(CKU_CONTEXT_SPECIFIC): the factor for the
// one signature of the active operation. SCAL1 credentials are authorized
// right away (a wrong PIN is CKR_PIN_INCORRECT and the operation stays
// active for another try); SCAL2 ones at C_Sign, bound to the hash.
func (m *Module) contextLogin(st *state, s *session, pin []byte) error {
	t := s.tok
	var op *signOp
	if err := s.locked(func() error {
		op = s.sign
		if op == nil || !op.needCtxLogin || op.busy {
			return ck.CKR_OPERATION_NOT_INITIALIZED
		}
		return nil
	}); err != nil {
		return err
	}
	if !t.isLoggedIn() {
		return ck.CKR_USER_NOT_LOGGED_IN
	}
	if pin == nil {
		return ck.CKR_ARGUMENTS_BAD
	}
	if op.k.Cred.SCAL >= 2 {
		p := slices.Clone(pin)
		return s.locked(func() error {
			clear(op.ctxPIN)
			op.ctxPIN, op.ctxSAD = p, nil
			return nil
		})
	}
	if t.svc == nil {
		return errNoService
	}
	ctx, cancel := t.serviceCtx(s.ctx, false)
	defer cancel()
	req := authorizeRequest(op.k.Cred, 1)
	req.PIN = pin // the caller's copy, wiped by cgo after C_Login
	sad, err := t.svc.Authorize(ctx, req)
	t.notePINResult(err)
	if err != nil {
		return m.ctxErr(st, s, fmt.Errorf("authorize: %w", err))
	}
	return s.locked(func() error {
		clear(op.ctxPIN)
		op.ctxSAD, op.ctxPIN = &sad, nil
		return nil
	})
}
