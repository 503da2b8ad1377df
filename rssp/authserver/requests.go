package authserver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
)

// AuthRequest is an authorization request (oauth2/authorize,
// oauth2/pushed_authorize) as rssp/oauth parsed it from the query, the form
// or authorization_details.
type AuthRequest struct {
	ClientID            string
	ResponseType        string
	RedirectURI         string // as sent; empty when omitted
	State               string
	Scope               string // as sent, space-separated
	CodeChallenge       string
	CodeChallengeMethod string
	// The credential scope's parameters (CSC), from the query or RAR.
	CredentialID       string
	SignatureQualifier string
	NumSignatures      int
	Hashes             [][]byte
	HashAlgorithm      string
	Labels             []string // document labels (RAR), parallel to Hashes
	Details            []byte   // authorization_details as received, to echo
	Description        string
}

// Authorization is a pending authorization request: checked, waiting for
// the user's login and consent in the browser.
type Authorization struct {
	Handle      string // names it in the pages' URLs
	Request     AuthRequest
	Client      store.OAuthClient
	RedirectURI string // where the answer goes
	ExpiresAt   time.Time
}

// oauthPending is what an OAuthRequest row's Params hold.
type oauthPending struct {
	Request     AuthRequest
	RedirectURI string
	// Abandoned: the client that asked gave up waiting (Abandon); the
	// row stays until it expires so the pages can say so.
	Abandoned bool `json:",omitempty"`
}

