package service

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/store"
)

// AuthorizeRequest is credentials/authorize in explicit mode.
type AuthorizeRequest struct {
	CredentialID  string
	NumSignatures int
	Hashes        [][]byte
	HashAlgorithm string // OID
	AuthData      []csc.AuthData
	Description   string
}

// SAD is a freshly issued signature activation data.
type SAD struct {
	Value     string
	ExpiresIn time.Duration
	// Handle is set instead of Value while an out-of-band factor waits for
	// the user (202; poll with AuthorizeCheck).
	Handle string
}

// credLock serialises factor checks per credential, so that parallel
// guesses cannot overtake the retry counter.
func (s *Service) credLock(id string) *sync.Mutex {
	m, _ := s.credMu.LoadOrStore(id, &sync.Mutex{})
	return m.(*sync.Mutex)
}

// Authorize checks the credential's factors and issues a SAD for
// NumSignatures signatures; for SCAL2 the SAD is bound to the hashes.
func (s *Service) Authorize(ctx context.Context, p Principal, r AuthorizeRequest) (sad SAD, err error) {
	detail := fmt.Sprintf("numSignatures=%d", r.NumSignatures)
	defer func() {
		if sad.Value == "" { // an issued SAD has its row already (newSAD)
			s.audit(ctx, "authorize", p.UserID, r.CredentialID, r.Hashes, err, detail)
		}
	}()
	c, err := s.userCredential(ctx, p, r.CredentialID)
	if err != nil {
		return SAD{}, err
	}
	if c.AuthMode != csc.AuthModeExplicit || s.NeedsKey(c) {
		return SAD{}, badRequest("The credential is authorized with OAuth2 (auth/mode %s), not credentials/authorize", csc.AuthModeOAuth2Code)
	}
	if err := s.checkUsable(c); err != nil {
		return SAD{}, err
	}
	if r.NumSignatures < 1 || r.NumSignatures > c.Multisign {
		return SAD{}, badRequest("Invalid parameter numSignatures: must be between 1 and %d (multisign)", c.Multisign)
	}
	hashAlg, err := checkHashes(r.Hashes, r.HashAlgorithm, s.opt.MaxHashes)
	if err != nil {
		return SAD{}, err
	}
	if c.SCAL == 2 && len(r.Hashes) == 0 {
		return SAD{}, badRequest("Missing parameter hashes: required for a SCAL 2 credential")
	}
	if len(r.Hashes) > 0 && len(r.Hashes) != r.NumSignatures {
		return SAD{}, badRequest("numSignatures (%d) does not match the number of hashes (%d)", r.NumSignatures, len(r.Hashes))
	}
	_ = hashAlg
	if err := s.checkFactors(ctx, c, r.AuthData); err != nil {
		return SAD{}, err
	}
	if c.OOB {
		u, err := s.store.UserByID(ctx, p.UserID)
		if err != nil {
			return SAD{}, err
		}
		return s.startOOB(ctx, c, u, r)
	}
	return s.newSAD(ctx, c, p.UserID, r.HashAlgorithm, r.Hashes, r.NumSignatures,
		s.auditEvent(ctx, "authorize", p.UserID, c.ID, r.Hashes, nil, detail))
}

// checkHashes validates digests against their algorithm OID.
func checkHashes(hashes [][]byte, oid string, max int) (crypto.Hash, error) {
	if len(hashes) == 0 {
		if oid != "" {
			if _, ok := allowedHashes[oid]; !ok {
				return 0, badRequest("hashAlgorithmOID %s is not supported (use SHA-256, SHA-384 or SHA-512)", oid)
			}
		}
		return 0, nil
	}
	if len(hashes) > max {
		return 0, badRequest("Too many hashes: at most %d per call", max)
	}
	if oid == "" {
		return 0, badRequest("Missing string parameter hashAlgorithmOID")
	}
	h, ok := allowedHashes[oid]
	if !ok {
		return 0, badRequest("hashAlgorithmOID %s is not supported (use SHA-256, SHA-384 or SHA-512)", oid)
	}
	for i, d := range hashes {
		if len(d) != h.Size() {
			return 0, badRequest("hashes[%d] is %d bytes long; %s hashes are %d bytes", i, len(d), oid, h.Size())
		}
	}
	return h, nil
}

