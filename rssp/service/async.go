package service

import (
	"context"
	"errors"
	"time"

	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/store"
)

// Limits of asynchronous signing (operationMode A).
const (
	DefaultValidity = 10 * time.Minute // how long results wait to be polled
	MaxValidity     = 24 * time.Hour
	MinValidity     = time.Second
)

// SignHashAsync starts signHash in operationMode A: the request is checked
// and its SAD consumed now (bad input loses nothing, as in S mode), the
// signing runs in the background, and the returned responseID is polled
// with SignPolling until validity ends.
func (s *Service) SignHashAsync(ctx context.Context, p Principal, r SignRequest, validity time.Duration) (_ string, err error) {
	consumed := false
	defer func() {
		if err != nil && !consumed {
			s.audit(ctx, "sign", p.UserID, r.CredentialID, r.Hashes, err, "asynchronous; signAlgo "+r.SignAlgo)
		}
	}()
	if s.pending == nil {
		return "", fail(ErrNotImplemented, "operationMode A is not supported by this service")
	}
	switch {
	case validity == 0:
		validity = DefaultValidity
	case validity < MinValidity || validity > MaxValidity:
		return "", badRequest("Invalid parameter validity_period: between %d and %d ms", MinValidity.Milliseconds(), MaxValidity.Milliseconds())
	}
	job, err := s.prepareSign(ctx, p, r)
	if err != nil {
		return "", err
	}
	id, err := secret.NewToken()
	if err != nil {
		return "", err
	}
	now := s.now()
	op := store.AsyncOp{IDHash: secret.TokenHash(id), UserID: p.UserID, CredentialID: r.CredentialID,
		Status: store.OpRunning, ExpiresAt: now.Add(validity), CreatedAt: now}
	if err := s.pending.CreateOp(ctx, op); err != nil {
		return "", err
	}
	if err := job.consume(ctx); err != nil {
		_ = s.pending.FinishOp(context.WithoutCancel(ctx), op.IDHash, store.OpFailed, nil, "invalid_request", "SAD no longer valid")
		return "", err
	}
	consumed = true
	bg := context.WithoutCancel(ctx)
	go func() {
		sigs, err := job.sign(bg)
		if err != nil {
			s.log.Error("asynchronous signHash failed", "credential", r.CredentialID, "err", err)
			s.audit(bg, "sign", p.UserID, r.CredentialID, r.Hashes, err, "asynchronous; signAlgo "+r.SignAlgo)
			_ = s.pending.FinishOp(bg, op.IDHash, store.OpFailed, nil, resultCode(err), "The signature could not be made")
			return
		}
		s.metrics.Signed(job.cred.KeyType, job.cred.SCAL, len(sigs))
		if err := s.pending.FinishOp(bg, op.IDHash, store.OpDone, sigs, "", ""); err != nil {
			s.log.Error("asynchronous signHash result lost", "err", err)
		}
	}()
	return id, nil
}

// ErrPending is returned by SignPolling while the operation runs.
var ErrPending = errors.New("operation pending")

// SignPolling returns an asynchronous operation's signatures, ErrPending
// while it runs, or its error.
func (s *Service) SignPolling(ctx context.Context, p Principal, id string) ([][]byte, error) {
	if id == "" {
		return nil, badRequest("Missing string parameter requestID")
	}
	if s.pending == nil {
		return nil, badRequest("Invalid parameter requestID")
	}
	op, err := s.pending.Op(ctx, secret.TokenHash(id))
	if errors.Is(err, store.ErrNotFound) || (err == nil && (op.UserID != p.UserID || !s.now().Before(op.ExpiresAt))) {
		return nil, badRequest("Invalid parameter requestID (unknown or expired)")
	}
	if err != nil {
		return nil, err
	}
	switch op.Status {
	case store.OpRunning:
		return nil, ErrPending
	case store.OpFailed:
		if op.ErrCode == "invalid_request" {
			return nil, badRequest("%s", op.ErrDesc)
		}
		return nil, errors.New("asynchronous signature failed: " + op.ErrDesc)
	}
	return op.Signatures, nil
}
