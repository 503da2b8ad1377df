package service

// The CSC service's side of OAuth2. The authorization server itself is
// package rssp/authserver (served over HTTP by rssp/oauth); it uses the
// service through the narrow interface authserver.CSC, implemented here:
// the users who log in, their credentials and factors, the credential
// tokens it issues and the audit log. The service keeps the scopes both
// speak of, client registration (rssp admin client add) with the redirect
// URI rules, and the credential token at the API: AuthenticateMethod and
// sadOf accept it as its own SAD.
//
// A credential-scope access token is bound like a SAD: it is issued with a
// SAD row keyed by the token's own hash, bound to the credential, to the
// hashes when they were given and to numSignatures, expiring with the token.
// So the token works unchanged as the SAD parameter of signatures/signHash,
// and, as the Bearer token without SAD, sadOf makes it the SAD.

import (
	"context"
	"crypto"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/store"
)

// OAuth2 scopes of the CSC API v2.
const (
	ScopeService    = "service"
	ScopeCredential = "credential"
)

// RequestURIPrefix starts every request_uri of oauth2/pushed_authorize
// (RFC 9126 §2.2).
const RequestURIPrefix = "urn:ietf:params:oauth:request_uri:"

// OAuthOptions are the lifetimes of the authorization server's own state
// (rssp/authserver); zero values take the defaults.
type OAuthOptions struct {
	CodeTTL       time.Duration // authorization codes (default 60s)
	RequestURITTL time.Duration // pushed requests' request_uri (default 90s)
	PendingTTL    time.Duration // an authorization waiting for login and consent (default 10m)
	SessionTTL    time.Duration // a browser's login session (default 10m)
}

// --- Clients -------------------------------------------------------------

// ClientSpec describes a client to register (rssp admin client add).
type ClientSpec struct {
	ID           string
	Name         string // shown on the consent page; default: the ID
	RedirectURIs []string
	Public       bool
	// Secret of a confidential client; empty: one is generated.
	Secret string
	// User, for a confidential client, is the account its client_credentials
	// tokens act for; empty: no client_credentials grant.
	User string
}

