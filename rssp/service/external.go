package service

// Users of an external authorization server (docs/external-as.md): the
// administrator maps each user to their subject at that server, and the
// access tokens it issues are mapped back to the user by their sub claim.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/csctoken/csctoken/rssp/extauth"
	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/store"
)

// checkSubject accepts "" (none) or a subject: at most 255 bytes (OIDC
// Core §2), printable, no surrounding spaces.
func checkSubject(sub string) error {
	if len(sub) > 255 || strings.TrimSpace(sub) != sub ||
		strings.ContainsFunc(sub, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return badRequest("invalid external subject %q: at most 255 printable bytes, no surrounding spaces", sub)
	}
	return nil
}

// SetExternalSubject maps a user to sub at the external authorization
// server, or with "" removes the mapping (rssp admin user
// external-subject). The user's tokens stay.
func (s *Service) SetExternalSubject(ctx context.Context, name, sub string) error {
	if err := checkSubject(sub); err != nil {
		return err
	}
	u, err := s.user(ctx, name)
	if err != nil {
		return err
	}
	err = s.store.SetUserExternalSubject(ctx, u.ID, sub)
	if errors.Is(err, store.ErrExists) {
		return badRequest("another user has the external subject %q", sub)
	}
	if err != nil {
		return err
	}
	return s.audit(ctx, "admin", u.ID, "", nil, nil, "user "+name+" external subject "+sub)
}

// ExternalTokens validates the access tokens of the external authorization
// server (package rssp/extauth).
type ExternalTokens interface {
	Validate(ctx context.Context, token string) (extauth.Token, error)
	// Introspects says whether opaque tokens are checked (RFC 7662); else
	// only JWTs are the external server's.
	Introspects() bool
}

// External configures the service behind an external authorization server.
type External struct {
	Tokens ExternalTokens
	// AutoCreateUsers creates a user (without password) for a valid token
	// of an unknown subject; otherwise such tokens are refused.
	AutoCreateUsers bool
	// Leeway is the validator's clock leeway: what the service remembers of
	// a credential token outlives the token by it.
	Leeway time.Duration
}

// SetExternal puts the service behind an external authorization server:
// Authenticate accepts its access tokens besides the service's own.
func (s *Service) SetExternal(e External) { s.external = &e }

// isExternal says whether bearer is for the external server: a JWT, or,
// with introspection, a token the service did not issue (known is whether
// the store holds it).
func (s *Service) isExternal(bearer string, known bool) bool {
	if s.external == nil {
		return false
	}
	if extauth.LooksLikeJWT(bearer) {
		return true
	}
	return !known && s.external.Tokens.Introspects()
}

// externalFamily starts the family of the token rows of external tokens.
const externalFamily = "external"

func isExternalFamily(f string) bool { return strings.HasPrefix(f, externalFamily) }

// authenticateExternal checks a token of the external authorization server
// and maps it to a user by its subject. A credential-scope token must carry
// one authorization_details element of type credential: on its first use
// the service records it like one of its own credential tokens (a token
// row, the credential binding and a SAD with its numSignatures and hashes),
// so that it signs at most what it authorizes, however often it is sent.
func (s *Service) authenticateExternal(ctx context.Context, bearer string) (Principal, error) {
	tok, err := s.external.Tokens.Validate(ctx, bearer)
	switch {
	case errors.Is(err, extauth.ErrExpired):
		return Principal{}, &Problem{Kind: ErrExpiredToken, Description: "The access token has expired", Err: err}
	case errors.Is(err, extauth.ErrUnavailable):
		return Principal{}, &Problem{Kind: ErrUnavailable, Description: "The authorization server cannot be reached to check the access token", Err: err}
	case err != nil:
		s.log.Debug("external access token refused", "err", err)
		return Principal{}, &Problem{Kind: ErrInvalidToken, Description: "Invalid access token", Err: err}
	}
	u, err := s.externalUser(ctx, tok.Subject)
	if err != nil {
		return Principal{}, err
	}
	p := Principal{UserID: u.ID, UserName: u.Name, TokenHash: secret.TokenHash(bearer), ClientID: tok.ClientID}
	switch {
	case tok.HasScope(ScopeCredential):
		p.Scope = ScopeCredential
		if err := s.bindExternal(ctx, p, tok); err != nil {
			return Principal{}, err
		}
	case tok.HasScope(ScopeService):
		p.Scope = ScopeService
	default:
		return Principal{}, fail(ErrAccessDenied, "The access token has neither scope service nor scope credential")
	}
	return p, nil
}

