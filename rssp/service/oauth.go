package service

// The business logic of the RSSP's OAuth2 authorization server (the HTTP
// side is rssp/oauth): registered clients, authorization requests (direct
// and pushed, RFC 9126), the user's login and consent with the credential's
// factors, single-use authorization codes with PKCE (RFC 7636), tokens for
// the service and credential scopes, refresh, client credentials and
// revocation (RFC 7009).
//
// A credential-scope access token is bound like a SAD: it is issued with a
// SAD row keyed by the token's own hash, bound to the credential, to the
// hashes when they were given and to numSignatures, expiring with the token.
// So the token works unchanged as the SAD parameter of signatures/signHash,
// and, as the Bearer token without SAD, signingSAD uses it as its own SAD.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
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

// OAuth2 scopes of the CSC API (shared/csc-api.md §4).
const (
	ScopeService    = "service"
	ScopeCredential = "credential"
)

// RequestURIPrefix starts every request_uri of oauth2/pushed_authorize
// (RFC 9126 §2.2).
const RequestURIPrefix = "urn:ietf:params:oauth:request_uri:"

// OAuth2 error kinds (RFC 6749 §4.1.2.1 and §5.2, RFC 9101 §6.2,
// RFC 9396 §5). With ErrInvalidRequest, ErrAccessDenied and the factor
// kinds, rssp/oauth maps them to the wire in one place.
var (
	ErrInvalidClient               = errors.New("invalid client")                // 401 invalid_client
	ErrInvalidGrant                = errors.New("invalid grant")                 // 400 invalid_grant
	ErrUnauthorizedClient          = errors.New("unauthorized client")           // 400 unauthorized_client
	ErrUnsupportedGrantType        = errors.New("unsupported grant type")        // 400 unsupported_grant_type
	ErrUnsupportedResponseType     = errors.New("unsupported response type")     // unsupported_response_type
	ErrInvalidScope                = errors.New("invalid scope")                 // invalid_scope
	ErrInvalidRequestURI           = errors.New("invalid request_uri")           // invalid_request_uri
	ErrInvalidAuthorizationDetails = errors.New("invalid authorization_details") // invalid_authorization_details
)

// OAuthOptions are the authorization server's lifetimes; zero values take
// the defaults.
type OAuthOptions struct {
	CodeTTL       time.Duration // authorization codes (default 60s)
	RequestURITTL time.Duration // pushed requests' request_uri (default 90s)
	PendingTTL    time.Duration // an authorization waiting for login and consent (default 10m)
	SessionTTL    time.Duration // a browser's login session (default 10m)
}

// OAuth is the authorization server's logic over a Service.
type OAuth struct {
	s   *Service
	st  store.OAuthStore
	opt OAuthOptions
}

// oauthStore returns the store's OAuth2 tables.
func (s *Service) oauthStore() (store.OAuthStore, error) {
	st, ok := s.store.(store.OAuthStore)
	if !ok {
		return nil, errors.New("service: the store has no OAuth2 tables (store.OAuthStore)")
	}
	return st, nil
}

// OAuth returns the authorization server's logic with these lifetimes.
func (s *Service) OAuth(opt OAuthOptions) (*OAuth, error) {
	st, err := s.oauthStore()
	if err != nil {
		return nil, err
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opt.CodeTTL, 60*time.Second)
	def(&opt.RequestURITTL, 90*time.Second)
	def(&opt.PendingTTL, 10*time.Minute)
	def(&opt.SessionTTL, 10*time.Minute)
	return &OAuth{s: s, st: st, opt: opt}, nil
}

// Options returns the lifetimes in force.
func (o *OAuth) Options() OAuthOptions { return o.opt }