// pendingHandle is the handle of the pending authorization that the pushed
// request named by pushed becomes at oauth2/authorize: derived from it, so
// that the client that pushed the request can still name it (Abandon).
// Knowing it gives nothing the request_uri does not: the pages need the
// user's session.
func pendingHandle(pushed string) string {
	h := sha256.Sum256([]byte("csctoken pending authorization\x00" + pushed))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

var challengeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// checkRequest checks and completes the parameters of a request that do
// not depend on the user: response type, PKCE, scope and the credential
// scope's parameters.
func (o *Server) checkRequest(r *AuthRequest) error {
	if r.ResponseType != "code" {
		if r.ResponseType == "" {
			return badRequest("Missing parameter response_type")
		}
		return fail(ErrUnsupportedResponseType, "response_type must be code")
	}
	switch {
	case r.CodeChallenge == "":
		return badRequest("Missing parameter code_challenge: PKCE (RFC 7636) with S256 is required")
	case r.CodeChallengeMethod == "" || r.CodeChallengeMethod == "plain":
		return badRequest("code_challenge_method plain is not allowed: use S256")
	case r.CodeChallengeMethod != "S256":
		return badRequest("Unsupported code_challenge_method %q: use S256", r.CodeChallengeMethod)
	case !challengeRE.MatchString(r.CodeChallenge):
		return badRequest("Invalid code_challenge: an S256 challenge is 43 base64url characters")
	case len(r.State) > 2048:
		return badRequest("state is too long")
	case len(r.Description) > 500:
		return badRequest("description is longer than 500 characters")
	}
	scope, err := parseScope(r.Scope, r.Details != nil)
	if err != nil {
		return err
	}
	r.Scope = scope
	credParams := r.CredentialID != "" || r.SignatureQualifier != "" || r.NumSignatures != 0 ||
		len(r.Hashes) > 0 || r.HashAlgorithm != ""
	if scope == service.ScopeService {
		if r.Details != nil {
			return badRequest("authorization_details need scope credential")
		}
		if credParams {
			return badRequest("credentialID, signatureQualifier, numSignatures and hashes go with scope credential")
		}
		return nil
	}
	if r.SignatureQualifier != "" {
		if !csc.IsSignatureQualifier(r.SignatureQualifier) {
			return badRequest("Invalid parameter signatureQualifier")
		}
		if r.CredentialID == "" {
			return badRequest("signatureQualifier without credentialID is not supported: name the credential " +
				"(credentials/list with signatureQualifier finds the credentials that carry it)")
		}
	}
	if r.CredentialID == "" {
		return badRequest("Missing parameter credentialID")
	}
	if r.NumSignatures == 0 && len(r.Hashes) > 0 {
		r.NumSignatures = len(r.Hashes)
	}
	if r.NumSignatures < 1 || r.NumSignatures > o.svc.MaxMultisign {
		return badRequest("Invalid parameter numSignatures: between 1 and %d", o.svc.MaxMultisign)
	}
	if _, err := service.CheckHashes(r.Hashes, r.HashAlgorithm, o.svc.MaxHashes); err != nil {
		return err
	}
	if len(r.Hashes) > 0 && len(r.Hashes) != r.NumSignatures {
		return badRequest("numSignatures (%d) does not match the number of hashes (%d)", r.NumSignatures, len(r.Hashes))
	}
	if len(r.Hashes) == 0 {
		r.HashAlgorithm = ""
	}
	if len(r.Labels) != 0 && len(r.Labels) != len(r.Hashes) {
		return badRequest("every document digest needs its label")
	}
	return nil
}

// parseScope reads a scope parameter: service (the default) or credential,
// not both (CSC API v2); with authorization_details the default
// is credential.
func parseScope(raw string, rar bool) (string, error) {
	var scope string
	for _, s := range strings.Fields(raw) {
		switch s {
		case service.ScopeService, service.ScopeCredential:
		default:
			return "", fail(ErrInvalidScope, "Unknown scope %q: service or credential", s)
		}
		if scope != "" && scope != s {
			return "", fail(ErrInvalidScope, "Request scope service and scope credential separately")
		}
		scope = s
	}
	if scope == "" {
		scope = service.ScopeService
		if rar {
			scope = service.ScopeCredential
		}
	}
	return scope, nil
}

// PushAuthorization stores a pushed authorization request of an
// authenticated client (RFC 9126) and returns its request_uri.
func (o *Server) PushAuthorization(ctx context.Context, client store.OAuthClient, r AuthRequest) (requestURI string, ttl time.Duration, err error) {
	if r.ClientID != "" && r.ClientID != client.ID {
		return "", 0, badRequest("client_id does not match the authenticated client")
	}
	r.ClientID = client.ID
	_, redirect, err := o.resolveRedirect(ctx, client.ID, r.RedirectURI)
	if err != nil {
		return "", 0, err
	}
	if err := o.checkRequest(&r); err != nil {
		return "", 0, err
	}
	handle, err := o.savePending(ctx, "", client.ID, true, oauthPending{Request: r, RedirectURI: redirect}, o.opt.RequestURITTL)
	if err != nil {
		return "", 0, err
	}
	return service.RequestURIPrefix + handle, o.opt.RequestURITTL, nil
}

// savePending stores a request under handle (a new one when empty) and
// returns the handle.
func (o *Server) savePending(ctx context.Context, handle, clientID string, pushed bool, p oauthPending, ttl time.Duration) (string, error) {
	if handle == "" {
		var err error
		if handle, err = secret.NewToken(); err != nil {
			return "", err
		}
	}
	params, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encode authorization request: %w", err)
	}
	now := o.now()
	if err := o.st.CreateOAuthRequest(ctx, store.OAuthRequest{Hash: secret.TokenHash(handle), ClientID: clientID,
		Pushed: pushed, Params: params, ExpiresAt: now.Add(ttl), CreatedAt: now}); err != nil {
		return "", err
	}
	return handle, nil
}

func decodePending(row store.OAuthRequest) (oauthPending, error) {
	var p oauthPending
	if err := json.Unmarshal(row.Params, &p); err != nil {
		return oauthPending{}, fmt.Errorf("decode authorization request: %w", err)
	}
	return p, nil
}

