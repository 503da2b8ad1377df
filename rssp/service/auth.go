package service

import (
	"context"
	"encoding/base64"
	"errors"
	"time"

	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/store"
)

func encodeB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// Tokens is the answer of a login.
type Tokens struct {
	AccessToken  string
	RefreshToken string // empty unless rememberMe
	ExpiresIn    time.Duration
}

// Login checks a user's password (auth/login with HTTP Basic) and issues an
// access token, and a refresh token when rememberMe is set.
func (s *Service) Login(ctx context.Context, name, password string, rememberMe bool) (tok Tokens, err error) {
	// Refused before any work, and without an audit row each (the row is
	// written when throttling starts: see failed).
	if err := s.check(ctx, s.passwords, name); err != nil {
		return Tokens{}, err
	}
	var userID string
	defer func() {
		// A login refused as busy checked nothing: no row (a flood of
		// them would queue the audit log's writes of everyone else).
		if !errors.Is(err, ErrUnavailable) {
			s.audit(ctx, "login", userID, "", nil, err, "user "+name)
		}
	}()
	u, err := s.store.UserByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		if err := s.verifyDummy(ctx, password); err != nil {
			return Tokens{}, err
		}
		s.failed(ctx, s.passwords, name, "")
		return Tokens{}, fail(ErrAuthentication, "Invalid username or password")
	}
	if err != nil {
		return Tokens{}, err
	}
	userID = u.ID
	if err := s.verifyPassword(ctx, password, u.PasswordHash, false); err != nil {
		if !errors.Is(err, secret.ErrMismatch) && !errors.Is(err, secret.ErrFormat) {
			return Tokens{}, err
		}
		s.failed(ctx, s.passwords, name, u.ID)
		return Tokens{}, fail(ErrAuthentication, "Invalid username or password")
	}
	if u.Disabled {
		return Tokens{}, fail(ErrAuthentication, "The account is disabled")
	}
	if u.RequireFIDO {
		// A password alone is not this account's login: its security key
		// is checked on the OAuth2 login page only.
		return Tokens{}, fail(ErrAccessDenied, "This account logs in with a security key: use the OAuth2 login (browser mode), not auth/login")
	}
	return s.issueTokens(ctx, u.ID, secret.NewID(16), rememberMe)
}

// Refresh exchanges a refresh token (auth/login with refresh_token) for a new
// access token and a new refresh token; the old refresh token is revoked.
// Presenting a revoked refresh token revokes its whole family (a stolen and
// replayed token cannot outlive the legitimate one).
func (s *Service) Refresh(ctx context.Context, refresh string) (tok Tokens, err error) {
	var userID string
	defer func() { s.audit(ctx, "refresh", userID, "", nil, err, "") }()
	t, err := s.store.Token(ctx, secret.TokenHash(refresh))
	if errors.Is(err, store.ErrNotFound) || (err == nil && t.Kind != store.RefreshToken) {
		return Tokens{}, fail(ErrInvalidToken, "Invalid refresh token")
	}
	if err == nil && t.ClientID != "" {
		// An OAuth2 client's refresh token is redeemed at oauth2/token,
		// where the client is authenticated, not here.
		return Tokens{}, fail(ErrInvalidToken, "This refresh token was issued to an OAuth2 client: use oauth2/token")
	}
	if err != nil {
		return Tokens{}, err
	}
	userID = t.UserID
	if t.Revoked {
		if err := s.store.RevokeFamily(ctx, t.Family); err != nil {
			return Tokens{}, err
		}
		return Tokens{}, fail(ErrInvalidToken, "The refresh token was revoked")
	}
	if !s.now().Before(t.ExpiresAt) {
		return Tokens{}, fail(ErrExpiredToken, "The refresh token has expired; log in again")
	}
	u, err := s.store.UserByID(ctx, t.UserID)
	if err != nil || u.Disabled {
		return Tokens{}, fail(ErrInvalidToken, "The account is no longer active")
	}
	if u.RequireFIDO {
		// auth/login's refresh token, from a password alone (see Login).
		return Tokens{}, fail(ErrAccessDenied, "This account logs in with a security key: use the OAuth2 login (browser mode)")
	}
	out, rows, err := s.newTokens(t.UserID, t.Family, true)
	if err != nil {
		return Tokens{}, err
	}
	// The compare-and-set: of two simultaneous redemptions exactly one
	// rotates (and creates its new tokens in the same step); the other is
	// a reuse, and ends the whole family, the winner's new tokens too.
	if err := s.store.RotateToken(ctx, t.Hash, rows); errors.Is(err, store.ErrRevoked) {
		if err := s.store.RevokeFamily(ctx, t.Family); err != nil {
			return Tokens{}, err
		}
		return Tokens{}, fail(ErrInvalidToken, "The refresh token was revoked")
	} else if err != nil {
		return Tokens{}, err
	}
	return out, nil
}

