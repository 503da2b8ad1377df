package service

import (
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/internal/workers"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/store"
)

// SignRequest is signatures/signHash in synchronous mode.
type SignRequest struct {
	CredentialID   string
	SAD            string
	Hashes         [][]byte
	HashAlgorithm  string // OID, may be implied by SignAlgo
	SignAlgo       string // OID
	SignAlgoParams []byte // DER, RSASSA-PSS parameters
	// SignatureQualifier, when set, must be the credential's.
	SignatureQualifier string
}

// SignHash signs each digest with the credential's key, after checking the
// SAD: bound to the credential and caller, to the exact hashes for SCAL2,
// with enough signatures left. Nothing is consumed when the request is bad.
//
// The "sign" audit row is written together with the SAD's consumption, in
// one atomic store operation, and the key signs while that commit is under
// way (consumeAndSign): the signatures leave only once the commit has
// succeeded, so no signature is returned without its durable row. When the
// consumption fails (the SAD was used up meanwhile by a concurrent request,
// or the database failed), the signatures already made are dropped: they
// never leave the server, and the failure is audited. A failure is audited
// afterwards in a row of its own, also when the backend fails after the
// consumption (the log then has the consumption's "ok" row followed by the
// failure).
func (s *Service) SignHash(ctx context.Context, p Principal, r SignRequest) (sigs [][]byte, err error) {
	defer func() {
		if err != nil {
			s.audit(ctx, "sign", p.UserID, r.CredentialID, r.Hashes, err, "signAlgo "+r.SignAlgo)
		}
	}()
	job, err := s.prepareSign(ctx, p, r)
	if err != nil {
		return nil, err
	}
	return job.consumeAndSign(ctx)
}

// signJob is a checked signHash request: consume takes its signatures
// from the SAD (with the audit row), sign makes them.
type signJob struct {
	s       *Service
	p       Principal
	r       SignRequest
	cred    store.Credential
	backend keystore.Backend
	opts    crypto.SignerOpts
	sad     store.SAD
}

// prepareSign checks everything a signHash needs without changing state.
//
// It reads the database once (store.SigningState): the credential's state
// (owner, disabled, locked) and the SAD, both checked on every request, so
// a disabled or locked credential and a used-up or deleted SAD are refused
// at once, on this node as on any other sharing the database. What never
// changes after enrolment (key reference, backend, key type, certificate)
// comes from signingCredential's cache.
func (s *Service) prepareSign(ctx context.Context, p Principal, r SignRequest) (*signJob, error) {
	if r.CredentialID == "" {
		return nil, badRequest("Missing string parameter credentialID")
	}
	if p.Scope == ScopeCredential && r.CredentialID != p.CredentialID {
		return nil, fail(ErrAccessDenied, "The credential token is bound to another credential")
	}
	sadValue, sadErr := sadOf(p, r.SAD)
	var sadHash []byte
	if sadErr == nil && sadValue != "" {
		sadHash = secret.TokenHash(sadValue)
	}
	st, err := s.store.SigningState(ctx, r.CredentialID, sadHash)
	if errors.Is(err, store.ErrNotFound) {
		s.credCache.Delete(r.CredentialID)
	}
	if errors.Is(err, store.ErrNotFound) || (err == nil && st.Credential.UserID != p.UserID) {
		return nil, badRequest("Invalid parameter credentialID")
	}
	if err != nil {
		return nil, err
	}
	c, err := s.signingCredential(ctx, st.Credential)
	if err != nil {
		return nil, err
	}
	if err := s.checkUsable(c); err != nil {
		return nil, err
	}
	if r.SignatureQualifier != "" && r.SignatureQualifier != c.SignatureQualifier {
		if !csc.IsSignatureQualifier(r.SignatureQualifier) {
			return nil, badRequest("Invalid parameter signatureQualifier")
		}
		return nil, badRequest("The credential does not support the signature qualifier %s", r.SignatureQualifier)
	}
	if len(r.Hashes) == 0 {
		return nil, badRequest("Missing parameter hashes")
	}
	if len(r.Hashes) > s.opt.MaxHashes {
		return nil, badRequest("Too many hashes: at most %d per call", s.opt.MaxHashes)
	}
	pub, backend, err := s.keyOf(c)
	if err != nil {
		return nil, err
	}
	// A key store known to be down (its HSM being reconnected) fails the
	// request before the SAD is consumed, so the client can retry with it.
	if err := keystore.Available(backend); err != nil {
		return nil, err
	}
	h, opts, err := signParams(pub, r.SignAlgo, r.HashAlgorithm, r.SignAlgoParams)
	if err != nil {
		return nil, err
	}
	for i, d := range r.Hashes {
		if len(d) != h.Size() {
			return nil, badRequest("hashes[%d] is %d bytes long; a %v hash is %d bytes", i, len(d), h, h.Size())
		}
	}
	if sadErr != nil {
		return nil, sadErr
	}
	if sadValue == "" {
		return nil, badRequest("Missing string parameter SAD")
	}
	sad, err := s.checkSAD(p, c.ID, st.SAD, st.HasSAD, r.Hashes, csc.HashOID(h))
	if err != nil {
		return nil, err
	}
	if len(r.Hashes) > sad.Remaining {
		return nil, badRequest("The SAD allows %d more signatures, %d requested", sad.Remaining, len(r.Hashes))
	}
	return &signJob{s: s, p: p, r: r, cred: c, backend: backend, opts: opts, sad: sad}, nil
}

