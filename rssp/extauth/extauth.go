// Package extauth validates the access tokens of an external OAuth2
// authorization server (ORY Hydra, Keycloak...), for an rssp that does not
// issue them itself (docs/external-as.md):
//
//   - JWT access tokens (RFC 9068) are verified against the issuer's JSON
//     Web Key Set, found through its metadata (RFC 8414, else OpenID
//     Connect Discovery) unless configured. The key set is cached; a token
//     signed with a key ID the cache lacks fetches it again, at most once
//     per Config.KeyRefreshInterval, and the whole set is fetched again
//     after Config.KeyCacheTTL (so that removed keys stop verifying). Only
//     the asymmetric algorithms of Config.Algorithms are accepted (never
//     "none" nor HS*); iss must be the issuer, aud must name
//     Config.Audience, exp is required, nbf and iat are checked, with
//     Config.Leeway.
//   - Other (opaque) tokens go to the issuer's token introspection
//     endpoint (RFC 7662) when one is configured, authenticated with the
//     client's ID and secret (HTTP Basic). Active answers are cached by the
//     token's SHA-256 for Config.IntrospectionCacheTTL at most, never past
//     the token's exp, in a cache of at most Config.IntrospectionCacheSize
//     entries; revocation is seen once the entry expires.
//
// The JOSE work (parsing, signature verification, the registered claims) is
// github.com/go-jose/go-jose/v4.
//
// A Validator is safe for concurrent use.
package extauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Errors of Validate, matched with errors.Is.
var (
	// ErrInvalid: the token is not one of the issuer's valid tokens for
	// this service (bad signature, wrong issuer or audience, unknown key,
	// refused algorithm, inactive...).
	ErrInvalid = errors.New("extauth: invalid access token")
	// ErrExpired: a valid token whose exp has passed.
	ErrExpired = errors.New("extauth: expired access token")
	// ErrUnavailable: the issuer could not be asked (metadata, keys or
	// introspection unreachable or answering nonsense).
	ErrUnavailable = errors.New("extauth: authorization server unavailable")
)

// DefaultAlgorithms are the JWS algorithms accepted by default: RSA,
// RSA-PSS, ECDSA and EdDSA.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Config describes the external authorization server.
type Config struct {
	// Issuer is its issuer identifier (exactly as in its tokens' iss).
	Issuer string
	// Audience must be one of a JWT's aud values (and of an introspection
	// answer's, when it has aud).
	Audience string
	// Algorithms accepted in JWTs (default DefaultAlgorithms); "none" and
	// the HMAC algorithms are refused.
	Algorithms []string
	// JWKSURI overrides the jwks_uri of the metadata.
	JWKSURI string
	// IntrospectionEndpoint: opaque tokens are introspected there (RFC
	// 7662), as ClientID with ClientSecret (HTTP Basic) when they are set.
	// Empty: only JWTs are accepted.
	IntrospectionEndpoint string
	ClientID              string
	ClientSecret          string
	// Leeway for exp, nbf and iat (default 30s).
	Leeway time.Duration
	// KeyCacheTTL: the key set is fetched again after it (default 5m).
	KeyCacheTTL time.Duration
	// KeyRefreshInterval: at most one fetch for an unknown key ID per
	// interval (default 30s).
	KeyRefreshInterval time.Duration
	// IntrospectionCacheTTL bounds how long an active answer is reused
	// (default 30s; negative: no cache); IntrospectionCacheSize bounds the
	// entries (default 10000).
	IntrospectionCacheTTL  time.Duration
	IntrospectionCacheSize int
	// HTTPClient talks to the issuer (default: 10s timeout).
	HTTPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger (default: discard).
	Logger *slog.Logger
}

// Token is what a valid access token says.
type Token struct {
	Subject   string
	ClientID  string
	Scopes    []string
	ID        string // jti, when given
	ExpiresAt time.Time
	// Credentials are the authorization_details of type credential
	// (RFC 9396, CSC API v2), from the claims or, as ORY Hydra carries the
	// consent's session claims, from the claim "ext".
	Credentials []CredentialDetail
}

// HasScope reports whether the token carries scope s.
func (t Token) HasScope(s string) bool { return slices.Contains(t.Scopes, s) }

