package authserver

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
)

// ConsentCredential is what the consent page shows of a credential.
type ConsentCredential struct {
	ID          string
	Description string
	Subject     string // certificate subject (RFC 4514)
	KeyType     string
	SCAL        int
	Multisign   int
	NeedPIN     bool
	NeedOTP     bool
	// NeedKey: a security key of the user is a factor (with user
	// verification for SCAL 2): ConsentKeyOptions starts its check and
	// ApproveWithKey takes the answer.
	NeedKey bool
}

// ConsentCredential checks a credential-scope authorization against the
// user's credential (theirs, usable, numSignatures within multisign, hashes
// for SCAL 2) and describes the credential.
func (o *Server) ConsentCredential(ctx context.Context, userID string, a Authorization) (ConsentCredential, error) {
	c, err := o.credential(ctx, userID, a.Request)
	if err != nil {
		return ConsentCredential{}, err
	}
	cc := ConsentCredential{ID: c.ID, Description: c.Description, KeyType: c.KeyType, SCAL: c.SCAL,
		Multisign: c.Multisign, NeedPIN: c.PINHash != "", NeedOTP: c.OTPType != "", NeedKey: o.csc.NeedsKey(c)}
	if len(c.CertChain) > 0 {
		if cert, err := x509.ParseCertificate(c.CertChain[0]); err == nil {
			cc.Subject = cert.Subject.String()
		}
	}
	return cc, nil
}

func (o *Server) credential(ctx context.Context, userID string, r AuthRequest) (store.Credential, error) {
	c, err := o.csc.UserCredential(ctx, userID, r.CredentialID)
	if err != nil {
		return store.Credential{}, err
	}
	if err := o.csc.CheckUsable(c); err != nil {
		return store.Credential{}, err
	}
	if r.SignatureQualifier != "" && r.SignatureQualifier != c.SignatureQualifier {
		return store.Credential{}, badRequest("The credential does not support the signature qualifier %s", r.SignatureQualifier)
	}
	if r.NumSignatures > c.Multisign {
		return store.Credential{}, badRequest("numSignatures %d exceeds the credential's multisign (%d)", r.NumSignatures, c.Multisign)
	}
	if c.SCAL == 2 && len(r.Hashes) == 0 {
		return store.Credential{}, badRequest("Missing parameter hashes: required for a SCAL 2 credential")
	}
	return c, nil
}

// ConsentKeyOptions starts the check of the user's security key for the
// consent to a credential authorization whose credential has that factor
// (NeedKey), on the browser session; it returns the options (JSON) for
// navigator.credentials.get. SCAL 2 credentials require user verification.
func (o *Server) ConsentKeyOptions(ctx context.Context, session, userID string, a Authorization) ([]byte, error) {
	c, err := o.credential(ctx, userID, a.Request)
	if err != nil {
		return nil, err
	}
	return o.BeginCredentialKey(ctx, session, userID, a.Handle, c)
}

// BeginCredentialKey starts the check of the user's security key as a
// factor of credential c (user verification for SCAL 2) on the browser
// session, for the authorization named ref: a pending authorization's
// handle here, or the consent challenge of an external authorization
// server's consent page. It returns the options (JSON) for
// navigator.credentials.get.
func (o *Server) BeginCredentialKey(ctx context.Context, session, userID, ref string, c store.Credential) ([]byte, error) {
	return o.beginAssertion(ctx, session, purposeConsent, userID, ref, c.SCAL >= 2)
}

// FinishCredentialKey checks the browser's answer to the check that
// BeginCredentialKey started for the same user, ref and session, and
// returns the key used (audited as "fido consent" with c's ID).
func (o *Server) FinishCredentialKey(ctx context.Context, session, userID, ref string, c store.Credential, response []byte) (store.WebAuthnKey, error) {
	return o.finishAssertion(ctx, session, purposeConsent, userID, ref, c.ID, response)
}

// Approve records the user's consent: for scope credential it checks the
// credential's factors (counting failures, locking at the limit); then it
// takes the pending request, so a form submitted twice is answered once,
// and issues a single-use authorization code. A credential with a security
// key factor needs ApproveWithKey.
func (o *Server) Approve(ctx context.Context, userID, handle string, factors []csc.AuthData) (code string, a Authorization, err error) {
	return o.approve(ctx, userID, "", handle, factors, nil)
}