// checkFactors verifies every factor of the credential's expression (all of
// them: PIN AND OTP), counting failures and locking at the limit.
func (s *Service) checkFactors(ctx context.Context, c store.Credential, data []csc.AuthData) error {
	values := map[string]string{}
	for _, d := range data {
		if _, dup := values[d.ID]; dup {
			return badRequest("authData %q is repeated", d.ID)
		}
		if d.ID != FactorPIN && d.ID != FactorOTP && !(d.ID == FactorOOB && c.OOB) {
			return badRequest("authData %q is not an authentication object of this credential", d.ID)
		}
		values[d.ID] = d.Value
	}
	needPIN, needOTP := c.PINHash != "", c.OTPType != ""
	if _, ok := values[FactorPIN]; needPIN && !ok {
		return badRequest("Missing authData PIN")
	}
	if _, ok := values[FactorOTP]; needOTP && !ok {
		return badRequest("Missing authData OTP")
	}
	if !needPIN && values[FactorPIN] != "" {
		return badRequest("authData PIN is not an authentication object of this credential")
	}
	if !needOTP && values[FactorOTP] != "" {
		return badRequest("authData OTP is not an authentication object of this credential")
	}

	mu := s.credLock(c.ID)
	mu.Lock()
	defer mu.Unlock()
	// Across processes and nodes, the store's lease; it re-reads the
	// credential under it: the count and the lock may have moved.
	return s.withFactorLease(ctx, c.ID, func(c store.Credential) error {
		return s.checkFactorsLeased(ctx, c, values, needPIN, needOTP)
	})
}

// Factor leases (store.TryFactorLock): how long one is taken for (a check
// takes well under a second; a node that dies holding one blocks the
// credential's checks this long), and how long a check waits for another's.
const (
	factorLeaseTTL  = 30 * time.Second
	factorLeaseWait = 10 * time.Second
)

// withFactorLease runs fn with the credential, read under its factor-check
// lease, which it holds meanwhile: the checks of one credential's factors
// run one at a time across every process and node sharing the store, so
// parallel guesses cannot overtake the failure count. While another
// holds it, it waits (up to factorLeaseWait, then ErrUnavailable).
func (s *Service) withFactorLease(ctx context.Context, id string, fn func(c store.Credential) error) error {
	holder, err := secret.NewToken()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(factorLeaseWait)
	pause := 2 * time.Millisecond
	for {
		now := s.now()
		c, err := s.store.TryFactorLock(ctx, id, holder, now, now.Add(factorLeaseTTL))
		if err == nil {
			defer func() {
				if err := s.store.ReleaseFactorLock(context.WithoutCancel(ctx), id, holder); err != nil {
					s.log.Warn("releasing a credential's factor lease", "credential", id, "err", err)
				}
			}()
			return fn(c)
		}
		if !errors.Is(err, store.ErrBusy) {
			return err
		}
		if time.Now().After(deadline) {
			return fail(ErrUnavailable, "The credential's factors are being checked by another request; try again")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause + time.Duration(mrand.Int64N(int64(pause)))):
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// checkFactorsLeased checks the factors of c (read under its lease).
func (s *Service) checkFactorsLeased(ctx context.Context, c store.Credential, values map[string]string, needPIN, needOTP bool) error {
	if c.Locked {
		return fail(ErrLocked, "The credential is locked after too many failed authorizations; ask the operator to unlock it")
	}
	var failed error
	if needPIN {
		if err := s.verifyPassword(ctx, values[FactorPIN], c.PINHash, true); err != nil {
			if !errors.Is(err, secret.ErrMismatch) {
				return err
			}
			failed = ErrInvalidPIN
		}
	}
	if needOTP && failed == nil {
		ok, err := s.checkOTP(ctx, c, values[FactorOTP])
		if err != nil {
			return err
		}
		if !ok {
			failed = ErrInvalidOTP
		}
	}
	if failed == nil {
		if c.PINFailures > 0 {
			return s.store.ResetPINFailures(ctx, c.ID)
		}
		return nil
	}
	n, locked, err := s.store.RecordPINFailure(ctx, c.ID, s.opt.PINRetries)
	if err != nil {
		return err
	}
	s.metrics.FactorFailed(strings.ToLower(factorName(failed)), locked)
	if locked {
		return fail(ErrLocked, "Wrong %s; the credential is now locked after %d failed attempts", factorName(failed), n)
	}
	return fail(failed, "Wrong %s: %d attempts left", factorName(failed), s.opt.PINRetries-n)
}

func factorName(kind error) string {
	if kind == ErrInvalidOTP {
		return "OTP"
	}
	return "PIN"
}

// newSAD issues a SAD and appends its audit row (an "ok" row of the
// issuing event) in one step: never one without the other.
func (s *Service) newSAD(ctx context.Context, c store.Credential, userID, hashAlg string, hashes [][]byte, n int, audit store.AuditEvent) (SAD, error) {
	sad, rec, err := s.sadRecord(c, userID, hashAlg, hashes, n)
	if err != nil {
		return SAD{}, err
	}
	if err := s.store.CreateSAD(ctx, rec, &audit); err != nil {
		s.countAuditStep(err)
		s.log.Error("SAD not issued", "event", audit.Event, "credential", c.ID, "err", err)
		return SAD{}, err
	}
	s.countAuditStep(nil)
	return sad, nil
}

// sadRecord makes a new SAD value and the record the store keeps of it.
func (s *Service) sadRecord(c store.Credential, userID, hashAlg string, hashes [][]byte, n int) (SAD, store.SAD, error) {
	v, err := secret.NewToken()
	if err != nil {
		return SAD{}, store.SAD{}, err
	}
	now := s.now()
	if len(hashes) == 0 {
		hashAlg = ""
	}
	return SAD{Value: v, ExpiresIn: s.opt.SADTTL}, store.SAD{
		Hash: secret.TokenHash(v), CredentialID: c.ID, UserID: userID, HashAlgo: hashAlg, Hashes: hashes,
		Remaining: n, ExpiresAt: now.Add(s.opt.SADTTL), CreatedAt: now,
	}, nil
}

// loadSAD fetches a SAD and checks it (checkSAD).
func (s *Service) loadSAD(ctx context.Context, p Principal, credID, value string, hashes [][]byte, hashAlg string) (store.SAD, error) {
	if value == "" {
		return store.SAD{}, badRequest("Missing string parameter SAD")
	}
	sad, err := s.store.SAD(ctx, secret.TokenHash(value))
	if errors.Is(err, store.ErrNotFound) {
		return s.checkSAD(p, credID, store.SAD{}, false, hashes, hashAlg)
	}
	if err != nil {
		return store.SAD{}, err
	}
	return s.checkSAD(p, credID, sad, true, hashes, hashAlg)
}

// checkSAD checks that a SAD (found: it exists) is not expired, belongs to
// the credential and caller and, when it is bound to hashes, that hashes
// are exactly those.
func (s *Service) checkSAD(p Principal, credID string, sad store.SAD, found bool, hashes [][]byte, hashAlg string) (store.SAD, error) {
	if !found {
		return store.SAD{}, badRequest("Invalid SAD (unknown, used up or revoked)")
	}
	if !s.now().Before(sad.ExpiresAt) {
		return store.SAD{}, badRequest("SAD expired")
	}
	if sad.CredentialID != credID || sad.UserID != p.UserID {
		return store.SAD{}, badRequest("The SAD was not issued for this credential")
	}
	if len(sad.Hashes) > 0 && hashes != nil {
		if hashAlg != "" && hashAlg != sad.HashAlgo {
			return store.SAD{}, badRequest("Hash algorithm is not the one authorized by the SAD")
		}
		if !sameHashes(sad.Hashes, hashes) {
			return store.SAD{}, badRequest("Hash is not authorized by the SAD")
		}
	}
	return sad, nil
}

// sameHashes compares two lists of digests as multisets.
func sameHashes(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	sa, sb := sortedCopy(a), sortedCopy(b)
	for i := range sa {
		if !bytes.Equal(sa[i], sb[i]) {
			return false
		}
	}
	return true
}

func sortedCopy(in [][]byte) [][]byte {
	out := append([][]byte(nil), in...)
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i], out[j]) < 0 })
	return out
}

