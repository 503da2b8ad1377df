package module

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"runtime/debug"
	"slices"

	"github.com/csctoken/csctoken/module/ck"
)

// maxRawInput caps what SignUpdate/VerifyUpdate buffer for the mechanisms
// whose input is a hash or DigestInfo (a few dozen bytes in practice).
const maxRawInput = 1024

// pssSpec is a validated CK_RSA_PKCS_PSS_PARAMS.
type pssSpec struct {
	hash, mgf hashAlg
	saltLen   int
}

// signOp is a session's active signature operation.
type signOp struct {
	k      *keyInfo
	md     mechDef
	pss    pssSpec
	hasher hash.Hash // hash-and-sign mechanisms
	buf    []byte    // raw mechanisms, multi-part
	multi  bool      // SignUpdate has been called

	needCtxLogin bool    // CKA_ALWAYS_AUTHENTICATE key
	ctxPIN       *string // C_Login(CKU_CONTEXT_SPECIFIC) value, SCAL2
	ctxSAD       *SAD    // SCAL1: authorized at the context login

	result []byte // a signature not yet delivered (buffer too small)
	busy   bool   // the remote call is in flight

	// ctx bounds the remote call; cancel ends it (C_SessionCancel, which
	// also sets canceled).
	ctx      context.Context
	cancel   context.CancelFunc
	canceled bool
}

// signJob is what goes to signHash for one signature.
type signJob struct {
	h        hashAlg
	digest   []byte
	signAlgo string
	hashOID  string
	params   []byte
}

// mechanismSpec validates a mechanism for a key; forSign restricts it to
// what the service offers (verification is local and allows every hash).
func mechanismSpec(mech ck.Mechanism, k *keyInfo, forSign bool) (mechDef, pssSpec, error) {
	md, ok := signMechByType(mech.Type)
	if !ok {
		for _, d := range digestMechs {
			if d == mech.Type {
				return mechDef{}, pssSpec{}, ck.CKR_KEY_TYPE_INCONSISTENT
			}
		}
		return mechDef{}, pssSpec{}, ck.CKR_MECHANISM_INVALID
	}
	if md.keyType != k.keyType {
		return mechDef{}, pssSpec{}, ck.CKR_KEY_TYPE_INCONSISTENT
	}
	if forSign && !slices.Contains(k.mechs, md.typ) {
		return mechDef{}, pssSpec{}, ck.CKR_MECHANISM_INVALID
	}
	var ps pssSpec
	if md.scheme == schemePSS {
		p, ok := ck.DecodePSSParams(mech.Parameter)
		if !ok {
			return mechDef{}, pssSpec{}, fmt.Errorf("PSS parameters missing or of the wrong size: %w", ck.CKR_MECHANISM_PARAM_INVALID)
		}
		h, ok1 := hashByDigestMech(p.HashAlg)
		mgf, ok2 := hashByMGF(p.MGF)
		if !ok1 || !ok2 || (md.hash != 0 && h.hash != md.hash) {
			return mechDef{}, pssSpec{}, ck.CKR_MECHANISM_PARAM_INVALID
		}
		if int(p.SLen) > k.sigLen-h.hash.Size()-2 {
			return mechDef{}, pssSpec{}, ck.CKR_MECHANISM_PARAM_INVALID
		}
		if forSign {
			if _, _, ok := chooseSignAlgo(k.algos, schemePSS, h); !ok {
				return mechDef{}, pssSpec{}, ck.CKR_MECHANISM_PARAM_INVALID
			}
		} else if mgf.hash != h.hash {
			// crypto/rsa verifies only with MGF1 over the message hash.
			return mechDef{}, pssSpec{}, ck.CKR_MECHANISM_PARAM_INVALID
		}
		ps = pssSpec{hash: h, mgf: mgf, saltLen: int(p.SLen)}
	}
	return md, ps, nil
}

// keyForOp resolves a key handle for C_SignInit / C_VerifyInit.
func (m *Module) keyForOp(s *session, key ObjectHandle, class uint) (*keyInfo, error) {
	t := s.tok
	o := t.objects().get(key)
	if o == nil {
		return nil, ck.CKR_KEY_HANDLE_INVALID
	}
	if !t.visible(o) {
		return nil, ck.CKR_USER_NOT_LOGGED_IN
	}
	switch {
	case o.class == class:
		return o.ki, nil
	case o.class == ck.CKO_PRIVATE_KEY || o.class == ck.CKO_PUBLIC_KEY:
		return nil, ck.CKR_KEY_FUNCTION_NOT_PERMITTED
	}
	return nil, ck.CKR_KEY_HANDLE_INVALID
}