// signingCredential returns the credential whose state st is: the part
// that never changes after enrolment from s.credCache (read from the store
// on the first use, or when the row is not the one cached: another
// CreatedAt or owner), the state from st. The cache holds no secret (no
// PIN hash, no sealed OTP seed): the signing path needs none.
func (s *Service) signingCredential(ctx context.Context, st store.CredentialState) (store.Credential, error) {
	v, ok := s.credCache.Load(st.ID)
	c, _ := v.(store.Credential)
	if !ok || !c.CreatedAt.Equal(st.CreatedAt) || c.UserID != st.UserID {
		full, err := s.store.Credential(ctx, st.ID)
		if errors.Is(err, store.ErrNotFound) {
			return store.Credential{}, badRequest("Invalid parameter credentialID")
		}
		if err != nil {
			return store.Credential{}, err
		}
		c = full
		c.PINHash, c.OTPSealed = "", nil
		s.credCache.Store(c.ID, c)
		st.CreatedAt, st.UserID = c.CreatedAt, c.UserID
	}
	c.Disabled, c.PINFailures, c.Locked = st.Disabled, st.PINFailures, st.Locked
	return c, nil
}

// consume takes the signatures from the SAD and writes the "sign" audit
// row in the same atomic step.
func (j *signJob) consume(ctx context.Context) error {
	ok := j.s.auditEvent(ctx, "sign", j.p.UserID, j.r.CredentialID, j.r.Hashes, nil, "signAlgo "+j.r.SignAlgo)
	err := j.s.store.ConsumeSAD(ctx, j.sad.Hash, len(j.r.Hashes), j.s.now(), &ok)
	j.s.countAuditStep(err)
	if err != nil {
		return sadError(err)
	}
	return nil
}

// hsmWorkers run the HSM's operations of signatures (consumeAndSign).
var hsmWorkers = workers.New()

// consumeAndSign runs consume and sign at the same time, the HSM's
// operation on a goroutine of its own, so that a signature costs the
// longer of the two instead of their sum, and returns the signatures only
// after consume has succeeded. Signatures made for a consumption that
// failed are overwritten and dropped.
//
// The commit runs on the request's goroutine, whose stack is already grown
// (net/http serves an HTTP/1.1 connection on one goroutine), since with the
// SQLite store that goroutine may lead a batch of commits: SQLite's calls
// run deep, and a new goroutine's stack would be copied to grow on each
// signature. The HSM's operation runs on a worker of hsmWorkers, whose
// stack has grown to what the backend's calls need (cgo wrappers, the
// conversion of ECDSA signatures), rather than on a new goroutine.
func (j *signJob) consumeAndSign(ctx context.Context) ([][]byte, error) {
	var (
		sigs    [][]byte
		signErr error
	)
	signing := hsmWorkers.Start(func() { sigs, signErr = j.sign(ctx) })
	consumeErr := j.consume(ctx)
	signing.Wait()
	if consumeErr != nil {
		for _, sig := range sigs {
			clear(sig)
		}
		return nil, consumeErr
	}
	if signErr != nil {
		return nil, signErr
	}
	j.s.metrics.Signed(j.cred.KeyType, j.cred.SCAL, len(sigs))
	return sigs, nil
}

// sign makes the signatures, in the order of the hashes; the caller counts
// them once they are returned (metrics.Signed).
func (j *signJob) sign(ctx context.Context) ([][]byte, error) {
	sigs := make([][]byte, len(j.r.Hashes))
	for i, d := range j.r.Hashes {
		sig, err := j.backend.Sign(ctx, j.cred.KeyRef, d, j.opts)
		if err != nil {
			return nil, fmt.Errorf("sign hash %d with credential %s: %w", i, j.cred.ID, err)
		}
		sigs[i] = sig
	}
	return sigs, nil
}

// Timestamp answers signatures/timestamp with an RFC 3161 token.
func (s *Service) Timestamp(ctx context.Context, p Principal, digest []byte, hashOID, nonceHex string) (tok []byte, err error) {
	defer func() { s.audit(ctx, "timestamp", p.UserID, "", [][]byte{digest}, err, "") }()
	if s.tsa == nil {
		return nil, fail(ErrNotImplemented, "signatures/timestamp is not served")
	}
	if len(digest) == 0 {
		return nil, badRequest("Missing parameter hash")
	}
	if hashOID == "" {
		return nil, badRequest("Missing string parameter hashAlgo")
	}
	h, ok := allowedHashes[hashOID]
	if !ok {
		return nil, badRequest("hashAlgo %s is not supported (use SHA-256, SHA-384 or SHA-512)", hashOID)
	}
	if len(digest) != h.Size() {
		return nil, badRequest("hash is %d bytes long; %s hashes are %d bytes", len(digest), hashOID, h.Size())
	}
	var nonce *big.Int
	if nonceHex != "" {
		b, err := hex.DecodeString(strings.TrimPrefix(nonceHex, "0x"))
		if err != nil || len(b) > 32 {
			return nil, badRequest("Invalid parameter nonce: at most 32 bytes in hexadecimal")
		}
		nonce = new(big.Int).SetBytes(b)
	}
	return s.tsa.Timestamp(digest, crypto.Hash(h), nonce)
}
