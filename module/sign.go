package module

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/csctoken/csctoken/internal/workers"
	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/objects"
)

// signWorkers runs the remote part of C_Sign and C_SignFinal unless
// Options.RemoteOnCaller.
var signWorkers = workers.New()

// maxRawInput caps what SignUpdate/VerifyUpdate buffer for the mechanisms
// whose input is a hash or DigestInfo (a few dozen bytes in practice).
const maxRawInput = 1024

// pssSpec is a validated CK_RSA_PKCS_PSS_PARAMS.
type pssSpec struct {
	hash, mgf objects.HashAlg
	saltLen   int
}

// signOp is a session's active signature operation.
type signOp struct {
	k      *objects.KeyInfo
	md     objects.MechDef
	pss    pssSpec
	hasher hash.Hash // hash-and-sign mechanisms
	buf    []byte    // raw mechanisms, multi-part
	multi  bool      // C_SignUpdate or C_SignFinal was called

	needCtxLogin bool   // CKA_ALWAYS_AUTHENTICATE key
	ctxPIN       []byte // C_Login(CKU_CONTEXT_SPECIFIC) value, SCAL2; wiped when used or replaced
	ctxSAD       *SAD   // SCAL1: authorized at the context login

	result []byte // a signature not yet delivered (buffer too small)
	busy   bool   // the remote call is in flight
	single bool   // C_Sign was called (a length query, a buffer too small)

	// ctx bounds the remote call; cancel ends it (C_SessionCancel, which
	// also sets canceled).
	ctx      context.Context
	cancel   context.CancelFunc
	canceled bool
}

// signJob is what goes to signHash for one signature.
type signJob struct {
	h        objects.HashAlg
	digest   []byte
	signAlgo string
	hashOID  string
	params   []byte
}

// mechanismSpec validates a mechanism for a key; forSign restricts it to
// what the service offers (verification is local and allows every hash).
func mechanismSpec(mech ck.Mechanism, k *objects.KeyInfo, forSign bool) (objects.MechDef, pssSpec, error) {
	md, ok := objects.SignMechByType(mech.Type)
	if !ok {
		for _, d := range objects.DigestMechs {
			if d == mech.Type {
				return objects.MechDef{}, pssSpec{}, ck.CKR_KEY_TYPE_INCONSISTENT
			}
		}
		return objects.MechDef{}, pssSpec{}, ck.CKR_MECHANISM_INVALID
	}
	if md.KeyType != k.KeyType {
		return objects.MechDef{}, pssSpec{}, ck.CKR_KEY_TYPE_INCONSISTENT
	}
	if forSign && !slices.Contains(k.Mechs, md.Type) {
		return objects.MechDef{}, pssSpec{}, ck.CKR_MECHANISM_INVALID
	}
	var ps pssSpec
	if md.Scheme == objects.SchemePSS {
		p, ok := ck.DecodePSSParams(mech.Parameter)
		if !ok {
			return objects.MechDef{}, pssSpec{}, fmt.Errorf("PSS parameters missing or of the wrong size: %w", ck.CKR_MECHANISM_PARAM_INVALID)
		}
		h, ok1 := objects.HashByDigestMech(p.HashAlg)
		mgf, ok2 := objects.HashByMGF(p.MGF)
		switch {
		case !ok1 || !ok2:
			return objects.MechDef{}, pssSpec{}, fmt.Errorf("PSS hash or MGF unknown: %w", ck.CKR_MECHANISM_PARAM_INVALID)
		case md.Hash != 0 && h.Hash != md.Hash:
			return objects.MechDef{}, pssSpec{}, fmt.Errorf("PSS hash %v for a %v mechanism: %w", h.Hash, md.Hash, ck.CKR_MECHANISM_PARAM_INVALID)
		case mgf.Hash != h.Hash:
			// CSC carries RSASSA-PSS-params whose MGF1 hash the services
			// require to be the message hash (csc.ParsePSSParams), and
			// crypto/rsa verifies only that way: refused here, before a
			// round trip.
			return objects.MechDef{}, pssSpec{}, fmt.Errorf("PSS MGF1 hash %v differs from the hash %v: %w", mgf.Hash, h.Hash, ck.CKR_MECHANISM_PARAM_INVALID)
		case int(p.SLen) > k.SigLen-h.Hash.Size()-2:
			return objects.MechDef{}, pssSpec{}, fmt.Errorf("PSS salt of %d bytes too long for the key: %w", p.SLen, ck.CKR_MECHANISM_PARAM_INVALID)
		case forSign && p.SLen == 0:
			// A salt-free PSS signature is valid, but signers on Go's
			// crypto/rsa (the rssp) cannot make one (0 means "as long as
			// possible" there) and refuse it (docs/mapping.md).
			return objects.MechDef{}, pssSpec{}, fmt.Errorf("PSS salt length 0 is not signed by the service: %w", ck.CKR_MECHANISM_PARAM_INVALID)
		}
		if forSign {
			if _, _, ok := objects.ChooseSignAlgo(k.Algos, objects.SchemePSS, h); !ok {
				return objects.MechDef{}, pssSpec{}, fmt.Errorf("PSS with %v not offered by the service: %w", h.Hash, ck.CKR_MECHANISM_PARAM_INVALID)
			}
		}
		ps = pssSpec{hash: h, mgf: mgf, saltLen: int(p.SLen)}
	}
	return md, ps, nil
}