// externalUser finds (or, when configured, creates) the user of an
// external subject.
func (s *Service) externalUser(ctx context.Context, sub string) (store.User, error) {
	u, err := s.store.UserByExternalSubject(ctx, sub)
	if errors.Is(err, store.ErrNotFound) && s.external.AutoCreateUsers && checkSubject(sub) == nil {
		name := sub
		if name == "" || strings.ContainsAny(name, ":\x00\r\n") || len(name) > 128 {
			h := sha256.Sum256([]byte(sub))
			name = "ext-" + hex.EncodeToString(h[:8])
		}
		if u, err = s.AddUserWithSubject(ctx, name, "", sub); err != nil {
			// Another request created it meanwhile, or the name is taken.
			u, err = s.store.UserByExternalSubject(ctx, sub)
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, fail(ErrAccessDenied, "The access token's subject is not a user of this service")
	}
	if err != nil {
		return store.User{}, err
	}
	if u.Disabled {
		return store.User{}, fail(ErrInvalidToken, "The account is disabled")
	}
	return u, nil
}

// bindExternal records a credential-scope token on its first use (see
// authenticateExternal); later uses find the records, which
// AuthenticateMethod and signHash use as for the service's own tokens.
func (s *Service) bindExternal(ctx context.Context, p Principal, tok extauth.Token) error {
	t, err := s.store.Token(ctx, p.TokenHash)
	if err == nil {
		if t.Revoked || t.UserID != p.UserID || t.Scope != ScopeCredential {
			return fail(ErrInvalidToken, "The access token was revoked")
		}
		return nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if len(tok.Credentials) != 1 {
		return fail(ErrInvalidToken, "A credential-scope token needs one authorization_details element of type credential (%d found)", len(tok.Credentials))
	}
	d := tok.Credentials[0]
	c, err := s.userCredential(ctx, Principal{UserID: p.UserID}, d.CredentialID)
	if err != nil {
		return fail(ErrInvalidToken, "The access token authorizes a credential that is not the user's")
	}
	if c.SCAL >= 2 && len(d.Hashes) == 0 {
		// Without them the SAD would sign any hash (see checkSAD).
		return fail(ErrInvalidToken, "A credential-scope token for a SCAL 2 credential must carry the hashes (documentDigests) it authorizes")
	}
	n := d.NumSignatures
	if n == 0 {
		n = max(len(d.Hashes), 1)
	}
	if n > min(c.Multisign, s.opt.MaxMultisign) || (len(d.Hashes) > 0 && n != len(d.Hashes)) {
		return fail(ErrInvalidToken, "The access token's numSignatures (%d) does not fit its %d hashes or the credential's multisign %d",
			n, len(d.Hashes), min(c.Multisign, s.opt.MaxMultisign))
	}
	if len(d.Hashes) > 0 {
		if _, err := checkHashes(d.Hashes, d.HashAlgorithmOID, s.opt.MaxHashes); err != nil {
			return fail(ErrInvalidToken, "The access token's hashes are invalid: %v", err)
		}
	}
	now := s.now()
	sadExp := now.Add(s.opt.SADTTL)
	if tok.ExpiresAt.Before(sadExp) {
		sadExp = tok.ExpiresAt
	}
	family := externalFamily
	if tok.ID != "" {
		family += " " + tok.ID
	}
	// The token row outlives the token (and the validator's leeway), so
	// that a used-up token is never bound again.
	rowExp := tok.ExpiresAt.Add(s.external.Leeway + time.Minute)
	if err := s.store.CreateToken(ctx, store.Token{Hash: p.TokenHash, Kind: store.AccessToken, UserID: p.UserID,
		ClientID: p.ClientID, Scope: ScopeCredential, Family: family, ExpiresAt: rowExp, CreatedAt: now}); err != nil {
		if errors.Is(err, store.ErrExists) { // bound meanwhile by another request
			return nil
		}
		return err
	}
	if err := s.store.CreateCredentialToken(ctx, store.CredentialToken{TokenHash: p.TokenHash, CredentialID: c.ID, ExpiresAt: rowExp}); err != nil {
		return err
	}
	audit := s.auditEvent(ctx, "authorize", p.UserID, c.ID, d.Hashes, nil,
		fmt.Sprintf("numSignatures=%d external credential token, client %s", n, p.ClientID))
	err = s.store.CreateSAD(ctx, store.SAD{Hash: p.TokenHash, CredentialID: c.ID, UserID: p.UserID,
		HashAlgo: d.HashAlgorithmOID, Hashes: d.Hashes, Remaining: n, ExpiresAt: sadExp, CreatedAt: now}, &audit)
	s.countAuditStep(err)
	return err
}