// opInit is the common part of C_SignInit (a private key, mechanisms the
// service offers) and C_VerifyInit (a public key, any hash): the session,
// the key, the validated mechanism and, for hash-and-sign mechanisms, the
// hasher of the streaming input.
func (m *Module) opInit(h SessionHandle, mech ck.Mechanism, key ObjectHandle, class uint) (*session, *keyInfo, mechDef, pssSpec, hash.Hash, error) {
	_, s, err := m.session(h)
	if err != nil {
		return nil, nil, mechDef{}, pssSpec{}, nil, err
	}
	k, err := m.keyForOp(s, key, class)
	if err != nil {
		return nil, nil, mechDef{}, pssSpec{}, nil, err
	}
	md, ps, err := mechanismSpec(mech, k, class == ck.CKO_PRIVATE_KEY)
	if err != nil {
		return nil, nil, mechDef{}, pssSpec{}, nil, err
	}
	var hasher hash.Hash
	if md.hash != 0 {
		hasher = md.hash.New()
	}
	return s, k, md, ps, hasher, nil
}

// SignInit is C_SignInit.
func (m *Module) SignInit(h SessionHandle, mech ck.Mechanism, key ObjectHandle) (err error) {
	defer m.finish("SignInit", &err)
	s, k, md, ps, hasher, err := m.opInit(h, mech, key, ck.CKO_PRIVATE_KEY)
	if err != nil {
		return err
	}
	op := &signOp{k: k, md: md, pss: ps, hasher: hasher}
	t := s.tok
	op.needCtxLogin = t.cfg.AlwaysAuthenticate && !t.browserMode() && k.cred.Auth == AuthPIN
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sign != nil {
		return ck.CKR_OPERATION_ACTIVE
	}
	s.sign = op
	return nil
}

// Sign is C_Sign. out == nil asks for the length, answered from the key
// size without a remote call; the operation stays active then and after
// CKR_BUFFER_TOO_SMALL. The remote call happens once per signature.
func (m *Module) Sign(h SessionHandle, data []byte, out []byte) (n int, err error) {
	defer m.finish("Sign", &err)
	st, s, err := m.session(h)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	op := s.sign
	switch {
	case op == nil:
		s.mu.Unlock()
		return 0, ck.CKR_OPERATION_NOT_INITIALIZED
	case op.busy, op.multi:
		s.mu.Unlock()
		return 0, ck.CKR_OPERATION_ACTIVE
	}
	return m.completeSign(st, s, op, data, out, false)
}

// SignUpdate is C_SignUpdate: hashes locally, streaming.
func (m *Module) SignUpdate(h SessionHandle, data []byte) (err error) {
	defer m.finish("SignUpdate", &err)
	_, s, err := m.session(h)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	op := s.sign
	switch {
	case op == nil:
		return ck.CKR_OPERATION_NOT_INITIALIZED
	case op.busy || op.result != nil:
		return ck.CKR_OPERATION_ACTIVE
	}
	op.multi = true
	if op.hasher != nil {
		op.hasher.Write(data)
		return nil
	}
	if len(op.buf)+len(data) > maxRawInput {
		s.sign = nil
		return ck.CKR_DATA_LEN_RANGE
	}
	op.buf = append(op.buf, data...)
	return nil
}

// SignFinal is C_SignFinal, with C_Sign's buffer rules.
func (m *Module) SignFinal(h SessionHandle, out []byte) (n int, err error) {
	defer m.finish("SignFinal", &err)
	st, s, err := m.session(h)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	op := s.sign
	switch {
	case op == nil:
		s.mu.Unlock()
		return 0, ck.CKR_OPERATION_NOT_INITIALIZED
	case op.busy:
		s.mu.Unlock()
		return 0, ck.CKR_OPERATION_ACTIVE
	}
	op.multi = true
	return m.completeSign(st, s, op, nil, out, true)
}

