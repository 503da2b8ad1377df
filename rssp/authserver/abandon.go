package authserver

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
)

// ErrAbandoned: the client that asked for an authorization gave up waiting
// for the user (Abandon): the pages say so, and it cannot be approved.
var ErrAbandoned = errors.New("authorization abandoned")

// AbandonedMessage is what the pages tell the user about an abandoned
// request.
const AbandonedMessage = "This request was abandoned by the program that asked for it; you can close this page."

func errAbandoned() error { return fail(ErrAbandoned, AbandonedMessage) }

// abandoned reports whether the pending authorization handle names was
// abandoned.
func (o *Server) abandoned(ctx context.Context, handle string) bool {
	row, err := o.st.OAuthRequest(ctx, secret.TokenHash(handle))
	if err != nil || row.Pushed || !o.now().Before(row.ExpiresAt) {
		return false
	}
	p, err := decodePending(row)
	return err == nil && p.Abandoned
}

// Abandon marks the credential-scope authorization a pushed request started
// as abandoned by the program that asked for it (it stopped waiting: the
// host quit, the signature was cancelled). requestURI is what
// oauth2/pushed_authorize returned; userID is the owner of the service
// token the program called with, who must own the request's credential.
// Whether the browser has opened the request yet or not, the consent page
// then says it was abandoned, and approving it is refused: no code, no
// SAD. A request already answered is ErrInvalidRequestURI; abandoning twice
// is not an error.
func (o *Server) Abandon(ctx context.Context, userID, requestURI string) (err error) {
	var credID string
	defer func() {
		if credID != "" || err == nil {
			o.audit(ctx, "oauth2 abandon", userID, credID, nil, err, "")
		}
	}()
	pushed, ok := strings.CutPrefix(requestURI, service.RequestURIPrefix)
	if !ok || pushed == "" {
		return fail(ErrInvalidRequestURI, "request_uri was not issued by this server")
	}
	unknown := fail(ErrInvalidRequestURI, "request_uri is unknown, was already answered or has expired")
	now := o.now()
	handle := pendingHandle(pushed)
	hash, fromHash := secret.TokenHash(handle), secret.TokenHash(pushed)
	row, err := o.st.OAuthRequest(ctx, hash)
	if err == nil && row.Pushed {
		return unknown
	}
	if errors.Is(err, store.ErrNotFound) {
		// Not opened in the browser yet: the pushed request itself.
		row, err = o.st.OAuthRequest(ctx, fromHash)
		if err == nil && !row.Pushed {
			return unknown
		}
	} else {
		fromHash = hash
	}
	if errors.Is(err, store.ErrNotFound) || (err == nil && !now.Before(row.ExpiresAt)) {
		return unknown
	}
	if err != nil {
		return err
	}
	p, err := decodePending(row)
	if err != nil {
		return err
	}
	if p.Request.Scope != service.ScopeCredential {
		return badRequest("Only credential authorizations can be abandoned this way")
	}
	if _, err := o.csc.UserCredential(ctx, userID, p.Request.CredentialID); err != nil {
		return unknown // another user's: as if unknown
	}
	credID = p.Request.CredentialID
	if p.Abandoned {
		return nil
	}
	// Take the row so that a consent submitted meanwhile is answered
	// once: either the user's approval took it first (the request was
	// answered) or this does, and the approval finds it abandoned.
	if _, err := o.st.TakeOAuthRequest(ctx, fromHash, now); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExpired) {
			return unknown
		}
		return err
	}
	p.Abandoned = true
	expires := row.ExpiresAt
	if row.Pushed {
		expires = now.Add(o.opt.PendingTTL)
	}
	if _, err := o.savePending(ctx, handle, row.ClientID, false, p, expires.Sub(now)); err != nil {
		return fmt.Errorf("mark the authorization abandoned: %w", err)
	}
	return nil
}

// State is what the pages' status poll answers about a pending
// authorization: "pending", "abandoned" or "gone" (answered, expired or
// unknown).
func (o *Server) State(ctx context.Context, handle string) (string, error) {
	_, err := o.Authorization(ctx, handle)
	switch {
	case err == nil:
		return "pending", nil
	case errors.Is(err, ErrAbandoned):
		return "abandoned", nil
	case errors.Is(err, service.ErrInvalidRequest):
		return "gone", nil
	}
	return "", err
}
