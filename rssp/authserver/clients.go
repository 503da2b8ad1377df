package authserver

import (
	"context"
	"errors"
	"fmt"

	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
)

// AuthenticateClient authenticates a client at the token, PAR and
// revocation endpoints (RFC 6749 §2.3): a confidential client with its
// secret, a public client by its ID alone (an empty secret is no secret).
func (o *Server) AuthenticateClient(ctx context.Context, id, secretValue string) (store.OAuthClient, error) {
	if id == "" {
		return store.OAuthClient{}, fail(ErrInvalidClient, "Missing client_id (client authentication)")
	}
	c, err := o.st.OAuthClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		if secretValue != "" {
			if err := o.csc.CheckClientSecret(ctx, id, secretValue, ""); !errors.Is(err, secret.ErrMismatch) {
				return store.OAuthClient{}, err // throttled or busy
			}
		}
		return store.OAuthClient{}, fail(ErrInvalidClient, "Client authentication failed")
	}
	if err != nil {
		return store.OAuthClient{}, err
	}
	switch {
	case c.Public() && secretValue != "":
		return store.OAuthClient{}, fail(ErrInvalidClient, "Client authentication failed: a public client has no secret")
	case c.Public():
		return c, nil
	case secretValue == "":
		return store.OAuthClient{}, fail(ErrInvalidClient, "Client authentication failed: this client must authenticate with its secret")
	}
	if err := o.csc.CheckClientSecret(ctx, c.ID, secretValue, c.SecretHash); err != nil {
		if !errors.Is(err, secret.ErrMismatch) {
			return store.OAuthClient{}, fmt.Errorf("client %s secret: %w", c.ID, err)
		}
		return store.OAuthClient{}, fail(ErrInvalidClient, "Client authentication failed")
	}
	return c, nil
}

// ResolveRedirect finds the client and the redirect URI of a request; on
// failure the error must be shown to the user, not sent to the URI.
func (o *Server) ResolveRedirect(ctx context.Context, clientID, redirectURI string) (store.OAuthClient, string, error) {
	return o.resolveRedirect(ctx, clientID, redirectURI)
}

// resolveRedirect finds the client and the redirect URI of a request.
// Its errors must not be sent to the redirect URI (RFC 6749 §4.1.2.1).
func (o *Server) resolveRedirect(ctx context.Context, clientID, redirectURI string) (store.OAuthClient, string, error) {
	if clientID == "" {
		return store.OAuthClient{}, "", badRequest("Missing parameter client_id")
	}
	c, err := o.st.OAuthClient(ctx, clientID)
	if errors.Is(err, store.ErrNotFound) {
		return store.OAuthClient{}, "", fail(ErrInvalidClient, "Unknown client_id %q", clientID)
	}
	if err != nil {
		return store.OAuthClient{}, "", err
	}
	if len(c.RedirectURIs) == 0 {
		return store.OAuthClient{}, "", fail(ErrUnauthorizedClient, "Client %q has no redirect URI: it cannot use the authorization code grant", clientID)
	}
	if redirectURI == "" {
		if len(c.RedirectURIs) != 1 {
			return store.OAuthClient{}, "", badRequest("Missing parameter redirect_uri: the client has several")
		}
		return c, c.RedirectURIs[0], nil
	}
	for _, r := range c.RedirectURIs {
		if service.RedirectMatches(r, redirectURI) {
			return c, redirectURI, nil
		}
	}
	return store.OAuthClient{}, "", badRequest("redirect_uri is not registered for client %q", clientID)
}