// ExtendTransaction replaces a valid SAD by a new one with the same binding
// and the signatures it has left (credentials/extendTransaction).
func (s *Service) ExtendTransaction(ctx context.Context, p Principal, credID, value string, hashes [][]byte, hashAlg string) (sad SAD, err error) {
	defer func() {
		if sad.Value == "" {
			s.audit(ctx, "extendTransaction", p.UserID, credID, hashes, err, "")
		}
	}()
	c, err := s.userCredential(ctx, p, credID)
	if err != nil {
		return SAD{}, err
	}
	if err := s.checkUsable(c); err != nil {
		return SAD{}, err
	}
	if _, err := checkHashes(hashes, hashAlg, s.opt.MaxHashes); err != nil {
		return SAD{}, err
	}
	old, err := s.loadSAD(ctx, p, credID, value, hashes, hashAlg)
	if err != nil {
		return SAD{}, err
	}
	if c.SCAL == 2 && len(hashes) == 0 {
		return SAD{}, badRequest("Missing parameter hashes: required for a SCAL 2 credential")
	}
	// Take the old SAD's remaining count, issue the new SAD and write its
	// audit row in one atomic step: the old SAD cannot be used and extended
	// at the same time, and a failure leaves it as it was.
	next, rec, err := s.sadRecord(c, p.UserID, old.HashAlgo, old.Hashes, old.Remaining)
	if err != nil {
		return SAD{}, err
	}
	audit := s.auditEvent(ctx, "extendTransaction", p.UserID, credID, hashes, nil, "")
	err = s.store.ReplaceSAD(ctx, old.Hash, old.Remaining, s.now(), rec, &audit)
	s.countAuditStep(err)
	if err != nil {
		return SAD{}, sadError(err)
	}
	return next, nil
}

func sadError(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExhausted):
		return badRequest("Invalid SAD (used up or revoked)")
	case errors.Is(err, store.ErrExpired):
		return badRequest("SAD expired")
	}
	return err
}

// checkOTP verifies an OTP: a TOTP code, or the online OTP last sent by
// GetChallenge.
func (s *Service) checkOTP(ctx context.Context, c store.Credential, code string) (bool, error) {
	if c.OTPType == OnlineOTP {
		return s.checkOnlineOTP(ctx, c, code)
	}
	seed, err := s.sealer.Open(c.OTPSealed, []byte("totp:"+c.ID))
	if err != nil {
		return false, fmt.Errorf("open TOTP seed: %w", err)
	}
	return s.checkTOTP(ctx, c.ID, seed, code, s.now())
}