// CredentialDetail is one authorization_details element of type
// "credential": the SAD-equivalent binding of a credential-scope token.
type CredentialDetail struct {
	CredentialID     string
	NumSignatures    int // 0 when absent
	HashAlgorithmOID string
	Hashes           [][]byte
}

// Validator validates access tokens of one issuer.
type Validator struct {
	cfg  Config
	algs []jose.SignatureAlgorithm
	log  *slog.Logger

	mu          sync.Mutex
	jwksURI     string             // discovered or configured
	keys        jose.JSONWebKeySet // last fetched
	fetchedAt   time.Time          // of keys; zero: never
	lastAttempt time.Time          // of a fetch, successful or not
	lastErr     error              // of the last attempt
	gen         uint64             // attempts so far

	fetch sync.Mutex // one fetch of metadata and keys at a time

	cacheMu sync.Mutex
	cache   map[[32]byte]cached
}

type cached struct {
	tok   Token
	until time.Time
}

// New checks cfg and returns a Validator. Nothing is fetched yet.
func New(cfg Config) (*Validator, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("extauth: no issuer")
	}
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || (u.Scheme != "https" && !(u.Scheme == "http" && loopback(u.Hostname()))) {
		return nil, fmt.Errorf("extauth: issuer %q: want an https URL (http only on a loopback address) without query or fragment", cfg.Issuer)
	}
	if cfg.Audience == "" {
		return nil, errors.New("extauth: no audience")
	}
	if (cfg.ClientID == "") != (cfg.ClientSecret == "") {
		return nil, errors.New("extauth: a client ID needs its secret, and a secret its client ID")
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = DefaultAlgorithms
	}
	v := &Validator{cfg: cfg, jwksURI: cfg.JWKSURI, cache: map[[32]byte]cached{}}
	for _, a := range cfg.Algorithms {
		if !slices.Contains(DefaultAlgorithms, a) {
			return nil, fmt.Errorf("extauth: algorithm %q is not allowed: choose among %s", a, strings.Join(DefaultAlgorithms, ", "))
		}
		v.algs = append(v.algs, jose.SignatureAlgorithm(a))
	}
	def := func(d *time.Duration, x time.Duration) {
		if *d == 0 {
			*d = x
		}
	}
	def(&v.cfg.Leeway, 30*time.Second)
	def(&v.cfg.KeyCacheTTL, 5*time.Minute)
	def(&v.cfg.KeyRefreshInterval, 30*time.Second)
	def(&v.cfg.IntrospectionCacheTTL, 30*time.Second)
	if v.cfg.IntrospectionCacheSize <= 0 {
		v.cfg.IntrospectionCacheSize = 10000
	}
	if v.cfg.HTTPClient == nil {
		v.cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if v.cfg.Now == nil {
		v.cfg.Now = time.Now
	}
	v.log = cfg.Logger
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	return v, nil
}

// Introspects says whether opaque tokens are introspected.
func (v *Validator) Introspects() bool { return v.cfg.IntrospectionEndpoint != "" }

// Issuer is the configured issuer.
func (v *Validator) Issuer() string { return v.cfg.Issuer }

func loopback(host string) bool { return host == "127.0.0.1" || host == "::1" || host == "localhost" }

// LooksLikeJWT reports whether raw has the shape of a JWS compact
// serialization (three base64url parts).
func LooksLikeJWT(raw string) bool { return strings.Count(raw, ".") == 2 }

// Validate checks an access token: a JWT locally, anything else by
// introspection (when configured).
func (v *Validator) Validate(ctx context.Context, raw string) (Token, error) {
	if raw == "" {
		return Token{}, fmt.Errorf("%w: empty", ErrInvalid)
	}
	if LooksLikeJWT(raw) {
		return v.validateJWT(ctx, raw)
	}
	if v.cfg.IntrospectionEndpoint == "" {
		return Token{}, fmt.Errorf("%w: not a JWT, and no introspection endpoint is configured", ErrInvalid)
	}
	return v.introspect(ctx, raw)
}

// claims are the members of a JWT or an introspection answer used here.
type claims struct {
	jwt.Claims
	Scope    json.RawMessage `json:"scope"` // string (RFC 9068, RFC 7662)
	Scp      json.RawMessage `json:"scp"`   // array or string (ORY Hydra, Azure)
	ClientID string          `json:"client_id"`
	Details  json.RawMessage `json:"authorization_details"`
	Ext      *struct {
		Details json.RawMessage `json:"authorization_details"`
	} `json:"ext"`
	// Introspection only.
	Active *bool `json:"active"`
}

