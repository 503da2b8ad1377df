package authserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
)

// Tokens is the answer of oauth2/token.
type Tokens struct {
	AccessToken  string
	RefreshToken string // service scope, authorization_code and refresh_token grants
	ExpiresIn    time.Duration
	Scope        string
	CredentialID string // credential scope
	Details      []byte // authorization_details of the request (RAR), to echo
}

var verifierRE = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// ExchangeCode is the authorization_code grant. The code is taken first,
// atomically, so it serves once whatever follows; a code presented again
// revokes what its first exchange issued (RFC 6749 §4.1.2).
func (o *Server) ExchangeCode(ctx context.Context, client store.OAuthClient, code, redirectURI, verifier string) (tok Tokens, err error) {
	var c store.OAuthCode
	defer func() {
		o.audit(ctx, "oauth2 token", c.UserID, c.CredentialID, nil, err, "client "+client.ID+" authorization_code scope "+c.Scope)
	}()
	switch {
	case code == "":
		return Tokens{}, badRequest("Missing parameter code")
	case verifier == "":
		return Tokens{}, badRequest("Missing parameter code_verifier (PKCE)")
	case !verifierRE.MatchString(verifier):
		return Tokens{}, badRequest("Invalid code_verifier: 43 to 128 characters of A-Z a-z 0-9 - . _ ~")
	}
	access, err := secret.NewToken()
	if err != nil {
		return Tokens{}, err
	}
	c, err = o.st.ConsumeOAuthCode(ctx, secret.TokenHash(code), secret.TokenHash(access), o.now())
	switch {
	case errors.Is(err, store.ErrUsed):
		if rerr := o.revokeGrant(ctx, c); rerr != nil {
			return Tokens{}, rerr
		}
		return Tokens{}, fail(ErrInvalidGrant, "The authorization code was already used; the tokens issued with it are revoked")
	case errors.Is(err, store.ErrExpired):
		return Tokens{}, fail(ErrInvalidGrant, "The authorization code has expired")
	case errors.Is(err, store.ErrNotFound):
		return Tokens{}, fail(ErrInvalidGrant, "Invalid authorization code")
	case err != nil:
		return Tokens{}, err
	}
	if c.ClientID != client.ID {
		return Tokens{}, fail(ErrInvalidGrant, "The authorization code was issued to another client")
	}
	if c.RedirectURI != "" && redirectURI != c.RedirectURI {
		return Tokens{}, fail(ErrInvalidGrant, "redirect_uri does not match the authorization request's")
	}
	if c.RedirectURI == "" && redirectURI != "" && (len(client.RedirectURIs) != 1 || client.RedirectURIs[0] != redirectURI) {
		return Tokens{}, fail(ErrInvalidGrant, "redirect_uri does not match the authorization request's")
	}
	sum := sha256.Sum256([]byte(verifier))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(c.CodeChallenge)) != 1 {
		return Tokens{}, fail(ErrInvalidGrant, "code_verifier does not match the code_challenge")
	}
	return o.issue(ctx, c, access)
}

