package module

import (
	"context"
	"errors"
	"fmt"
	"hash"
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