// completeSign is the end of C_Sign and C_SignFinal. It is called with
// s.mu held and releases it.
func (m *Module) completeSign(st *state, s *session, op *signOp, data, out []byte, final bool) (int, error) {
	end := func() {
		if s.sign == op {
			s.sign = nil
		}
	}
	if op.result != nil {
		defer s.mu.Unlock()
		if out == nil {
			return len(op.result), nil
		}
		if len(out) < len(op.result) {
			return len(op.result), ck.CKR_BUFFER_TOO_SMALL
		}
		n := copy(out, op.result)
		end()
		return n, nil
	}
	if out == nil {
		s.mu.Unlock()
		return op.k.sigLen, nil
	}
	if len(out) < op.k.sigLen {
		s.mu.Unlock()
		return op.k.sigLen, ck.CKR_BUFFER_TOO_SMALL
	}
	if op.needCtxLogin && op.ctxPIN == nil && op.ctxSAD == nil {
		end()
		s.mu.Unlock()
		return 0, fmt.Errorf("no C_Login(CKU_CONTEXT_SPECIFIC) for this signature: %w", ck.CKR_USER_NOT_LOGGED_IN)
	}
	job, err := op.prepare(data, final)
	if err != nil {
		end()
		s.mu.Unlock()
		return 0, err
	}
	op.busy = true
	op.ctx, op.cancel = context.WithCancel(s.ctx)
	s.mu.Unlock()

	// The remote part runs on a goroutine of its own. A host thread that
	// called in through cgo has its goroutine locked to it: each time that
	// goroutine blocks (an HTTP/2 round trip blocks it several times), the
	// runtime hands its P to another thread and back, with futex wake-ups.
	// Waiting once here leaves one such handoff per signature (measured:
	// ~12% less host CPU at 16 threads through the .so).
	var sig []byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		sig, err = m.safeRemoteSign(st, s, op, job)
	}()
	<-done
	if errors.Is(err, ErrNotLoggedIn) && !s.tok.browserMode() {
		// The service token expired and cannot be refreshed: log the
		// token out so the program's next C_Login authenticates again.
		s.tok.logout()
		s.tok.log.Info("service session expired; logged out")
	}

	op.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	op.busy = false
	if op.canceled {
		// C_SessionCancel ended the operation; a signature the service
		// made anyway is not handed out.
		end()
		if st.ctx.Err() != nil || s.ctx.Err() != nil {
			return 0, m.ctxErr(st, s, context.Canceled)
		}
		return 0, fmt.Errorf("signature cancelled by C_SessionCancel: %w", ck.CKR_FUNCTION_CANCELED)
	}
	if err != nil {
		end()
		return 0, m.ctxErr(st, s, err)
	}
	if len(out) < len(sig) {
		op.result = sig
		return len(sig), ck.CKR_BUFFER_TOO_SMALL
	}
	n := copy(out, sig)
	end()
	return n, nil
}