// Service returns the service o works for.
func (o *OAuth) Service() *Service { return o.s }

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
	st, err := s.oauthStore()
	if err != nil {
		return store.OAuthClient{}, "", err
	}
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
	if err := st.CreateOAuthClient(ctx, c); err != nil {
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

// redirectMatches compares a requested redirect URI with a registered one:
// exactly, except that a registered http://127.0.0.1/... or
// http://[::1]/... matches the same URI on any port (RFC 8252 §7.3).
func redirectMatches(registered, requested string) bool {
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

// AuthenticateClient authenticates a client at the token, PAR and
// revocation endpoints (RFC 6749 §2.3): a confidential client with its
// secret, a public client by its ID alone (an empty secret is no secret).
func (o *OAuth) AuthenticateClient(ctx context.Context, id, secretValue string) (store.OAuthClient, error) {
	if id == "" {
		return store.OAuthClient{}, fail(ErrInvalidClient, "Missing client_id (client authentication)")
	}
	c, err := o.st.OAuthClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		if secretValue != "" {
			secret.VerifyDummy(secretValue)
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
	if err := secret.Verify(secretValue, c.SecretHash); err != nil {
		if !errors.Is(err, secret.ErrMismatch) {
			return store.OAuthClient{}, fmt.Errorf("client %s secret: %w", c.ID, err)
		}
		return store.OAuthClient{}, fail(ErrInvalidClient, "Client authentication failed")
	}
	return c, nil
}

// --- Authorization requests ----------------------------------------------

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
}

// ResolveRedirect finds the client and the redirect URI of a request; on
// failure the error must be shown to the user, not sent to the URI.
func (o *OAuth) ResolveRedirect(ctx context.Context, clientID, redirectURI string) (store.OAuthClient, string, error) {
	return o.resolveRedirect(ctx, clientID, redirectURI)
}

// resolveRedirect finds the client and the redirect URI of a request.
// Its errors must not be sent to the redirect URI (RFC 6749 §4.1.2.1).
func (o *OAuth) resolveRedirect(ctx context.Context, clientID, redirectURI string) (store.OAuthClient, string, error) {
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
		if redirectMatches(r, redirectURI) {
			return c, redirectURI, nil
		}
	}
	return store.OAuthClient{}, "", badRequest("redirect_uri is not registered for client %q", clientID)
}

var challengeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// checkRequest checks and completes the parameters of a request that do
// not depend on the user: response type, PKCE, scope and the credential
// scope's parameters.
func (o *OAuth) checkRequest(r *AuthRequest) error {
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
	if scope == ScopeService {
		if r.Details != nil {
			return badRequest("authorization_details need scope credential")
		}
		if credParams {
			return badRequest("credentialID, signatureQualifier, numSignatures and hashes go with scope credential")
		}
		return nil
	}
	if r.SignatureQualifier != "" {
		return badRequest("signatureQualifier is not supported: this service's credentials carry no signature qualifier; name the credential with credentialID")
	}
	if r.CredentialID == "" {
		return badRequest("Missing parameter credentialID")
	}
	if r.NumSignatures == 0 && len(r.Hashes) > 0 {
		r.NumSignatures = len(r.Hashes)
	}
	if r.NumSignatures < 1 || r.NumSignatures > o.s.opt.MaxMultisign {
		return badRequest("Invalid parameter numSignatures: between 1 and %d", o.s.opt.MaxMultisign)
	}
	if _, err := checkHashes(r.Hashes, r.HashAlgorithm, o.s.opt.MaxHashes); err != nil {
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
// not both (shared/csc-api.md §4); with authorization_details the default
// is credential.
func parseScope(raw string, rar bool) (string, error) {
	var scope string
	for _, s := range strings.Fields(raw) {
		switch s {
		case ScopeService, ScopeCredential:
		default:
			return "", fail(ErrInvalidScope, "Unknown scope %q: service or credential", s)
		}
		if scope != "" && scope != s {
			return "", fail(ErrInvalidScope, "Request scope service and scope credential separately")
		}
		scope = s
	}
	if scope == "" {
		scope = ScopeService
		if rar {
			scope = ScopeCredential
		}
	}
	return scope, nil
}

// PushAuthorization stores a pushed authorization request of an
// authenticated client (RFC 9126) and returns its request_uri.
func (o *OAuth) PushAuthorization(ctx context.Context, client store.OAuthClient, r AuthRequest) (requestURI string, ttl time.Duration, err error) {
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
	handle, err := o.savePending(ctx, client.ID, true, oauthPending{Request: r, RedirectURI: redirect}, o.opt.RequestURITTL)
	if err != nil {
		return "", 0, err
	}
	return RequestURIPrefix + handle, o.opt.RequestURITTL, nil
}

func (o *OAuth) savePending(ctx context.Context, clientID string, pushed bool, p oauthPending, ttl time.Duration) (string, error) {
	handle, err := secret.NewToken()
	if err != nil {
		return "", err
	}
	params, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encode authorization request: %w", err)
	}
	now := o.s.now()
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
func (o *OAuth) StartAuthorization(ctx context.Context, r AuthRequest, requestURI string) (Authorization, error) {
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
	a.Handle, err = o.savePending(ctx, a.Client.ID, false, oauthPending{Request: a.Request, RedirectURI: a.RedirectURI}, o.opt.PendingTTL)
	if err != nil {
		return Authorization{}, err
	}
	a.ExpiresAt = o.s.now().Add(o.opt.PendingTTL)
	return a, nil
}

// takePushed takes the pushed request a request_uri names (RFC 9126 §4).
func (o *OAuth) takePushed(ctx context.Context, clientID, requestURI string) (Authorization, error) {
	handle, ok := strings.CutPrefix(requestURI, RequestURIPrefix)
	if !ok || handle == "" {
		return Authorization{}, fail(ErrInvalidRequestURI, "request_uri was not issued by this server")
	}
	if clientID == "" {
		return Authorization{}, badRequest("Missing parameter client_id (required with request_uri)")
	}
	hash := secret.TokenHash(handle)
	row, err := o.st.OAuthRequest(ctx, hash)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !row.Pushed) {
		return Authorization{}, fail(ErrInvalidRequestURI, "request_uri is unknown or was already used")
	}
	if err != nil {
		return Authorization{}, err
	}
	if row.ClientID != clientID {
		return Authorization{}, fail(ErrInvalidRequestURI, "request_uri was pushed by another client")
	}
	row, err = o.st.TakeOAuthRequest(ctx, hash, o.s.now())
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
	a := Authorization{Request: p.Request, Client: c, RedirectURI: p.RedirectURI}
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
func (o *OAuth) Authorization(ctx context.Context, handle string) (Authorization, error) {
	if handle == "" {
		return Authorization{}, errPendingGone()
	}
	row, err := o.st.OAuthRequest(ctx, secret.TokenHash(handle))
	if errors.Is(err, store.ErrNotFound) || (err == nil && (row.Pushed || !o.s.now().Before(row.ExpiresAt))) {
		return Authorization{}, errPendingGone()
	}
	if err != nil {
		return Authorization{}, err
	}
	p, err := decodePending(row)
	if err != nil {
		return Authorization{}, err
	}
	c, err := o.st.OAuthClient(ctx, row.ClientID)
	if err != nil {
		return Authorization{}, err
	}
	return Authorization{Handle: handle, Request: p.Request, Client: c, RedirectURI: p.RedirectURI, ExpiresAt: row.ExpiresAt}, nil
}

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
}

// ConsentCredential checks a credential-scope authorization against the
// user's credential (theirs, usable, numSignatures within multisign, hashes
// for SCAL 2) and describes the credential.
func (o *OAuth) ConsentCredential(ctx context.Context, userID string, a Authorization) (ConsentCredential, error) {
	c, err := o.credential(ctx, userID, a.Request)
	if err != nil {
		return ConsentCredential{}, err
	}
	cc := ConsentCredential{ID: c.ID, Description: c.Description, KeyType: c.KeyType, SCAL: c.SCAL,
		Multisign: c.Multisign, NeedPIN: c.PINHash != "", NeedOTP: c.OTPType != ""}
	if cert, err := parseCert(c); err == nil {
		cc.Subject = cert.Subject.String()
	}
	return cc, nil
}

func (o *OAuth) credential(ctx context.Context, userID string, r AuthRequest) (store.Credential, error) {
	c, err := o.s.userCredential(ctx, Principal{UserID: userID}, r.CredentialID)
	if err != nil {
		return store.Credential{}, err
	}
	if err := o.s.checkUsable(c); err != nil {
		return store.Credential{}, err
	}
	if r.NumSignatures > c.Multisign {
		return store.Credential{}, badRequest("numSignatures %d exceeds the credential's multisign (%d)", r.NumSignatures, c.Multisign)
	}
	if c.SCAL == 2 && len(r.Hashes) == 0 {
		return store.Credential{}, badRequest("Missing parameter hashes: required for a SCAL 2 credential")
	}
	return c, nil
}

// Approve records the user's consent: for scope credential it checks the
// credential's factors (counting failures, locking at the limit); then it
// takes the pending request, so a form submitted twice is answered once,
// and issues a single-use authorization code.
func (o *OAuth) Approve(ctx context.Context, userID, handle string, factors []csc.AuthData) (code string, a Authorization, err error) {
	a, err = o.Authorization(ctx, handle)
	if err != nil {
		return "", a, err
	}
	r := a.Request
	defer func() {
		o.s.audit(ctx, "oauth2 consent", userID, r.CredentialID, r.Hashes, err,
			fmt.Sprintf("client %s scope %s approve numSignatures=%d", a.Client.ID, r.Scope, r.NumSignatures))
	}()
	if r.Scope == ScopeCredential {
		c, err := o.credential(ctx, userID, r)
		if err != nil {
			return "", a, err
		}
		if err := o.s.checkFactors(ctx, c, factors); err != nil {
			return "", a, err
		}
	}
	if _, err := o.st.TakeOAuthRequest(ctx, secret.TokenHash(handle), o.s.now()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", a, badRequest("This authorization request was already answered")
		}
		if errors.Is(err, store.ErrExpired) {
			return "", a, errPendingGone()
		}
		return "", a, err
	}
	if code, err = secret.NewToken(); err != nil {
		return "", a, err
	}
	now := o.s.now()
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
func (o *OAuth) Deny(ctx context.Context, userID, handle string, cause error) (a Authorization, answer error, err error) {
	a, err = o.Authorization(ctx, handle)
	if err != nil {
		return a, nil, err
	}
	answer = cause
	if answer == nil {
		answer = fail(ErrAccessDenied, "The user declined the authorization")
	}
	defer func() {
		res := answer
		if err != nil {
			res = err
		}
		o.s.audit(ctx, "oauth2 consent", userID, a.Request.CredentialID, a.Request.Hashes, res,
			fmt.Sprintf("client %s scope %s deny", a.Client.ID, a.Request.Scope))
	}()
	if _, err := o.st.TakeOAuthRequest(ctx, secret.TokenHash(handle), o.s.now()); err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExpired) {
			return a, nil, badRequest("This authorization request was already answered")
		}
		return a, nil, err
	}
	return a, answer, nil
}