// revokeGrant revokes what a code's first exchange issued: its token
// family and, for a credential token, its SAD.
func (o *Server) revokeGrant(ctx context.Context, c store.OAuthCode) error {
	if err := o.st.RevokeFamily(ctx, c.Family); err != nil {
		return err
	}
	if len(c.TokenHash) > 0 {
		if err := o.st.DeleteSAD(ctx, c.TokenHash); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// issue creates the tokens of an exchanged code.
func (o *Server) issue(ctx context.Context, c store.OAuthCode, access string) (Tokens, error) {
	u, err := o.st.UserByID(ctx, c.UserID)
	if err != nil || u.Disabled {
		return Tokens{}, fail(ErrInvalidGrant, "The account is no longer active")
	}
	if c.Scope != service.ScopeCredential {
		return o.issueService(ctx, c.UserID, c.ClientID, c.Family, access, true)
	}
	cred, err := o.st.Credential(ctx, c.CredentialID)
	if err != nil {
		return Tokens{}, fmt.Errorf("credential %s: %w", c.CredentialID, err)
	}
	if err := o.csc.CheckUsable(cred); err != nil {
		return Tokens{}, fail(ErrInvalidGrant, "The credential can no longer sign: %s", description(err))
	}
	ttl, err := o.csc.IssueCredentialToken(ctx, access, service.CredentialGrant{UserID: c.UserID, ClientID: c.ClientID,
		Family: c.Family, CredentialID: c.CredentialID, NumSignatures: c.NumSignatures, HashAlgo: c.HashAlgo, Hashes: c.Hashes})
	if err != nil {
		return Tokens{}, err
	}
	return Tokens{AccessToken: access, ExpiresIn: ttl, Scope: service.ScopeCredential,
		CredentialID: c.CredentialID, Details: c.Details}, nil
}

// issueService creates a service-scope access token, and a refresh token
// of the same family when refresh is set.
func (o *Server) issueService(ctx context.Context, userID, clientID, family, access string, refresh bool) (Tokens, error) {
	out, rows, err := o.newServiceTokens(userID, clientID, family, access, refresh)
	if err != nil {
		return Tokens{}, err
	}
	for _, t := range rows {
		if err := o.st.CreateToken(ctx, t); err != nil {
			return Tokens{}, err
		}
	}
	return out, nil
}

// newServiceTokens makes the rows of a service-scope access token (access)
// and, with refresh, a new refresh token: what to hand out, what to store.
func (o *Server) newServiceTokens(userID, clientID, family, access string, refresh bool) (Tokens, []store.Token, error) {
	now := o.now()
	rows := []store.Token{{Hash: secret.TokenHash(access), Kind: store.AccessToken,
		UserID: userID, ClientID: clientID, Scope: service.ScopeService, Family: family,
		ExpiresAt: now.Add(o.svc.AccessTokenTTL), CreatedAt: now}}
	out := Tokens{AccessToken: access, ExpiresIn: o.svc.AccessTokenTTL, Scope: service.ScopeService}
	if refresh {
		rt, err := secret.NewToken()
		if err != nil {
			return Tokens{}, nil, err
		}
		rows = append(rows, store.Token{Hash: secret.TokenHash(rt), Kind: store.RefreshToken,
			UserID: userID, ClientID: clientID, Scope: service.ScopeService, Family: family,
			ExpiresAt: now.Add(o.svc.RefreshTokenTTL), CreatedAt: now})
		out.RefreshToken = rt
	}
	return out, rows, nil
}

// Refresh is the refresh_token grant (service scope only): the refresh
// token is rotated; presenting a revoked one revokes its whole family.
func (o *Server) Refresh(ctx context.Context, client store.OAuthClient, refresh, scope string) (tok Tokens, err error) {
	var t store.Token
	defer func() { o.audit(ctx, "oauth2 token", t.UserID, "", nil, err, "client "+client.ID+" refresh_token") }()
	if refresh == "" {
		return Tokens{}, badRequest("Missing parameter refresh_token")
	}
	if s, err := parseScope(scope, false); err != nil || s != service.ScopeService {
		return Tokens{}, fail(ErrInvalidScope, "A refresh token gives scope service only")
	}
	t, err = o.st.Token(ctx, secret.TokenHash(refresh))
	if errors.Is(err, store.ErrNotFound) || (err == nil && t.Kind != store.RefreshToken) {
		t = store.Token{}
		return Tokens{}, fail(ErrInvalidGrant, "Invalid refresh token")
	}
	if err != nil {
		return Tokens{}, err
	}
	if t.ClientID != client.ID {
		return Tokens{}, fail(ErrInvalidGrant, "The refresh token was issued to another client")
	}
	if t.Revoked {
		if err := o.st.RevokeFamily(ctx, t.Family); err != nil {
			return Tokens{}, err
		}
		return Tokens{}, fail(ErrInvalidGrant, "The refresh token was revoked")
	}
	if !o.now().Before(t.ExpiresAt) {
		return Tokens{}, fail(ErrInvalidGrant, "The refresh token has expired")
	}
	u, err := o.st.UserByID(ctx, t.UserID)
	if err != nil || u.Disabled {
		return Tokens{}, fail(ErrInvalidGrant, "The account is no longer active")
	}
	access, err := secret.NewToken()
	if err != nil {
		return Tokens{}, err
	}
	out, rows, err := o.newServiceTokens(t.UserID, client.ID, t.Family, access, true)
	if err != nil {
		return Tokens{}, err
	}
	// One compare-and-set: of simultaneous redemptions exactly one rotates
	// (its new tokens created in the same step); the others are reuse and
	// revoke the family, the winner's new tokens too.
	if err := o.st.RotateToken(ctx, t.Hash, rows); errors.Is(err, store.ErrRevoked) {
		if err := o.st.RevokeFamily(ctx, t.Family); err != nil {
			return Tokens{}, err
		}
		return Tokens{}, fail(ErrInvalidGrant, "The refresh token was revoked")
	} else if err != nil {
		return Tokens{}, err
	}
	return out, nil
}

// ClientCredentials is the client_credentials grant: a confidential client
// registered to act for a user gets a service token for that user.
func (o *Server) ClientCredentials(ctx context.Context, client store.OAuthClient, scope string) (tok Tokens, err error) {
	defer func() {
		o.audit(ctx, "oauth2 token", client.UserID, "", nil, err, "client "+client.ID+" client_credentials")
	}()
	if client.Public() {
		return Tokens{}, fail(ErrUnauthorizedClient, "client_credentials is for confidential clients")
	}
	s, err := parseScope(scope, false)
	if err != nil {
		return Tokens{}, err
	}
	if s != service.ScopeService {
		return Tokens{}, fail(ErrInvalidScope, "Scope credential needs the user's consent: use the authorization code grant")
	}
	if client.UserID == "" {
		return Tokens{}, fail(ErrUnauthorizedClient, "This client does not act for an account (rssp admin client add --user)")
	}
	u, err := o.st.UserByID(ctx, client.UserID)
	if err != nil || u.Disabled {
		return Tokens{}, fail(ErrUnauthorizedClient, "The client's account is no longer active")
	}
	access, err := secret.NewToken()
	if err != nil {
		return Tokens{}, err
	}
	return o.issueService(ctx, client.UserID, client.ID, secret.NewID(16), access, false)
}

// Revoke revokes a token of the client (RFC 7009): a refresh token with its
// family, an access token alone (with its SAD for a credential token). An
// unknown token is not an error (§2.2); another client's is refused.
func (o *Server) Revoke(ctx context.Context, client store.OAuthClient, token, hint string) (err error) {
	var t store.Token
	defer func() { o.audit(ctx, "oauth2 revoke", t.UserID, "", nil, err, "client "+client.ID+" "+hint) }()
	if token == "" {
		return badRequest("Missing parameter token")
	}
	t, err = o.st.Token(ctx, secret.TokenHash(token))
	if errors.Is(err, store.ErrNotFound) {
		t = store.Token{}
		return nil
	}
	if err != nil {
		return err
	}
	if t.ClientID != client.ID {
		return fail(ErrUnauthorizedClient, "The token was issued to another client")
	}
	if t.Kind == store.RefreshToken {
		return o.st.RevokeFamily(ctx, t.Family)
	}
	if err := o.st.RevokeToken(ctx, t.Hash); err != nil {
		return err
	}
	if t.Scope == service.ScopeCredential {
		if err := o.st.DeleteSAD(ctx, t.Hash); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}