// prepare turns the operation's input into the hash to sign and the
// signHash algorithm fields.
func (op *signOp) prepare(data []byte, final bool) (signJob, error) {
	var j signJob
	input := data
	if final {
		input = op.buf
	}
	switch {
	case op.md.hash != 0:
		j.h, _ = hashByCrypto(op.md.hash)
		if final {
			j.digest = op.hasher.Sum(nil)
		} else {
			hh := op.md.hash.New()
			hh.Write(data)
			j.digest = hh.Sum(nil)
		}
	case op.md.scheme == schemePKCS1:
		h, d, err := parseDigestInfo(input)
		if err != nil {
			return j, fmt.Errorf("CKM_RSA_PKCS input: %w: %w", err, ck.CKR_DATA_INVALID)
		}
		j.h, j.digest = h, d
	case op.md.scheme == schemePSS:
		if len(input) != op.pss.hash.hash.Size() {
			return j, ck.CKR_DATA_LEN_RANGE
		}
		j.h, j.digest = op.pss.hash, slices.Clone(input)
	case op.md.scheme == schemeECDSA:
		h, ok := hashBySize(len(input))
		if !ok {
			return j, ck.CKR_DATA_LEN_RANGE
		}
		j.h, j.digest = h, slices.Clone(input)
	}
	algo, hashOID, ok := chooseSignAlgo(op.k.algos, op.md.scheme, j.h)
	if !ok {
		if op.md.scheme == schemePKCS1 {
			return j, fmt.Errorf("hash %s not offered by the service: %w", j.h.hash, ck.CKR_DATA_INVALID)
		}
		return j, fmt.Errorf("hash %s not offered by the service: %w", j.h.hash, ck.CKR_DATA_LEN_RANGE)
	}
	j.signAlgo, j.hashOID = algo, hashOID
	if op.md.scheme == schemePSS {
		j.params = pssParamsDER(op.pss.hash, op.pss.mgf, op.pss.saltLen)
	}
	return j, nil
}

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
	cred := op.k.cred
	one := AuthorizeRequest{CredentialID: cred.ID, NumSignatures: 1, Hashes: [][]byte{j.digest}, HashAlgOID: j.h.oid}
	batch := st.batchSize(cred)
	scal2 := cred.SCAL >= 2

	if t.browserMode() || cred.Auth == AuthBrowser {
		ictx, cancel := t.serviceCtx(op.ctx, true)
		defer cancel()
		if err := t.svc.Login(ictx, true); err != nil {
			return SAD{}, false, fmt.Errorf("service login: %w", browserErr(err))
		}
		if scal2 || batch == 1 {
			sad, err := t.svc.AuthorizeInBrowser(ictx, one)
			return sad, false, browserErr(err)
		}
		sad, err := t.pool(cred.ID).take(st.opts.Now(), batch, func(n int) (SAD, error) {
			req := one
			req.NumSignatures, req.Hashes, req.HashAlgOID = n, nil, ""
			sad, err := t.svc.AuthorizeInBrowser(ictx, req)
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
		req.PIN = *op.ctxPIN
		sad, err := t.svc.Authorize(ctx, req)
		if errors.Is(err, ErrPINIncorrect) {
			return SAD{}, false, fmt.Errorf("context-specific PIN: %w: %w", err, ck.CKR_USER_NOT_LOGGED_IN)
		}
		return sad, false, err
	}

	t.mu.Lock()
	pin := t.pin
	t.mu.Unlock()
	if cred.Auth == AuthNone {
		pin = ""
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
	sad, err = t.pool(cred.ID).take(st.opts.Now(), batch, func(n int) (SAD, error) {
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
	cred := op.k.cred
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
	switch op.k.keyType {
	case ck.CKK_RSA:
		sig, err = rsaFixed(sigs[0], op.k.sigLen)
	case ck.CKK_EC:
		sig, err = ecdsaRaw(sigs[0], op.k.sigLen/2)
	}
	if err != nil {
		return nil, wrapRV(ck.CKR_DEVICE_ERROR, fmt.Errorf("signature from the service: %w", err))
	}
	// The first signature of each key and shape is checked against the
	// certificate's key (every one with verify_every_signature): a service
	// signing with another key, hash or salt length is caught before a
	// program embeds its signature, without an ECDSA verification (more
	// than the module's own work) on every signature.
	shape := sigShape{scheme: op.md.scheme, hash: j.h.hash, saltLen: op.pss.saltLen}
	if _, done := op.k.verified.Load(shape); !done || t.cfg.VerifyEverySignature {
		if err := op.k.verifyDigest(op.md.scheme, j.h, j.digest, sig, op.pss.saltLen); err != nil {
			// CKR_SIGNATURE_INVALID is not a C_Sign return value: the
			// device (the service) misbehaved.
			return nil, wrapRV(ck.CKR_DEVICE_ERROR, fmt.Errorf("signature from the service does not match the certificate: %w", err))
		}
		op.k.verified.Store(shape, struct{}{})
	}
	return sig, nil
}

// verifyDigest checks a PKCS#11-form signature over a digest.
func (k *keyInfo) verifyDigest(sc scheme, h hashAlg, digest, sig []byte, saltLen int) error {
	if len(sig) != k.sigLen {
		return ck.CKR_SIGNATURE_LEN_RANGE
	}
	var ok bool
	switch sc {
	case schemePKCS1:
		ok = rsa.VerifyPKCS1v15(k.rsaPub, h.hash, digest, sig) == nil
	case schemePSS:
		ok = rsa.VerifyPSS(k.rsaPub, h.hash, digest, sig, &rsa.PSSOptions{SaltLength: saltLen, Hash: h.hash}) == nil
	case schemeECDSA:
		n := len(sig) / 2
		r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
		ok = ecdsa.Verify(k.ecPub, digest, r, s)
	}
	if !ok {
		return ck.CKR_SIGNATURE_INVALID
	}
	return nil
}

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

// contextLogin handles C_Login(CKU_CONTEXT_SPECIFIC): the factor for the
// one signature of the active operation. SCAL1 credentials are authorized
// right away (a wrong PIN is CKR_PIN_INCORRECT and the operation stays
// active for another try); SCAL2 ones at C_Sign, bound to the hash.
func (m *Module) contextLogin(st *state, s *session, pin []byte) error {
	t := s.tok
	s.mu.Lock()
	op := s.sign
	if op == nil || !op.needCtxLogin || op.busy {
		s.mu.Unlock()
		return ck.CKR_OPERATION_NOT_INITIALIZED
	}
	s.mu.Unlock()
	if !t.isLoggedIn() {
		return ck.CKR_USER_NOT_LOGGED_IN
	}
	if pin == nil {
		return ck.CKR_ARGUMENTS_BAD
	}
	p := string(pin)
	if op.k.cred.SCAL >= 2 {
		s.mu.Lock()
		op.ctxPIN, op.ctxSAD = &p, nil
		s.mu.Unlock()
		return nil
	}
	if t.svc == nil {
		return errNoService
	}
	ctx, cancel := t.serviceCtx(s.ctx, false)
	defer cancel()
	sad, err := t.svc.Authorize(ctx, AuthorizeRequest{CredentialID: op.k.cred.ID, NumSignatures: 1, PIN: p})
	t.notePINResult(err)
	if err != nil {
		return m.ctxErr(st, s, fmt.Errorf("authorize: %w", err))
	}
	s.mu.Lock()
	op.ctxSAD, op.ctxPIN = &sad, nil
	s.mu.Unlock()
	return nil
}

// verifyOp is a session's active verification.
type verifyOp struct {
	k      *keyInfo
	md     mechDef
	pss    pssSpec
	hasher hash.Hash
	buf    []byte
	multi  bool
}

// VerifyInit is C_VerifyInit; verification is local, with the public key.
func (m *Module) VerifyInit(h SessionHandle, mech ck.Mechanism, key ObjectHandle) (err error) {
	defer m.finish("VerifyInit", &err)
	s, k, md, ps, hasher, err := m.opInit(h, mech, key, ck.CKO_PUBLIC_KEY)
	if err != nil {
		return err
	}
	op := &verifyOp{k: k, md: md, pss: ps, hasher: hasher}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.verify != nil {
		return ck.CKR_OPERATION_ACTIVE
	}
	s.verify = op
	return nil
}

// Verify is C_Verify.
func (m *Module) Verify(h SessionHandle, data, sig []byte) (err error) {
	defer m.finish("Verify", &err)
	_, s, err := m.session(h)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	op := s.verify
	if op == nil {
		return ck.CKR_OPERATION_NOT_INITIALIZED
	}
	if op.multi {
		return ck.CKR_OPERATION_ACTIVE
	}
	s.verify = nil
	return op.check(data, sig, false)
}

// VerifyUpdate is C_VerifyUpdate.
func (m *Module) VerifyUpdate(h SessionHandle, data []byte) (err error) {
	defer m.finish("VerifyUpdate", &err)
	_, s, err := m.session(h)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	op := s.verify
	if op == nil {
		return ck.CKR_OPERATION_NOT_INITIALIZED
	}
	op.multi = true
	if op.hasher != nil {
		op.hasher.Write(data)
		return nil
	}
	if len(op.buf)+len(data) > maxRawInput {
		s.verify = nil
		return ck.CKR_DATA_LEN_RANGE
	}
	op.buf = append(op.buf, data...)
	return nil
}

// VerifyFinal is C_VerifyFinal.
func (m *Module) VerifyFinal(h SessionHandle, sig []byte) (err error) {
	defer m.finish("VerifyFinal", &err)
	_, s, err := m.session(h)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	op := s.verify
	if op == nil {
		return ck.CKR_OPERATION_NOT_INITIALIZED
	}
	s.verify = nil
	return op.check(nil, sig, true)
}

func (op *verifyOp) check(data, sig []byte, final bool) error {
	input := data
	if final {
		input = op.buf
	}
	k := op.k
	if len(sig) != k.sigLen {
		return ck.CKR_SIGNATURE_LEN_RANGE
	}
	if op.md.hash != 0 {
		h, _ := hashByCrypto(op.md.hash)
		var digest []byte
		if final {
			digest = op.hasher.Sum(nil)
		} else {
			hh := op.md.hash.New()
			hh.Write(data)
			digest = hh.Sum(nil)
		}
		return k.verifyDigest(op.md.scheme, h, digest, sig, op.pss.saltLen)
	}
	switch op.md.scheme {
	case schemePKCS1:
		// Raw PKCS#1 v1.5: the input is signed as given (a DigestInfo).
		if rsa.VerifyPKCS1v15(k.rsaPub, 0, input, sig) != nil {
			return ck.CKR_SIGNATURE_INVALID
		}
		return nil
	case schemePSS:
		if len(input) != op.pss.hash.hash.Size() {
			return ck.CKR_DATA_LEN_RANGE
		}
		return k.verifyDigest(schemePSS, op.pss.hash, input, sig, op.pss.saltLen)
	default: // ECDSA over the given hash
		return k.verifyDigest(schemeECDSA, hashAlg{}, input, sig, 0)
	}
}

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