// --- Login sessions ------------------------------------------------------

// BrowserSession is a browser's session with the pages.
type BrowserSession struct {
	UserID    string // empty before login
	UserName  string
	ExpiresAt time.Time
}

// NewSession starts a session (anonymous when userID is empty) and returns
// the cookie value; only its hash is stored.
func (o *OAuth) NewSession(ctx context.Context, userID string) (value string, expires time.Time, err error) {
	if value, err = secret.NewToken(); err != nil {
		return "", time.Time{}, err
	}
	now := o.s.now()
	s := store.OAuthSession{Hash: secret.TokenHash(value), UserID: userID, ExpiresAt: now.Add(o.opt.SessionTTL), CreatedAt: now}
	if userID != "" {
		s.AuthTime = now
	}
	if err := o.st.CreateOAuthSession(ctx, s); err != nil {
		return "", time.Time{}, err
	}
	return value, s.ExpiresAt, nil
}

// Session looks a cookie up: ErrInvalidToken when unknown, expired or
// when its user is disabled.
func (o *OAuth) Session(ctx context.Context, value string) (BrowserSession, error) {
	if value == "" {
		return BrowserSession{}, fail(ErrInvalidToken, "No session")
	}
	s, err := o.st.OAuthSession(ctx, secret.TokenHash(value))
	if errors.Is(err, store.ErrNotFound) || (err == nil && !o.s.now().Before(s.ExpiresAt)) {
		return BrowserSession{}, fail(ErrInvalidToken, "The session has ended")
	}
	if err != nil {
		return BrowserSession{}, err
	}
	bs := BrowserSession{UserID: s.UserID, ExpiresAt: s.ExpiresAt}
	if s.UserID != "" {
		u, err := o.s.store.UserByID(ctx, s.UserID)
		if err != nil || u.Disabled {
			return BrowserSession{}, fail(ErrInvalidToken, "The account is no longer active")
		}
		bs.UserName = u.Name
	}
	return bs, nil
}

