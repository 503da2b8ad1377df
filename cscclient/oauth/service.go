package oauth

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/oauth2"

	"github.com/csctoken/csctoken/cscclient"
)

// defaultExpiresIn is the CSC default of expires_in (docs/mapping.md, "CSC notes").
const defaultExpiresIn = 3600 * time.Second

// serviceToken converts a token endpoint answer.
func serviceToken(t *oauth2.Token) *cscclient.Token {
	exp := t.Expiry
	if exp.IsZero() {
		exp = timeNow().Add(defaultExpiresIn)
	}
	return &cscclient.Token{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, Expiry: exp}
}

// Login gets a service-scope token (access and refresh) from the user in
// the browser: the service's login page, then its consent page. It is the
// Login hook of a cscclient.Session (see NewSession).
func (c *Client) Login(ctx context.Context) (*cscclient.Token, error) {
	tok, err := c.authorize(ctx, "service login", false, url.Values{"scope": {"service"}}, bearer)
	if err != nil {
		return nil, err
	}
	c.log.Debug("oauth: service login done", "refresh", tok.RefreshToken != "")
	return serviceToken(tok), nil
}

// Refresh redeems a refresh token at the token endpoint (grant
// refresh_token, scope service) without the user. The server rotates
// refresh tokens: the answer carries the new one. A refused refresh token
// is an *Error matching cscclient.ErrAuthentication (invalid_grant), on
// which a Session asks for a new Login. It is the Refresh hook of a
// cscclient.Session.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (*cscclient.Token, error) {
	if refreshToken == "" {
		return nil, invalidArgument("no refresh token")
	}
	ep, err := c.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	conf := c.oauth2Config(ep, "")
	// An expired token with only the refresh token makes x/oauth2 send
	// grant_type=refresh_token.
	tok, err := conf.TokenSource(c.httpContext(ctx), &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		return nil, tokenError(err)
	}
	return serviceToken(tok), nil
}

// SessionConfig returns the configuration of a cscclient.Session for the
// service scope: Login opens the browser, Refresh uses the token
// endpoint, tokens are kept in store (a tokenstore.Store; nil: in memory)
// under Config.Service and user, like those of a basic session. The user
// name is only a key here (the user chooses the account in the browser);
// use the same one as for basic sessions, or "" when there is none.
func (c *Client) SessionConfig(user string, store cscclient.SecretStore) cscclient.SessionConfig {
	return cscclient.SessionConfig{
		Service: c.cfg.Service,
		User:    user,
		Refresh: c.Refresh,
		Login:   c.Login,
		Store:   store,
		Logger:  c.log,
	}
}

// NewSession returns cscclient.NewSession(c.SessionConfig(user, store)).
func (c *Client) NewSession(user string, store cscclient.SecretStore) *cscclient.Session {
	return cscclient.NewSession(c.SessionConfig(user, store))
}

// Revoke revokes a token at the revocation endpoint (RFC 7009); hint is
// "refresh_token" (the server then revokes the whole grant), "access_token"
// or "". A token the server does not know is not an error.
func (c *Client) Revoke(ctx context.Context, token, hint string) error {
	if token == "" {
		return invalidArgument("no token to revoke")
	}
	ep, err := c.Endpoints(ctx)
	if err != nil {
		return err
	}
	if ep.Revocation == "" {
		return fmt.Errorf("%w: the authorization server has no revocation endpoint", cscclient.ErrNotSupported)
	}
	form := url.Values{"token": {token}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	status, body, err := c.doForm(ctx, EndpointRevoke, ep.Revocation, form)
	if err != nil {
		return err
	}
	if status != http.StatusOK && status != http.StatusNoContent {
		return errorBody(EndpointRevoke, status, body)
	}
	return nil
}

// Logout revokes the session's tokens at the authorization server (the
// refresh token, which ends the grant, then the access token) and forgets
// them, cached and stored. The error is the first one met; the tokens are
// forgotten locally in any case.
func (c *Client) Logout(ctx context.Context, s *cscclient.Session) error {
	var first error
	t, err := s.Current(ctx)
	if err != nil {
		first = err
	}
	if t != nil {
		if t.RefreshToken != "" {
			if err := c.Revoke(ctx, t.RefreshToken, "refresh_token"); err != nil {
				first = err
			}
		}
		if t.AccessToken != "" {
			if err := c.Revoke(ctx, t.AccessToken, "access_token"); err != nil && first == nil {
				first = err
			}
		}
	}
	if err := s.Clear(ctx); err != nil && first == nil {
		first = err
	}
	if first != nil {
		return fmt.Errorf("oauth: logout: %w", first)
	}
	return nil
}
