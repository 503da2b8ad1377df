package cscservice

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/cscclient"
	"github.com/csctoken/csctoken/module"
)

// Authorize implements module.Service: credentials/authorize with req.PIN
// as the credential's Password object (no authData when the PIN is
// empty). When the service authorizes out of band (a 202 with a handle,
// PasswordOOB), credentials/authorizeCheck is polled until the user
// approved, denied (module.ErrCanceled) or the context's deadline passed
// (module.ErrCanceled too: the user did not approve in time).
func (s *Service) Authorize(ctx context.Context, req module.AuthorizeRequest) (module.SAD, error) {
	ctx, cancel := bound(ctx, s.cfg.Timeout)
	defer cancel()
	n := max(req.NumSignatures, 1)
	in := &csc.AuthorizeRequest{
		CredentialID:  req.CredentialID,
		NumSignatures: n,
		Description:   req.Description,
	}
	if len(req.Hashes) > 0 {
		in.Hashes = csc.BytesList(req.Hashes)
		in.HashAlgorithmOID = req.HashAlgOID
	}
	if len(req.PIN) > 0 {
		id := req.PINID
		if id == "" {
			id = defaultPINID
		}
		// The wire is JSON: the PIN becomes a string here, for the
		// duration of the request, and nowhere else.
		in.AuthData = []csc.AuthData{{ID: id, Value: string(req.PIN)}}
	}
	start := time.Now()
	res, err := s.cl.Authorize(ctx, in)
	if err != nil {
		return module.SAD{}, s.mapErr("credentials/authorize", err)
	}
	if res.SAD == "" && res.Handle != "" {
		s.log.Info("authorization pending out of band; polling", "credential", req.CredentialID)
		opts := s.poll
		if dl, ok := ctx.Deadline(); ok {
			opts.Timeout = time.Until(dl)
		}
		res, err = s.cl.WaitAuthorization(ctx, res.Handle, opts)
		switch {
		case err == nil:
		case errors.Is(err, context.Canceled):
			return module.SAD{}, fmt.Errorf("credentials/authorizeCheck: %w", err)
		case errors.Is(err, cscclient.ErrAccessDenied):
			return module.SAD{}, fmt.Errorf("credentials/authorizeCheck: the user denied the authorization: %w: %w", module.ErrCanceled, err)
		case errors.Is(err, cscclient.ErrTimeout) && !errors.Is(err, cscclient.ErrTransport):
			return module.SAD{}, fmt.Errorf("credentials/authorizeCheck: not approved within %v: %w: %w",
				time.Since(start).Round(time.Second), module.ErrCanceled, err)
		default:
			return module.SAD{}, s.mapErr("credentials/authorizeCheck", err)
		}
	}
	sad := module.SAD{Value: res.SAD, Remaining: n}
	if res.ExpiresIn > 0 {
		sad.ExpiresAt = start.Add(time.Duration(res.ExpiresIn) * time.Second)
	}
	return sad, nil
}

// SignHash implements module.Service: signatures/signHash in synchronous
// mode. ECDSA signatures come back in DER (the client normalises raw r||s
// to DER; the module accepts both). A SAD from AuthorizeInBrowser holds a
// credential token: it is sent as the Bearer token, without SAD, and a
// token the service refuses (expired, used up) is module.ErrSADInvalid,
// so the module authorizes again, not a lost service login.
func (s *Service) SignHash(ctx context.Context, req module.SignRequest) ([][]byte, error) {
	ctx, cancel := bound(ctx, s.cfg.Timeout)
	defer cancel()
	sad := req.SAD.Value
	credToken, isToken := credentialToken(req.SAD)
	if isToken {
		ctx, sad = cscclient.WithCredentialToken(ctx, credToken), ""
	}
	res, err := s.cl.SignHash(ctx, &csc.SignHashRequest{
		CredentialID:     req.CredentialID,
		SAD:              sad,
		Hashes:           csc.BytesList(req.Hashes),
		HashAlgorithmOID: req.HashAlgOID,
		SignAlgo:         req.SignAlgOID,
		SignAlgoParams:   req.SignAlgParams,
	})
	if err != nil {
		var ce *cscclient.Error
		if isToken && (errors.Is(err, cscclient.ErrInvalidToken) || errors.Is(err, cscclient.ErrExpiredToken) ||
			errors.Is(err, cscclient.ErrAuthentication) || (errors.As(err, &ce) && ce.StatusCode == http.StatusUnauthorized)) {
			return nil, fmt.Errorf("signatures/signHash: credential token refused: %w: %w", module.ErrSADInvalid, err)
		}
		return nil, s.mapErr("signatures/signHash", err)
	}
	return csc.Raw(res.Signatures), nil
}