// keyForOp resolves a key handle for C_SignInit / C_VerifyInit.
func (m *Module) keyForOp(s *session, key ObjectHandle, class uint) (*objects.KeyInfo, error) {
	t := s.tok
	o := t.objects().Get(key)
	if o == nil {
		return nil, ck.CKR_KEY_HANDLE_INVALID
	}
	if !t.visible(o) {
		return nil, ck.CKR_USER_NOT_LOGGED_IN
	}
	switch {
	case o.Class == class:
		return o.KeyInfo, nil
	case o.Class == ck.CKO_PRIVATE_KEY || o.Class == ck.CKO_PUBLIC_KEY:
		return nil, ck.CKR_KEY_FUNCTION_NOT_PERMITTED
	}
	return nil, ck.CKR_KEY_HANDLE_INVALID
}

// opInit is the common part of C_SignInit (a private key, mechanisms the
// service offers) and C_VerifyInit (a public key, any hash): the session,
// the key, the validated mechanism and, for hash-and-sign mechanisms, the
// hasher of the streaming input.
func (m *Module) opInit(h SessionHandle, mech ck.Mechanism, key ObjectHandle, class uint) (*session, *objects.KeyInfo, objects.MechDef, pssSpec, hash.Hash, error) {
	_, s, err := m.session(h)
	if err != nil {
		return nil, nil, objects.MechDef{}, pssSpec{}, nil, err
	}
	k, err := m.keyForOp(s, key, class)
	if err != nil {
		return nil, nil, objects.MechDef{}, pssSpec{}, nil, err
	}
	md, ps, err := mechanismSpec(mech, k, class == ck.CKO_PRIVATE_KEY)
	if err != nil {
		return nil, nil, objects.MechDef{}, pssSpec{}, nil, err
	}
	var hasher hash.Hash
	if md.Hash != 0 {
		hasher = md.Hash.New()
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
	op.needCtxLogin = t.cfg.AlwaysAuthenticate && !t.browserMode() && k.Cred.Auth == AuthPIN
	return s.locked(func() error {
		if s.sign != nil {
			return ck.CKR_OPERATION_ACTIVE
		}
		s.sign = op
		return nil
	})
}

// Sign is C_Sign. out == nil asks for the length, answered from the key
// size without a remote call; the operation stays active then and after
// CKR_BUFFER_TOO_SMALL, and ends with any other answer (PKCS#11 §5.2),
// CKR_OPERATION_ACTIVE after C_SignUpdate included. The remote call
// happens once per signature.
func (m *Module) Sign(h SessionHandle, data []byte, out []byte) (n int, err error) {
	defer m.finish("Sign", &err)
	return m.sign(h, data, out, false)
}

// SignUpdate is C_SignUpdate: hashes locally, streaming. An error ends
// the operation, as does a call after a single-part C_Sign (a length
// query or CKR_BUFFER_TOO_SMALL) began one.
func (m *Module) SignUpdate(h SessionHandle, data []byte) error {
	return m.withSession("SignUpdate", h, func(_ *state, s *session) error {
		op := s.sign
		switch {
		case op == nil:
			return ck.CKR_OPERATION_NOT_INITIALIZED
		case op.busy:
			// Another thread's C_Sign waits on the service: not ours to end.
			return ck.CKR_OPERATION_ACTIVE
		case op.single:
			s.sign = nil
			return fmt.Errorf("C_SignUpdate after a single-part C_Sign: %w", ck.CKR_OPERATION_ACTIVE)
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
	})
}

// SignFinal is C_SignFinal, with C_Sign's buffer rules; after a
// single-part C_Sign began the operation it ends it with
// CKR_OPERATION_ACTIVE.
func (m *Module) SignFinal(h SessionHandle, out []byte) (n int, err error) {
	defer m.finish("SignFinal", &err)
	return m.sign(h, nil, out, true)
}

// sign is C_Sign (final false) and C_SignFinal (final true): the answer
// decided under the session's lock (beginSign), the remote signature
// without it, the result stored under it again (endSign).
func (m *Module) sign(h SessionHandle, data, out []byte, final bool) (int, error) {
	st, s, err := m.session(h)
	if err != nil {
		return 0, err
	}
	var (
		n   int
		op  *signOp
		job signJob
	)
	err = s.locked(func() (err error) {
		n, op, job, err = s.beginSign(data, out, final)
		return err
	})
	if op == nil || err != nil {
		return n, err
	}

	// Where the service's client does its I/O on the calling goroutine
	// (the library on Linux: cscclient.WithCallerIO), the remote part runs
	// here, on the host's thread. Elsewhere it runs on another goroutine:
	// a host thread that called in through cgo has its goroutine locked to
	// it, and each time that goroutine blocks (net/http's round trip
	// blocks it several times) the runtime hands its P to another thread
	// and back, with futex wake-ups; waiting once here leaves one such
	// hand-off per signature (measured: ~12% less host CPU at 16 threads
	// through the .so). That goroutine is a worker of signWorkers, whose
	// stack has already grown to what TLS and HTTP need, rather than a new
	// one per signature.
	var sig []byte
	if m.opts.RemoteOnCaller {
		yieldNowAndThen()
		sig, err = m.safeRemoteSign(st, s, op, job)
	} else {
		signWorkers.Run(func() { sig, err = m.safeRemoteSign(st, s, op, job) })
	}
	if errors.Is(err, ErrNotLoggedIn) && !s.tok.browserMode() {
		// The service token expired and cannot be refreshed: log the
		// token out so the program's next C_Login authenticates again.
		s.tok.logout()
		s.tok.log.Info("service session expired; logged out")
	}
	op.cancel()
	err = s.locked(func() error {
		n, err = s.endSign(op, sig, err, out)
		return err
	})
	return n, m.ctxErr(st, s, err)
}

// beginSign is the part of C_Sign / C_SignFinal that needs no service,
// under s.mu: it answers a length query, a buffer too small or a result
// already made (op == nil then), or returns the operation, marked busy,
// and the job for the remote signature.
func (s *session) beginSign(data, out []byte, final bool) (int, *signOp, signJob, error) {
	op := s.sign
	switch {
	case op == nil:
		return 0, nil, signJob{}, ck.CKR_OPERATION_NOT_INITIALIZED
	case op.busy:
		// Another thread's call waits on the service: not ours to end.
		return 0, nil, signJob{}, ck.CKR_OPERATION_ACTIVE
	case !final && op.multi:
		s.sign = nil
		return 0, nil, signJob{}, fmt.Errorf("C_Sign after C_SignUpdate: %w", ck.CKR_OPERATION_ACTIVE)
	case final && op.single:
		s.sign = nil
		return 0, nil, signJob{}, fmt.Errorf("C_SignFinal after a single-part C_Sign: %w", ck.CKR_OPERATION_ACTIVE)
	}
	if final {
		op.multi = true
	} else {
		op.single = true
	}
	if op.result != nil {
		if out == nil {
			return len(op.result), nil, signJob{}, nil
		}
		if len(out) < len(op.result) {
			return len(op.result), nil, signJob{}, ck.CKR_BUFFER_TOO_SMALL
		}
		s.sign = nil
		return copy(out, op.result), nil, signJob{}, nil
	}
	if out == nil {
		return op.k.SigLen, nil, signJob{}, nil
	}
	if len(out) < op.k.SigLen {
		return op.k.SigLen, nil, signJob{}, ck.CKR_BUFFER_TOO_SMALL
	}
	if op.needCtxLogin && op.ctxPIN == nil && op.ctxSAD == nil {
		s.sign = nil
		return 0, nil, signJob{}, fmt.Errorf("no C_Login(CKU_CONTEXT_SPECIFIC) for this signature: %w", ck.CKR_USER_NOT_LOGGED_IN)
	}
	job, err := op.prepare(data, final)
	if err != nil {
		s.sign = nil
		return 0, nil, signJob{}, err
	}
	op.busy = true
	op.ctx, op.cancel = context.WithCancel(s.ctx)
	return 0, op, job, nil
}

// endSign stores the outcome of op's remote signature, under s.mu: the
// signature copied to out, or kept for the next call when out is too
// small; the operation ends otherwise.
func (s *session) endSign(op *signOp, sig []byte, err error, out []byte) (int, error) {
	op.busy = false
	clear(op.ctxPIN) // used by this signature
	op.ctxPIN = nil
	end := func() {
		if s.sign == op {
			s.sign = nil
		}
	}
	switch {
	case op.canceled:
		// C_SessionCancel ended the operation; a signature the service
		// made anyway is not handed out.
		end()
		if s.ctx.Err() != nil {
			return 0, context.Canceled // ctxErr says which
		}
		return 0, fmt.Errorf("signature cancelled by C_SessionCancel: %w", ck.CKR_FUNCTION_CANCELED)
	case err != nil:
		end()
		return 0, err
	case len(out) < len(sig):
		op.result = sig
		return len(sig), ck.CKR_BUFFER_TOO_SMALL
	}
	end()
	return copy(out, sig), nil
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
	case op.md.Hash != 0:
		j.h, _ = objects.HashByCrypto(op.md.Hash)
		if final {
			j.digest = op.hasher.Sum(nil)
		} else {
			hh := op.md.Hash.New()
			hh.Write(data)
			j.digest = hh.Sum(nil)
		}
	case op.md.Scheme == objects.SchemePKCS1:
		h, d, err := objects.ParseDigestInfo(input)
		if err != nil {
			return j, fmt.Errorf("CKM_RSA_PKCS input: %w: %w", err, ck.CKR_DATA_INVALID)
		}
		j.h, j.digest = h, d
	case op.md.Scheme == objects.SchemePSS:
		if len(input) != op.pss.hash.Hash.Size() {
			return j, ck.CKR_DATA_LEN_RANGE
		}
		j.h, j.digest = op.pss.hash, slices.Clone(input)
	case op.md.Scheme == objects.SchemeECDSA:
		h, ok := objects.HashBySize(len(input))
		if !ok {
			return j, ck.CKR_DATA_LEN_RANGE
		}
		j.h, j.digest = h, slices.Clone(input)
	}
	algo, hashOID, ok := objects.ChooseSignAlgo(op.k.Algos, op.md.Scheme, j.h)
	if !ok {
		if op.md.Scheme == objects.SchemePKCS1 {
			return j, fmt.Errorf("hash %s not offered by the service: %w", j.h.Hash, ck.CKR_DATA_INVALID)
		}
		return j, fmt.Errorf("hash %s not offered by the service: %w", j.h.Hash, ck.CKR_DATA_LEN_RANGE)
	}
	j.signAlgo, j.hashOID = algo, hashOID
	if op.md.Scheme == objects.SchemePSS {
		j.params = objects.PSSParamsDER(op.pss.hash, op.pss.mgf, op.pss.saltLen)
	}
	return j, nil
}

// yieldEvery is how often yieldNowAndThen yields: under the 10 ms after
// which the runtime's sysmon preempts a goroutine whose P has not been
// scheduled (forcePreemptNS in runtime/proc.go).
const yieldEvery = 8 * time.Millisecond

// lastYield is when yieldNowAndThen last yielded, in nanoseconds since
// yieldEpoch (a monotonic clock).
var (
	lastYield  atomic.Int64
	yieldEpoch = time.Now()
)

// yieldNowAndThen lets the scheduler run about once every yieldEvery,
// before a remote call made on the host's thread (Options.RemoteOnCaller).
// Such a thread enters and leaves Go, and waits in system calls, without
// its goroutine ever being scheduled, so the scheduling tick of its P
// never moves. After 10 ms of that, sysmon takes it for a goroutine that
// runs too long: it signals the host's thread (SIGURG, which may also
// interrupt the host's own system calls), takes its P away, and polls
// every 20 µs for the next millisecond; over and over. perf of the bench's
// C host at one session: sysmon ~18% of the host's CPU. One yield (the
// thread's P handed over and back, tens of µs) every 8 ms moves the tick
// first: sysmon ~3%, the yields ~4%.
func yieldNowAndThen() {
	now := int64(time.Since(yieldEpoch))
	if last := lastYield.Load(); now-last >= int64(yieldEvery) && lastYield.CompareAndSwap(last, now) {
		runtime.Gosched()
	}
}