func (v *Validator) validateJWT(ctx context.Context, raw string) (Token, error) {
	tok, err := jwt.ParseSigned(raw, v.algs)
	if err != nil {
		// An algorithm outside the list ("none", HS256...) fails here.
		return Token{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if len(tok.Headers) != 1 {
		return Token{}, fmt.Errorf("%w: %d signatures", ErrInvalid, len(tok.Headers))
	}
	h := tok.Headers[0]
	// RFC 9068 §2.1 asks for typ at+jwt; some servers (ORY Hydra) write
	// JWT. An ID token of the same issuer is still refused by aud, which
	// names a client there, not this service.
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "" {
		switch strings.ToLower(typ) {
		case "at+jwt", "application/at+jwt", "jwt":
		default:
			return Token{}, fmt.Errorf("%w: typ %q", ErrInvalid, typ)
		}
	}
	key, err := v.key(ctx, h.KeyID, h.Algorithm)
	if err != nil {
		return Token{}, err
	}
	var c claims
	if err := tok.Claims(key, &c); err != nil {
		return Token{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return v.check(c, true)
}

// check validates the registered claims and builds the Token; jwtForm: the
// claims of a JWT (exp and aud required).
func (v *Validator) check(c claims, jwtForm bool) (Token, error) {
	now := v.cfg.Now()
	if c.Expiry == nil && jwtForm {
		return Token{}, fmt.Errorf("%w: no exp", ErrInvalid)
	}
	exp := jwt.Expected{Issuer: v.cfg.Issuer, AnyAudience: jwt.Audience{v.cfg.Audience}}
	if !jwtForm {
		if c.Issuer == "" {
			exp.Issuer = ""
		}
		if len(c.Audience) == 0 {
			exp.AnyAudience = nil
		}
	}
	if err := c.ValidateWithLeeway(exp.WithTime(now), v.cfg.Leeway); err != nil {
		if errors.Is(err, jwt.ErrExpired) {
			return Token{}, fmt.Errorf("%w: %w", ErrExpired, err)
		}
		return Token{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if c.Subject == "" {
		return Token{}, fmt.Errorf("%w: no sub", ErrInvalid)
	}
	t := Token{Subject: c.Subject, ClientID: c.ClientID, ID: c.ID}
	if c.Expiry != nil {
		t.ExpiresAt = c.Expiry.Time()
	}
	var err error
	if t.Scopes, err = scopes(c.Scope, c.Scp); err != nil {
		return Token{}, err
	}
	details := c.Details
	if len(details) == 0 && c.Ext != nil {
		details = c.Ext.Details
	}
	if t.Credentials, err = credentialDetails(details); err != nil {
		return Token{}, err
	}
	return t, nil
}

// scopes reads scope (a space-separated string) or scp (an array of
// strings, or a string).
func scopes(scope, scp json.RawMessage) ([]string, error) {
	for _, raw := range []json.RawMessage{scope, scp} {
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			return strings.Fields(s), nil
		}
		var list []string
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("%w: scope is neither a string nor a list of strings", ErrInvalid)
		}
		return list, nil
	}
	return nil, nil
}

// Credential authorization_details types (CSC API v2).
var credentialTypes = []string{"credential", "https://cloudsignatureconsortium.org/2025/credential"}

func credentialDetails(raw json.RawMessage) ([]CredentialDetail, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []struct {
		Type             string `json:"type"`
		CredentialID     string `json:"credentialID"`
		NumSignatures    int    `json:"numSignatures"`
		HashAlgorithmOID string `json:"hashAlgorithmOID"`
		DocumentDigests  []struct {
			Hash string `json:"hash"`
		} `json:"documentDigests"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("%w: authorization_details: %w", ErrInvalid, err)
	}
	var out []CredentialDetail
	for _, d := range list {
		if !slices.Contains(credentialTypes, d.Type) {
			continue
		}
		if d.CredentialID == "" || d.NumSignatures < 0 {
			return nil, fmt.Errorf("%w: authorization_details of type credential without credentialID", ErrInvalid)
		}
		cd := CredentialDetail{CredentialID: d.CredentialID, NumSignatures: d.NumSignatures, HashAlgorithmOID: d.HashAlgorithmOID}
		for _, dd := range d.DocumentDigests {
			b, err := decodeB64(dd.Hash)
			if err != nil || len(b) == 0 {
				return nil, fmt.Errorf("%w: authorization_details: a document digest is not base64", ErrInvalid)
			}
			cd.Hashes = append(cd.Hashes, b)
		}
		out = append(out, cd)
	}
	return out, nil
}

// decodeB64 reads standard or URL base64, padded or not.
func decodeB64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// --- Keys ----------------------------------------------------------------

// key returns the verification key of kid for alg, fetching the key set
// when it is stale or lacks kid, at most once per Config.KeyRefreshInterval
// either way. When a stale set cannot be fetched again, its keys keep
// verifying (the issuer may be down briefly).
func (v *Validator) key(ctx context.Context, kid string, alg string) (any, error) {
	v.mu.Lock()
	now := v.cfg.Now()
	stale := v.fetchedAt.IsZero() || now.Sub(v.fetchedAt) >= v.cfg.KeyCacheTTL
	k, found := pick(v.keys, kid, alg)
	mayRetry := v.lastAttempt.IsZero() || now.Sub(v.lastAttempt) >= v.cfg.KeyRefreshInterval
	gen, lastErr := v.gen, v.lastErr
	v.mu.Unlock()
	if found && !stale {
		return k, nil
	}
	if !mayRetry {
		// Asked lately (rate limit, also while the issuer is down and
		// the set stale: not one fetch per token).
		switch {
		case found:
			return k, nil
		case stale && lastErr != nil:
			return nil, lastErr
		}
		return nil, fmt.Errorf("%w: no key %q in the issuer's key set", ErrInvalid, kid)
	}
	if err := v.refresh(ctx, gen); err != nil {
		if found {
			return k, nil
		}
		return nil, err
	}
	v.mu.Lock()
	k, found = pick(v.keys, kid, alg)
	v.mu.Unlock()
	if !found {
		return nil, fmt.Errorf("%w: no key %q in the issuer's key set", ErrInvalid, kid)
	}
	return k, nil
}

// pick finds the signing key of kid usable with alg; without kid, the only
// signing key of the set.
func pick(set jose.JSONWebKeySet, kid, alg string) (any, bool) {
	var cands []jose.JSONWebKey
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		if kid == "" || k.KeyID == kid {
			cands = append(cands, k)
		}
	}
	if len(cands) != 1 || !cands[0].IsPublic() || !cands[0].Valid() {
		return nil, false
	}
	return cands[0].Key, true
}

// refresh fetches the key set (and, the first time, the metadata). One
// fetch at a time: callers that waited for another's attempt (gen, the
// attempt count they saw, moved) take its outcome instead of fetching
// again.
func (v *Validator) refresh(ctx context.Context, gen uint64) error {
	v.fetch.Lock()
	defer v.fetch.Unlock()
	v.mu.Lock()
	if v.gen != gen {
		err := v.lastErr
		v.mu.Unlock()
		return err
	}
	v.gen++
	v.lastAttempt = v.cfg.Now()
	uri := v.jwksURI
	v.mu.Unlock()
	set, uri, err := v.fetchKeys(ctx, uri)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.lastErr = err
	if err != nil {
		v.log.Warn("extauth: fetching the issuer's keys", "issuer", v.cfg.Issuer, "err", err)
		return err
	}
	v.jwksURI, v.keys, v.fetchedAt = uri, set, v.cfg.Now()
	v.log.Debug("extauth: key set fetched", "uri", uri, "keys", len(set.Keys))
	return nil
}

// fetchKeys reads the key set at uri, discovering uri first when empty.
func (v *Validator) fetchKeys(ctx context.Context, uri string) (jose.JSONWebKeySet, string, error) {
	var err error
	if uri == "" {
		if uri, err = v.discover(ctx); err != nil {
			return jose.JSONWebKeySet{}, "", err
		}
	}
	var set jose.JSONWebKeySet
	if err := v.getJSON(ctx, uri, &set); err != nil {
		if errors.Is(err, errNotFound) {
			err = fmt.Errorf("%w: %s: not found", ErrUnavailable, uri)
		}
		return jose.JSONWebKeySet{}, "", err
	}
	return set, uri, nil
}

// metadata is what discovery uses (RFC 8414 §2, OpenID Connect Discovery).
type metadata struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

// MetadataURLs are where the issuer's metadata may be, in order: RFC 8414
// §3.1 (the well-known path inserted before the issuer's path), then
// OpenID Connect Discovery §4 (appended to the issuer).
func MetadataURLs(issuer string) []string {
	u, _ := url.Parse(strings.TrimRight(issuer, "/"))
	path := strings.TrimRight(u.Path, "/")
	return []string{
		u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + path,
		strings.TrimRight(issuer, "/") + "/.well-known/openid-configuration",
	}
}

func (v *Validator) discover(ctx context.Context) (string, error) {
	for _, u := range MetadataURLs(v.cfg.Issuer) {
		var md metadata
		err := v.getJSON(ctx, u, &md)
		if errors.Is(err, errNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		if md.Issuer != v.cfg.Issuer {
			return "", fmt.Errorf("%w: metadata at %s names issuer %q, not %q", ErrUnavailable, u, md.Issuer, v.cfg.Issuer)
		}
		if md.JWKSURI == "" {
			return "", fmt.Errorf("%w: metadata at %s has no jwks_uri", ErrUnavailable, u)
		}
		return md.JWKSURI, nil
	}
	return "", fmt.Errorf("%w: no metadata for issuer %s (RFC 8414 nor OpenID Connect Discovery)", ErrUnavailable, v.cfg.Issuer)
}

var errNotFound = errors.New("not found")

// getJSON fetches a small JSON document.
func (v *Validator) getJSON(ctx context.Context, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, u, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return errNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s answered %s", ErrUnavailable, u, resp.Status)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, u, err)
	}
	return nil
}

// --- Introspection -------------------------------------------------------

func (v *Validator) introspect(ctx context.Context, raw string) (Token, error) {
	key := sha256.Sum256([]byte(raw))
	now := v.cfg.Now()
	v.cacheMu.Lock()
	c, ok := v.cache[key]
	v.cacheMu.Unlock()
	if ok && now.Before(c.until) {
		return c.tok, nil
	}
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.cfg.IntrospectionEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return Token{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if v.cfg.ClientID != "" {
		// RFC 6749 §2.3.1: both form-encoded.
		req.SetBasicAuth(url.QueryEscape(v.cfg.ClientID), url.QueryEscape(v.cfg.ClientSecret))
	}
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return Token{}, fmt.Errorf("%w: introspection: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Token{}, fmt.Errorf("%w: introspection: %w", ErrUnavailable, err)
	}
	if resp.StatusCode != http.StatusOK {
		return Token{}, fmt.Errorf("%w: introspection answered %s", ErrUnavailable, resp.Status)
	}
	var cl claims
	if err := json.Unmarshal(body, &cl); err != nil || cl.Active == nil {
		return Token{}, fmt.Errorf("%w: introspection answer is not RFC 7662 JSON", ErrUnavailable)
	}
	if !*cl.Active {
		return Token{}, fmt.Errorf("%w: inactive (introspection)", ErrInvalid)
	}
	t, err := v.check(cl, false)
	if err != nil {
		return Token{}, err
	}
	until := now.Add(v.cfg.IntrospectionCacheTTL)
	if !t.ExpiresAt.IsZero() && t.ExpiresAt.Before(until) {
		until = t.ExpiresAt
	}
	if v.cfg.IntrospectionCacheTTL > 0 && until.After(now) {
		v.remember(key, cached{tok: t, until: until}, now)
	}
	return t, nil
}

// remember caches an answer, dropping expired entries when the cache is
// full, and an arbitrary one if it is still full.
func (v *Validator) remember(key [32]byte, c cached, now time.Time) {
	v.cacheMu.Lock()
	defer v.cacheMu.Unlock()
	if len(v.cache) >= v.cfg.IntrospectionCacheSize {
		for k, e := range v.cache {
			if !now.Before(e.until) {
				delete(v.cache, k)
			}
		}
		for k := range v.cache {
			if len(v.cache) < v.cfg.IntrospectionCacheSize {
				break
			}
			delete(v.cache, k)
		}
	}
	v.cache[key] = c
}