// EndSession deletes a session; an unknown one is not an error.
func (o *OAuth) EndSession(ctx context.Context, value string) error {
	if value == "" {
		return nil
	}
	if err := o.st.DeleteOAuthSession(ctx, secret.TokenHash(value)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// Login checks a user's password on the login page and replaces the
// browser's session by a new, logged-in one (no session fixation).
func (o *OAuth) Login(ctx context.Context, oldSession, name, password string) (value string, expires time.Time, err error) {
	u, err := o.s.CheckPassword(ctx, name, password)
	if err != nil {
		return "", time.Time{}, err
	}
	if err := o.EndSession(ctx, oldSession); err != nil {
		return "", time.Time{}, err
	}
	return o.NewSession(ctx, u.ID)
}

// CheckPassword checks a user's password (the authorization server's login
// page) and returns the user.
func (s *Service) CheckPassword(ctx context.Context, name, password string) (u store.User, err error) {
	defer func() { s.audit(ctx, "oauth2 login", u.ID, "", nil, err, "user "+name) }()
	u, err = s.store.UserByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		secret.VerifyDummy(password)
		return store.User{}, fail(ErrAuthentication, "Invalid username or password")
	}
	if err != nil {
		return store.User{}, err
	}
	if err := secret.Verify(password, u.PasswordHash); err != nil {
		if !errors.Is(err, secret.ErrMismatch) {
			return u, fmt.Errorf("user %s password: %w", u.ID, err)
		}
		return u, fail(ErrAuthentication, "Invalid username or password")
	}
	if u.Disabled {
		return u, fail(ErrAuthentication, "The account is disabled")
	}
	return u, nil
}

// --- Tokens --------------------------------------------------------------

// OAuthTokens is the answer of oauth2/token.
type OAuthTokens struct {
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
func (o *OAuth) ExchangeCode(ctx context.Context, client store.OAuthClient, code, redirectURI, verifier string) (tok OAuthTokens, err error) {
	var c store.OAuthCode
	defer func() {
		o.s.audit(ctx, "oauth2 token", c.UserID, c.CredentialID, nil, err, "client "+client.ID+" authorization_code scope "+c.Scope)
	}()
	switch {
	case code == "":
		return OAuthTokens{}, badRequest("Missing parameter code")
	case verifier == "":
		return OAuthTokens{}, badRequest("Missing parameter code_verifier (PKCE)")
	case !verifierRE.MatchString(verifier):
		return OAuthTokens{}, badRequest("Invalid code_verifier: 43 to 128 characters of A-Z a-z 0-9 - . _ ~")
	}
	access, err := secret.NewToken()
	if err != nil {
		return OAuthTokens{}, err
	}
	c, err = o.st.ConsumeOAuthCode(ctx, secret.TokenHash(code), secret.TokenHash(access), o.s.now())
	switch {
	case errors.Is(err, store.ErrUsed):
		if rerr := o.revokeGrant(ctx, c); rerr != nil {
			return OAuthTokens{}, rerr
		}
		return OAuthTokens{}, fail(ErrInvalidGrant, "The authorization code was already used; the tokens issued with it are revoked")
	case errors.Is(err, store.ErrExpired):
		return OAuthTokens{}, fail(ErrInvalidGrant, "The authorization code has expired")
	case errors.Is(err, store.ErrNotFound):
		return OAuthTokens{}, fail(ErrInvalidGrant, "Invalid authorization code")
	case err != nil:
		return OAuthTokens{}, err
	}
	if c.ClientID != client.ID {
		return OAuthTokens{}, fail(ErrInvalidGrant, "The authorization code was issued to another client")
	}
	if c.RedirectURI != "" && redirectURI != c.RedirectURI {
		return OAuthTokens{}, fail(ErrInvalidGrant, "redirect_uri does not match the authorization request's")
	}
	if c.RedirectURI == "" && redirectURI != "" && (len(client.RedirectURIs) != 1 || client.RedirectURIs[0] != redirectURI) {
		return OAuthTokens{}, fail(ErrInvalidGrant, "redirect_uri does not match the authorization request's")
	}
	sum := sha256.Sum256([]byte(verifier))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(c.CodeChallenge)) != 1 {
		return OAuthTokens{}, fail(ErrInvalidGrant, "code_verifier does not match the code_challenge")
	}
	return o.issue(ctx, c, access)
}

// revokeGrant revokes what a code's first exchange issued: its token
// family and, for a credential token, its SAD.
func (o *OAuth) revokeGrant(ctx context.Context, c store.OAuthCode) error {
	if err := o.s.store.RevokeFamily(ctx, c.Family); err != nil {
		return err
	}
	if len(c.TokenHash) > 0 {
		if err := o.s.store.DeleteSAD(ctx, c.TokenHash); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// issue creates the tokens of an exchanged code.
func (o *OAuth) issue(ctx context.Context, c store.OAuthCode, access string) (OAuthTokens, error) {
	u, err := o.s.store.UserByID(ctx, c.UserID)
	if err != nil || u.Disabled {
		return OAuthTokens{}, fail(ErrInvalidGrant, "The account is no longer active")
	}
	if c.Scope != ScopeCredential {
		return o.issueService(ctx, c.UserID, c.ClientID, c.Family, access, true)
	}
	cred, err := o.s.store.Credential(ctx, c.CredentialID)
	if err != nil {
		return OAuthTokens{}, fmt.Errorf("credential %s: %w", c.CredentialID, err)
	}
	if err := o.s.checkUsable(cred); err != nil {
		return OAuthTokens{}, fail(ErrInvalidGrant, "The credential can no longer sign: %s", description(err))
	}
	now := o.s.now()
	exp := now.Add(o.s.opt.SADTTL)
	h := secret.TokenHash(access)
	if err := o.s.store.CreateToken(ctx, store.Token{Hash: h, Kind: store.AccessToken, UserID: c.UserID,
		ClientID: c.ClientID, Scope: ScopeCredential, Family: c.Family, ExpiresAt: exp, CreatedAt: now}); err != nil {
		return OAuthTokens{}, err
	}
	if err := o.st.CreateCredentialToken(ctx, store.CredentialToken{TokenHash: h, CredentialID: c.CredentialID, ExpiresAt: exp}); err != nil {
		return OAuthTokens{}, err
	}
	if err := o.s.store.CreateSAD(ctx, store.SAD{Hash: h, CredentialID: c.CredentialID, UserID: c.UserID,
		HashAlgo: c.HashAlgo, Hashes: c.Hashes, Remaining: c.NumSignatures, ExpiresAt: exp, CreatedAt: now}, nil); err != nil {
		return OAuthTokens{}, err
	}
	return OAuthTokens{AccessToken: access, ExpiresIn: o.s.opt.SADTTL, Scope: ScopeCredential,
		CredentialID: c.CredentialID, Details: c.Details}, nil
}

func description(err error) string {
	var p *Problem
	if errors.As(err, &p) {
		return p.Description
	}
	return "internal error"
}

// issueService creates a service-scope access token, and a refresh token
// of the same family when refresh is set.
func (o *OAuth) issueService(ctx context.Context, userID, clientID, family, access string, refresh bool) (OAuthTokens, error) {
	now := o.s.now()
	if err := o.s.store.CreateToken(ctx, store.Token{Hash: secret.TokenHash(access), Kind: store.AccessToken,
		UserID: userID, ClientID: clientID, Scope: ScopeService, Family: family,
		ExpiresAt: now.Add(o.s.opt.AccessTokenTTL), CreatedAt: now}); err != nil {
		return OAuthTokens{}, err
	}
	out := OAuthTokens{AccessToken: access, ExpiresIn: o.s.opt.AccessTokenTTL, Scope: ScopeService}
	if refresh {
		rt, err := secret.NewToken()
		if err != nil {
			return OAuthTokens{}, err
		}
		if err := o.s.store.CreateToken(ctx, store.Token{Hash: secret.TokenHash(rt), Kind: store.RefreshToken,
			UserID: userID, ClientID: clientID, Scope: ScopeService, Family: family,
			ExpiresAt: now.Add(o.s.opt.RefreshTokenTTL), CreatedAt: now}); err != nil {
			return OAuthTokens{}, err
		}
		out.RefreshToken = rt
	}
	return out, nil
}

// Refresh is the refresh_token grant (service scope only): the refresh
// token is rotated; presenting a revoked one revokes its whole family.
func (o *OAuth) Refresh(ctx context.Context, client store.OAuthClient, refresh, scope string) (tok OAuthTokens, err error) {
	var t store.Token
	defer func() { o.s.audit(ctx, "oauth2 token", t.UserID, "", nil, err, "client "+client.ID+" refresh_token") }()
	if refresh == "" {
		return OAuthTokens{}, badRequest("Missing parameter refresh_token")
	}
	if s, err := parseScope(scope, false); err != nil || s != ScopeService {
		return OAuthTokens{}, fail(ErrInvalidScope, "A refresh token gives scope service only")
	}
	t, err = o.s.store.Token(ctx, secret.TokenHash(refresh))
	if errors.Is(err, store.ErrNotFound) || (err == nil && t.Kind != store.RefreshToken) {
		t = store.Token{}
		return OAuthTokens{}, fail(ErrInvalidGrant, "Invalid refresh token")
	}
	if err != nil {
		return OAuthTokens{}, err
	}
	if t.ClientID != client.ID {
		return OAuthTokens{}, fail(ErrInvalidGrant, "The refresh token was issued to another client")
	}
	if t.Revoked {
		if err := o.s.store.RevokeFamily(ctx, t.Family); err != nil {
			return OAuthTokens{}, err
		}
		return OAuthTokens{}, fail(ErrInvalidGrant, "The refresh token was revoked")
	}
	if !o.s.now().Before(t.ExpiresAt) {
		return OAuthTokens{}, fail(ErrInvalidGrant, "The refresh token has expired")
	}
	u, err := o.s.store.UserByID(ctx, t.UserID)
	if err != nil || u.Disabled {
		return OAuthTokens{}, fail(ErrInvalidGrant, "The account is no longer active")
	}
	if err := o.s.store.RevokeToken(ctx, t.Hash); err != nil {
		return OAuthTokens{}, err
	}
	access, err := secret.NewToken()
	if err != nil {
		return OAuthTokens{}, err
	}
	return o.issueService(ctx, t.UserID, client.ID, t.Family, access, true)
}

// ClientCredentials is the client_credentials grant: a confidential client
// registered to act for a user gets a service token for that user.
func (o *OAuth) ClientCredentials(ctx context.Context, client store.OAuthClient, scope string) (tok OAuthTokens, err error) {
	defer func() {
		o.s.audit(ctx, "oauth2 token", client.UserID, "", nil, err, "client "+client.ID+" client_credentials")
	}()
	if client.Public() {
		return OAuthTokens{}, fail(ErrUnauthorizedClient, "client_credentials is for confidential clients")
	}
	s, err := parseScope(scope, false)
	if err != nil {
		return OAuthTokens{}, err
	}
	if s != ScopeService {
		return OAuthTokens{}, fail(ErrInvalidScope, "Scope credential needs the user's consent: use the authorization code grant")
	}
	if client.UserID == "" {
		return OAuthTokens{}, fail(ErrUnauthorizedClient, "This client does not act for an account (rssp admin client add --user)")
	}
	u, err := o.s.store.UserByID(ctx, client.UserID)
	if err != nil || u.Disabled {
		return OAuthTokens{}, fail(ErrUnauthorizedClient, "The client's account is no longer active")
	}
	access, err := secret.NewToken()
	if err != nil {
		return OAuthTokens{}, err
	}
	return o.issueService(ctx, client.UserID, client.ID, secret.NewID(16), access, false)
}

// Revoke revokes a token of the client (RFC 7009): a refresh token with its
// family, an access token alone (with its SAD for a credential token). An
// unknown token is not an error (§2.2); another client's is refused.
func (o *OAuth) Revoke(ctx context.Context, client store.OAuthClient, token, hint string) (err error) {
	var t store.Token
	defer func() { o.s.audit(ctx, "oauth2 revoke", t.UserID, "", nil, err, "client "+client.ID+" "+hint) }()
	if token == "" {
		return badRequest("Missing parameter token")
	}
	t, err = o.s.store.Token(ctx, secret.TokenHash(token))
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
		return o.s.store.RevokeFamily(ctx, t.Family)
	}
	if err := o.s.store.RevokeToken(ctx, t.Hash); err != nil {
		return err
	}
	if t.Scope == ScopeCredential {
		if err := o.s.store.DeleteSAD(ctx, t.Hash); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// Purge deletes expired requests, codes, sessions and bindings.
func (o *OAuth) Purge(ctx context.Context, now time.Time) error { return o.st.PurgeOAuth(ctx, now) }

// --- The credential token at the API -----------------------------------

// credentialTokenMethods are the API methods a credential-scope token may
// call: its credential's credentials/info and signatures/signHash
// (shared/csc-api.md §4).
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
	st, err := s.oauthStore()
	if err != nil {
		return Principal{}, err
	}
	ct, err := st.CredentialToken(ctx, p.TokenHash)
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

// signingSAD loads the SAD of a signHash call: the SAD parameter or, for a
// credential-scope bearer token, the token itself, whose SAD row was issued
// with it. A credential token signs with its own authorization only.
func (s *Service) signingSAD(ctx context.Context, p Principal, credID, value string, hashes [][]byte, hashAlg string) (store.SAD, error) {
	if p.Scope == ScopeCredential {
		if value != "" && subtle.ConstantTimeCompare(secret.TokenHash(value), p.TokenHash) != 1 {
			return store.SAD{}, fail(ErrAccessDenied, "A credential token signs only with its own authorization: omit SAD or send the token itself")
		}
		value = p.bearer
	}
	return s.loadSAD(ctx, p, credID, value, hashes, hashAlg)
}

// oauthResultCode names the OAuth2 error kinds for the audit log.
func oauthResultCode(err error) string {
	for _, k := range []struct {
		kind error
		code string
	}{
		{ErrInvalidClient, "invalid_client"}, {ErrInvalidGrant, "invalid_grant"},
		{ErrUnauthorizedClient, "unauthorized_client"}, {ErrUnsupportedGrantType, "unsupported_grant_type"},
		{ErrUnsupportedResponseType, "unsupported_response_type"}, {ErrInvalidScope, "invalid_scope"},
		{ErrInvalidRequestURI, "invalid_request_uri"}, {ErrInvalidAuthorizationDetails, "invalid_authorization_details"},
	} {
		if errors.Is(err, k.kind) {
			return k.code
		}
	}
	return ""
}