// ApproveWithKey is Approve with the browser's answer to the security key
// check that ConsentKeyOptions started on session.
func (o *Server) ApproveWithKey(ctx context.Context, userID, session, handle string, factors []csc.AuthData, keyResponse []byte) (code string, a Authorization, err error) {
	return o.approve(ctx, userID, session, handle, factors, keyResponse)
}

func (o *Server) approve(ctx context.Context, userID, session, handle string, factors []csc.AuthData, keyResponse []byte) (code string, a Authorization, err error) {
	a, err = o.Authorization(ctx, handle)
	if err != nil {
		return "", a, err
	}
	r := a.Request
	keyUsed := ""
	defer func() {
		o.audit(ctx, "oauth2 consent", userID, r.CredentialID, r.Hashes, err,
			fmt.Sprintf("client %s scope %s approve numSignatures=%d%s", a.Client.ID, r.Scope, r.NumSignatures, keyUsed))
	}()
	if r.Scope == service.ScopeCredential {
		c, err := o.credential(ctx, userID, r)
		if err != nil {
			return "", a, err
		}
		if o.csc.NeedsKey(c) {
			if keyResponse == nil {
				return "", a, fail(service.ErrAccessDenied, "This credential needs your security key")
			}
			k, err := o.FinishCredentialKey(ctx, session, userID, handle, c, keyResponse)
			if err != nil {
				return "", a, err
			}
			keyUsed = " " + keyDetail(k)
		}
		if err := o.csc.CheckFactors(ctx, c, factors); err != nil {
			return "", a, err
		}
	}
	row, err := o.st.TakeOAuthRequest(ctx, secret.TokenHash(handle), o.now())
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", a, badRequest("This authorization request was already answered")
		}
		if errors.Is(err, store.ErrExpired) {
			return "", a, errPendingGone()
		}
		return "", a, err
	}
	if p, err := decodePending(row); err != nil || p.Abandoned {
		// Abandoned since the check above: put it back for the pages.
		if err == nil {
			row.CreatedAt = o.now()
			err = errAbandoned()
			if cerr := o.st.CreateOAuthRequest(ctx, row); cerr != nil {
				err = fmt.Errorf("%w (and keeping the abandoned request failed: %w)", err, cerr)
			}
		}
		return "", a, err
	}
	if code, err = secret.NewToken(); err != nil {
		return "", a, err
	}
	now := o.now()
	if err := o.st.CreateOAuthCode(ctx, store.OAuthCode{
		Hash: secret.TokenHash(code), ClientID: a.Client.ID, UserID: userID, RedirectURI: r.RedirectURI,
		CodeChallenge: r.CodeChallenge, Scope: r.Scope, CredentialID: r.CredentialID, NumSignatures: r.NumSignatures,
		HashAlgo: r.HashAlgorithm, Hashes: r.Hashes, Details: r.Details, Family: secret.NewID(16),
		ExpiresAt: now.Add(o.opt.CodeTTL), CreatedAt: now,
	}); err != nil {
		return "", a, err
	}
	return code, a, nil
}

// Deny ends a pending authorization without a code: the user declined
// (cause nil), or the request cannot be granted (cause says why). The
// pending request is taken; the returned error is what the client gets at
// its redirect URI (access_denied, or the cause).
func (o *Server) Deny(ctx context.Context, userID, handle string, cause error) (a Authorization, answer error, err error) {
	a, err = o.Authorization(ctx, handle)
	if err != nil {
		return a, nil, err
	}
	answer = cause
	if answer == nil {
		answer = fail(service.ErrAccessDenied, "The user declined the authorization")
	}
	defer func() {
		res := answer
		if err != nil {
			res = err
		}
		o.audit(ctx, "oauth2 consent", userID, a.Request.CredentialID, a.Request.Hashes, res,
			fmt.Sprintf("client %s scope %s deny", a.Client.ID, a.Request.Scope))
	}()
	if _, err := o.st.TakeOAuthRequest(ctx, secret.TokenHash(handle), o.now()); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExpired) {
			return a, nil, badRequest("This authorization request was already answered")
		}
		return a, nil, err
	}
	return a, answer, nil
}