func (s *Service) issueTokens(ctx context.Context, userID, family string, refresh bool) (Tokens, error) {
	out, rows, err := s.newTokens(userID, family, refresh)
	if err != nil {
		return Tokens{}, err
	}
	for _, t := range rows {
		if err := s.store.CreateToken(ctx, t); err != nil {
			return Tokens{}, err
		}
	}
	return out, nil
}

// newTokens makes an access token, and a refresh token when refresh is set,
// of the family: the values to hand out and the rows to store.
func (s *Service) newTokens(userID, family string, refresh bool) (Tokens, []store.Token, error) {
	now := s.now()
	access, err := secret.NewToken()
	if err != nil {
		return Tokens{}, nil, err
	}
	rows := []store.Token{{
		Hash: secret.TokenHash(access), Kind: store.AccessToken, UserID: userID, Scope: "service",
		Family: family, ExpiresAt: now.Add(s.opt.AccessTokenTTL), CreatedAt: now,
	}}
	out := Tokens{AccessToken: access, ExpiresIn: s.opt.AccessTokenTTL}
	if refresh {
		rt, err := secret.NewToken()
		if err != nil {
			return Tokens{}, nil, err
		}
		rows = append(rows, store.Token{
			Hash: secret.TokenHash(rt), Kind: store.RefreshToken, UserID: userID, Scope: "service",
			Family: family, ExpiresAt: now.Add(s.opt.RefreshTokenTTL), CreatedAt: now,
		})
		out.RefreshToken = rt
	}
	return out, rows, nil
}

// Authenticate checks a bearer access token.
func (s *Service) Authenticate(ctx context.Context, bearer string) (Principal, error) {
	if bearer == "" {
		return Principal{}, fail(ErrInvalidToken, "Missing access token")
	}
	if s.isExternal(bearer, true) {
		return s.authenticateExternal(ctx, bearer)
	}
	// One read for the token and its user, on every request: revocation
	// and a disabled account take effect at once (nothing is cached).
	t, u, err := s.store.TokenUser(ctx, secret.TokenHash(bearer))
	if (errors.Is(err, store.ErrNotFound) && s.isExternal(bearer, false)) || (err == nil && isExternalFamily(t.Family) && s.external != nil) {
		// An opaque token of the external server, seen before or not:
		// checked there again (a revocation shows).
		return s.authenticateExternal(ctx, bearer)
	}
	if err == nil && isExternalFamily(t.Family) {
		return Principal{}, fail(ErrInvalidToken, "Invalid access token")
	}
	if errors.Is(err, store.ErrNotFound) || (err == nil && t.Kind != store.AccessToken) {
		return Principal{}, fail(ErrInvalidToken, "Invalid access token")
	}
	if err != nil {
		return Principal{}, err
	}
	if t.Revoked {
		return Principal{}, fail(ErrExpiredToken, "The access token was revoked")
	}
	if !s.now().Before(t.ExpiresAt) {
		return Principal{}, fail(ErrExpiredToken, "The access token has expired")
	}
	if u.Disabled {
		return Principal{}, fail(ErrInvalidToken, "The account is disabled")
	}
	return Principal{UserID: u.ID, UserName: u.Name, TokenHash: t.Hash, Family: t.Family, Scope: t.Scope, ClientID: t.ClientID}, nil
}

// Revoke revokes one of the caller's tokens (auth/revoke). Revoking a
// refresh token revokes every token of its login (RFC 7009 §2.1); an unknown
// token is not an error (RFC 7009 §2.2), another user's token is refused.
func (s *Service) Revoke(ctx context.Context, p Principal, token, hint string) (err error) {
	defer func() { s.audit(ctx, "revoke", p.UserID, "", nil, err, hint) }()
	if token == "" {
		return badRequest("Missing string parameter token")
	}
	switch hint {
	case "", "access_token", "refresh_token":
	default:
		return badRequest("Invalid parameter token_type_hint")
	}
	t, err := s.store.Token(ctx, secret.TokenHash(token))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if t.UserID != p.UserID {
		return fail(ErrAccessDenied, "The token belongs to another user")
	}
	if t.Kind == store.RefreshToken {
		return s.store.RevokeFamily(ctx, t.Family)
	}
	if t.Scope == ScopeCredential {
		// A credential token is also its own SAD: revoke both.
		if err := s.store.DeleteSAD(ctx, t.Hash); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return s.store.RevokeToken(ctx, t.Hash)
}