// StartAuthorization begins an authorization at oauth2/authorize: with
// requestURI, the pushed request it names (taken: it serves once); without,
// r from the query. On failure, a returned Authorization with a RedirectURI
// says the error goes back to the client; otherwise the user is told.
func (o *Server) StartAuthorization(ctx context.Context, r AuthRequest, requestURI string) (Authorization, error) {
	var a Authorization
	var err error
	if requestURI != "" {
		if a, err = o.takePushed(ctx, r.ClientID, requestURI); err != nil {
			return a, err
		}
	} else {
		a.Request = r
		if a.Client, a.RedirectURI, err = o.resolveRedirect(ctx, r.ClientID, r.RedirectURI); err != nil {
			return Authorization{}, err
		}
		if err := o.checkRequest(&a.Request); err != nil {
			return a, err
		}
	}
	a.Handle, err = o.savePending(ctx, a.Handle, a.Client.ID, false, oauthPending{Request: a.Request, RedirectURI: a.RedirectURI}, o.opt.PendingTTL)
	if err != nil {
		return Authorization{}, err
	}
	a.ExpiresAt = o.now().Add(o.opt.PendingTTL)
	return a, nil
}

// takePushed takes the pushed request a request_uri names (RFC 9126 §4).
func (o *Server) takePushed(ctx context.Context, clientID, requestURI string) (Authorization, error) {
	handle, ok := strings.CutPrefix(requestURI, service.RequestURIPrefix)
	if !ok || handle == "" {
		return Authorization{}, fail(ErrInvalidRequestURI, "request_uri was not issued by this server")
	}
	if clientID == "" {
		return Authorization{}, badRequest("Missing parameter client_id (required with request_uri)")
	}
	hash := secret.TokenHash(handle)
	row, err := o.st.OAuthRequest(ctx, hash)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !row.Pushed) {
		if o.abandoned(ctx, pendingHandle(handle)) {
			return Authorization{}, errAbandoned()
		}
		return Authorization{}, fail(ErrInvalidRequestURI, "request_uri is unknown or was already used")
	}
	if err != nil {
		return Authorization{}, err
	}
	if row.ClientID != clientID {
		return Authorization{}, fail(ErrInvalidRequestURI, "request_uri was pushed by another client")
	}
	row, err = o.st.TakeOAuthRequest(ctx, hash, o.now())
	expired := errors.Is(err, store.ErrExpired)
	if errors.Is(err, store.ErrNotFound) {
		return Authorization{}, fail(ErrInvalidRequestURI, "request_uri is unknown or was already used")
	}
	if err != nil && !expired {
		return Authorization{}, err
	}
	p, err := decodePending(row)
	if err != nil {
		return Authorization{}, err
	}
	c, err := o.st.OAuthClient(ctx, clientID)
	if err != nil {
		return Authorization{}, err
	}
	a := Authorization{Handle: pendingHandle(handle), Request: p.Request, Client: c, RedirectURI: p.RedirectURI}
	if expired {
		return a, fail(ErrInvalidRequestURI, "request_uri has expired: push the request again")
	}
	return a, nil
}

// errPendingGone is the answer for a pending request that is unknown,
// answered or expired.
func errPendingGone() error {
	return badRequest("This authorization request is unknown, was already answered, or has expired; start again from the application")
}

// Authorization returns the pending authorization a page names.
func (o *Server) Authorization(ctx context.Context, handle string) (Authorization, error) {
	if handle == "" {
		return Authorization{}, errPendingGone()
	}
	row, err := o.st.OAuthRequest(ctx, secret.TokenHash(handle))
	if errors.Is(err, store.ErrNotFound) || (err == nil && (row.Pushed || !o.now().Before(row.ExpiresAt))) {
		return Authorization{}, errPendingGone()
	}
	if err != nil {
		return Authorization{}, err
	}
	p, err := decodePending(row)
	if err != nil {
		return Authorization{}, err
	}
	if p.Abandoned {
		return Authorization{}, errAbandoned()
	}
	c, err := o.st.OAuthClient(ctx, row.ClientID)
	if err != nil {
		return Authorization{}, err
	}
	return Authorization{Handle: handle, Request: p.Request, Client: c, RedirectURI: p.RedirectURI, ExpiresAt: row.ExpiresAt}, nil
}