var clientIDRE = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`)

// AddOAuthClient registers a client and returns it with the secret of a
// confidential client, which is stored argon2id-hashed and shown only now.
func (s *Service) AddOAuthClient(ctx context.Context, spec ClientSpec) (store.OAuthClient, string, error) {
	if !clientIDRE.MatchString(spec.ID) {
		return store.OAuthClient{}, "", badRequest("invalid client ID %q: 1 to 128 letters, digits and . _ ~ -", spec.ID)
	}
	if spec.Name == "" {
		spec.Name = spec.ID
	}
	if len(spec.Name) > 128 || strings.ContainsFunc(spec.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return store.OAuthClient{}, "", badRequest("invalid client name: at most 128 printable characters")
	}
	c := store.OAuthClient{ID: spec.ID, Name: spec.Name, CreatedAt: s.now().UTC()}
	seen := map[string]bool{}
	for _, u := range spec.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			return store.OAuthClient{}, "", badRequest("redirect URI %q: %v", u, err)
		}
		if !seen[u] {
			seen[u] = true
			c.RedirectURIs = append(c.RedirectURIs, u)
		}
	}
	switch {
	case spec.Public && spec.Secret != "":
		return store.OAuthClient{}, "", badRequest("a public client has no secret")
	case spec.Public && spec.User != "":
		return store.OAuthClient{}, "", badRequest("only a confidential client can act for a user (client_credentials)")
	case len(c.RedirectURIs) == 0 && spec.User == "":
		return store.OAuthClient{}, "", badRequest("a client needs at least one redirect URI")
	case !spec.Public && spec.Secret != "" && len(spec.Secret) < 16:
		return store.OAuthClient{}, "", badRequest("the client secret must have at least 16 characters")
	}
	if spec.User != "" {
		u, err := s.store.UserByName(ctx, spec.User)
		if errors.Is(err, store.ErrNotFound) {
			return store.OAuthClient{}, "", badRequest("no user %q", spec.User)
		}
		if err != nil {
			return store.OAuthClient{}, "", err
		}
		c.UserID = u.ID
	}
	var err error
	secretValue := ""
	if !spec.Public {
		secretValue = spec.Secret
		if secretValue == "" {
			if secretValue, err = secret.NewToken(); err != nil {
				return store.OAuthClient{}, "", err
			}
		}
		if c.SecretHash, err = secret.Hash(secretValue, s.opt.Argon2); err != nil {
			return store.OAuthClient{}, "", err
		}
	}
	if err := s.store.CreateOAuthClient(ctx, c); err != nil {
		if errors.Is(err, store.ErrExists) {
			return store.OAuthClient{}, "", badRequest("client %q already exists", spec.ID)
		}
		return store.OAuthClient{}, "", err
	}
	kind := "confidential"
	if spec.Public {
		kind = "public"
	}
	s.audit(ctx, "admin", c.UserID, "", nil, nil, "client add "+c.ID+" ("+kind+")")
	return c, secretValue, nil
}

// checkRedirectURI checks a redirect URI at registration (RFC 6749
// §3.1.2, RFC 8252 §7): absolute, no fragment, no user info; https, http
// on a loopback host only, or a private-use scheme with a dot.
func checkRedirectURI(raw string) error {
	if len(raw) > 2000 || strings.Contains(raw, "#") {
		return errors.New("at most 2000 characters and no fragment")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.User != nil {
		return errors.New("no user information")
	}
	switch u.Scheme {
	case "":
		return errors.New("not an absolute URI")
	case "https":
		if u.Host == "" {
			return errors.New("no host")
		}
	case "http":
		if h := u.Hostname(); !isLoopback(h) && h != "localhost" {
			return errors.New("http only on a loopback address (127.0.0.1, [::1], localhost)")
		}
	default:
		if !strings.Contains(u.Scheme, ".") || u.Opaque != "" {
			return errors.New("a private-use scheme must be a reverse domain name (com.example.app:/callback)")
		}
	}
	return nil
}

func isLoopback(host string) bool { return host == "127.0.0.1" || host == "::1" }

// RedirectMatches compares a requested redirect URI with a registered one:
// exactly, except that a registered http://127.0.0.1/... or
// http://[::1]/... matches the same URI on any port (RFC 8252 §7.3).
func RedirectMatches(registered, requested string) bool {
	if registered == requested {
		return true
	}
	r, err := url.Parse(registered)
	if err != nil || r.Scheme != "http" || !isLoopback(r.Hostname()) {
		return false
	}
	if strings.Contains(requested, "#") {
		return false
	}
	q, err := url.Parse(requested)
	if err != nil || q.Scheme != "http" || q.Hostname() != r.Hostname() || q.User != nil || q.Opaque != "" {
		return false
	}
	if p := q.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			return false
		}
	}
	return q.EscapedPath() == r.EscapedPath() && q.RawQuery == r.RawQuery && q.ForceQuery == r.ForceQuery
}

// --- Users ---------------------------------------------------------------

// CheckPassword checks a user's password (the authorization server's login
// page) and returns the user.
//
// As auth/login, it is throttled (ErrThrottled) and its hash waits for a
// slot (ErrUnavailable when none frees up).
func (s *Service) CheckPassword(ctx context.Context, name, password string) (u store.User, err error) {
	if err := s.check(ctx, s.passwords, name); err != nil {
		return store.User{}, err
	}
	defer func() {
		if !errors.Is(err, ErrUnavailable) { // busy: nothing was checked (see Login)
			s.audit(ctx, "oauth2 login", u.ID, "", nil, err, "user "+name)
		}
	}()
	u, err = s.store.UserByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		if err := s.verifyDummy(ctx, password); err != nil {
			return store.User{}, err
		}
		s.failed(ctx, s.passwords, name, "")
		return store.User{}, fail(ErrAuthentication, "Invalid username or password")
	}
	if err != nil {
		return store.User{}, err
	}
	if err := s.verifyPassword(ctx, password, u.PasswordHash, false); err != nil {
		if !errors.Is(err, secret.ErrMismatch) && !errors.Is(err, secret.ErrFormat) {
			return u, fmt.Errorf("user %s password: %w", u.ID, err)
		}
		s.failed(ctx, s.passwords, name, u.ID)
		return u, fail(ErrAuthentication, "Invalid username or password")
	}
	if u.Disabled {
		return u, fail(ErrAuthentication, "The account is disabled")
	}
	return u, nil
}

// CheckClientSecret checks an OAuth2 client's secret against its stored
// hash (encoded "" for an unknown client: a dummy hash burns the same
// time): nil, secret.ErrMismatch, ErrThrottled (too many wrong secrets for
// the client or from the address) or ErrUnavailable (no hashing slot).
func (s *Service) CheckClientSecret(ctx context.Context, clientID, value, encoded string) error {
	if err := s.check(ctx, s.clients, clientID); err != nil {
		return err
	}
	var err error
	if encoded == "" {
		if err = s.verifyDummy(ctx, value); err == nil {
			err = secret.ErrMismatch
		}
	} else {
		err = s.verifyPassword(ctx, value, encoded, false)
	}
	if errors.Is(err, secret.ErrMismatch) {
		s.failed(ctx, s.clients, clientID, "")
	}
	return err
}

// --- The credential token at the API -----------------------------------

// credentialTokenMethods are the API methods a credential-scope token may
// call: its credential's credentials/info and signatures/signHash
// (CSC API v2).
var credentialTokenMethods = map[string]bool{"credentials/info": true, "signatures/signHash": true}

// AuthenticateMethod is Authenticate for one API method (its path under
// csc/v2/). A credential-scope token is bound to its credential and valid
// only for credentials/info and signatures/signHash: other methods answer
// access_denied.
func (s *Service) AuthenticateMethod(ctx context.Context, bearer, method string) (Principal, error) {
	p, err := s.Authenticate(ctx, bearer)
	if err != nil || p.Scope != ScopeCredential {
		return p, err
	}
	if !credentialTokenMethods[method] {
		return Principal{}, fail(ErrAccessDenied, "A credential-scope token is valid only for credentials/info and signatures/signHash of its credential; %s needs a service token", method)
	}
	ct, err := s.store.CredentialToken(ctx, p.TokenHash)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, fail(ErrInvalidToken, "Invalid access token")
	}
	if err != nil {
		return Principal{}, err
	}
	p.CredentialID = ct.CredentialID
	p.bearer = bearer
	return p, nil
}

// sadOf returns the SAD value of a signHash call: the SAD parameter or,
// for a credential-scope bearer token, the token itself, whose SAD row was
// issued with it. A credential token signs with its own authorization only.
func sadOf(p Principal, value string) (string, error) {
	if p.Scope == ScopeCredential {
		if value != "" && subtle.ConstantTimeCompare(secret.TokenHash(value), p.TokenHash) != 1 {
			return "", fail(ErrAccessDenied, "A credential token signs only with its own authorization: omit SAD or send the token itself")
		}
		value = p.bearer
	}
	return value, nil
}

// --- What the authorization server uses (authserver.CSC) ---------------

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.now() }

// Store returns the state the service keeps, which the authorization
// server shares.
func (s *Service) Store() store.Store { return s.store }

// UserCredential returns a credential of the user: invalid_request when it
// is unknown or another user's.
func (s *Service) UserCredential(ctx context.Context, userID, credentialID string) (store.Credential, error) {
	return s.userCredential(ctx, Principal{UserID: userID}, credentialID)
}

// CheckUsable refuses disabled, locked and expired credentials.
func (s *Service) CheckUsable(c store.Credential) error { return s.checkUsable(c) }

// CheckFactors verifies every factor of the credential (PIN and OTP),
// counting failures and locking at the limit.
func (s *Service) CheckFactors(ctx context.Context, c store.Credential, factors []csc.AuthData) error {
	return s.checkFactors(ctx, c, factors)
}

// CheckHashes validates digests against their algorithm OID (at most max
// of them) and returns the algorithm.
func CheckHashes(hashes [][]byte, oid string, max int) (crypto.Hash, error) {
	return checkHashes(hashes, oid, max)
}

// CredentialGrant is what a user granted a client with a credential-scope
// authorization.
type CredentialGrant struct {
	UserID        string
	ClientID      string
	Family        string // of the tokens issued with one authorization code
	CredentialID  string
	NumSignatures int
	HashAlgo      string   // OID the hashes are bound to
	Hashes        [][]byte // bound digests; empty: any
}

// IssueCredentialToken issues the credential-scope access token value for
// a grant, with its binding to the credential and its SAD, all expiring
// after the SAD lifetime, which it returns.
func (s *Service) IssueCredentialToken(ctx context.Context, value string, g CredentialGrant) (time.Duration, error) {
	now := s.now()
	exp := now.Add(s.opt.SADTTL)
	h := secret.TokenHash(value)
	if err := s.store.CreateToken(ctx, store.Token{Hash: h, Kind: store.AccessToken, UserID: g.UserID,
		ClientID: g.ClientID, Scope: ScopeCredential, Family: g.Family, ExpiresAt: exp, CreatedAt: now}); err != nil {
		return 0, err
	}
	if err := s.store.CreateCredentialToken(ctx, store.CredentialToken{TokenHash: h, CredentialID: g.CredentialID, ExpiresAt: exp}); err != nil {
		return 0, err
	}
	// The SAD and its "authorize" audit row in one step, as for
	// credentials/authorize.
	audit := s.auditEvent(ctx, "authorize", g.UserID, g.CredentialID, g.Hashes, nil,
		fmt.Sprintf("numSignatures=%d oauth2 credential token, client %s", g.NumSignatures, g.ClientID))
	err := s.store.CreateSAD(ctx, store.SAD{Hash: h, CredentialID: g.CredentialID, UserID: g.UserID,
		HashAlgo: g.HashAlgo, Hashes: g.Hashes, Remaining: g.NumSignatures, ExpiresAt: exp, CreatedAt: now}, &audit)
	s.countAuditStep(err)
	if err != nil {
		return 0, err
	}
	return s.opt.SADTTL, nil
}

// Audit appends a row to the audit log at the current time, with the
// client's address from ctx; result is "ok" or an error code (see
// ResultCode). A failure is logged.
func (s *Service) Audit(ctx context.Context, event, userID, credentialID string, hashes [][]byte, result, detail string) {
	e := s.auditEvent(ctx, event, userID, credentialID, hashes, nil, detail)
	e.Result = result
	s.appendAudit(ctx, e)
}

// ResultCode names an error of one of the service's kinds for the audit
// log; any other error is "server_error".
func ResultCode(err error) string { return resultCode(err) }
