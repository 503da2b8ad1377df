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

// pushedRequest is a credential request a client pushed, as Abandon and
// Held find it: the pushed row itself while the browser has not opened it,
// else the pending authorization it became.
type pushedRequest struct {
	row    store.OAuthRequest
	p      oauthPending
	hash   []byte // of row
	handle string // of the pending authorization (pendingHandle)
}

// findPushed finds the unexpired request requestURI names, checking that
// userID owns its credential; unknown, answered, expired and another
// user's requests are ErrInvalidRequestURI alike.
func (o *Server) findPushed(ctx context.Context, userID, requestURI string) (pushedRequest, error) {
	pushed, ok := strings.CutPrefix(requestURI, service.RequestURIPrefix)
	if !ok || pushed == "" {
		return pushedRequest{}, fail(ErrInvalidRequestURI, "request_uri was not issued by this server")
	}
	unknown := fail(ErrInvalidRequestURI, "request_uri is unknown, was already answered or has expired")
	r := pushedRequest{handle: pendingHandle(pushed)}
	r.hash = secret.TokenHash(r.handle)
	row, err := o.st.OAuthRequest(ctx, r.hash)
	if err == nil && row.Pushed {
		return r, unknown
	}
	if errors.Is(err, store.ErrNotFound) {
		// Not opened in the browser yet: the pushed request itself.
		r.hash = secret.TokenHash(pushed)
		row, err = o.st.OAuthRequest(ctx, r.hash)
		if err == nil && !row.Pushed {
			return r, unknown
		}
	}
	if errors.Is(err, store.ErrNotFound) || (err == nil && !o.now().Before(row.ExpiresAt)) {
		return r, unknown
	}
	if err != nil {
		return r, err
	}
	if r.p, err = decodePending(row); err != nil {
		return r, err
	}
	r.row = row
	if r.p.Request.Scope != service.ScopeCredential {
		return r, badRequest("Only credential authorizations can be abandoned this way")
	}
	if _, err := o.csc.UserCredential(ctx, userID, r.p.Request.CredentialID); err != nil {
		return r, unknown // another user's: as if unknown
	}
	return r, nil
}

// Held reports the state of the request requestURI names for the client
// that holds it open (rssp/oauth's hold): "pending" while the user may
// still answer it, "abandoned", or "gone" (answered, expired, unknown).
// Errors are those of the store and of findPushed's checks other than
// ErrInvalidRequestURI.
func (o *Server) Held(ctx context.Context, userID, requestURI string) (string, error) {
	r, err := o.findPushed(ctx, userID, requestURI)
	switch {
	case errors.Is(err, ErrInvalidRequestURI):
		return "gone", nil
	case err != nil:
		return "", err
	case r.p.Abandoned:
		return "abandoned", nil
	}
	return "pending", nil
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
	r, err := o.findPushed(ctx, userID, requestURI)
	if err != nil {
		return err
	}
	if r.p.Abandoned {
		return nil
	}
	defer func() { o.audit(ctx, "oauth2 abandon", userID, r.p.Request.CredentialID, nil, err, "") }()
	// Take the row so that a consent submitted meanwhile is answered
	// once: either the user's approval took it first (the request was
	// answered) or this does, and the approval finds it abandoned.
	now := o.now()
	if _, err := o.st.TakeOAuthRequest(ctx, r.hash, now); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExpired) {
			return fail(ErrInvalidRequestURI, "request_uri was answered meanwhile")
		}
		return err
	}
	r.p.Abandoned = true
	expires := r.row.ExpiresAt
	if r.row.Pushed {
		expires = now.Add(o.opt.PendingTTL)
	}
	if _, err := o.savePending(ctx, r.handle, r.row.ClientID, false, r.p, expires.Sub(now)); err != nil {
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
