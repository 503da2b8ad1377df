package extauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// issuer is a fake authorization server: metadata (OpenID Connect
// Discovery only, as ORY Hydra), a key set it can change, and an
// introspection endpoint.
type issuer struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	keys   []jose.JSONWebKey // public
	active map[string]map[string]any
	// counts
	jwksFetches, introspections atomic.Int32
}

func newIssuer(t *testing.T) *issuer {
	is := &issuer{t: t, active: map[string]map[string]any{}}
	m := http.NewServeMux()
	m.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": is.srv.URL, "jwks_uri": is.srv.URL + "/jwks"})
	})
	m.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		is.jwksFetches.Add(1)
		is.mu.Lock()
		defer is.mu.Unlock()
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: is.keys})
	})
	m.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		is.introspections.Add(1)
		// RFC 6749 §2.3.1: the client ID and secret are form-encoded.
		id, secret, ok := r.BasicAuth()
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		if !ok || id != "rssp" || secret != "introspection secret" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		is.mu.Lock()
		defer is.mu.Unlock()
		ans, ok := is.active[r.PostFormValue("token")]
		if !ok {
			ans = map[string]any{"active": false}
		}
		_ = json.NewEncoder(w).Encode(ans)
	})
	is.srv = httptest.NewServer(m)
	t.Cleanup(is.srv.Close)
	return is
}

type signingKey struct {
	kid string
	alg jose.SignatureAlgorithm
	key any // private
}

func newRSAKey(t *testing.T, kid string) signingKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid, jose.RS256, k}
}

func newECKey(t *testing.T, kid string) signingKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid, jose.ES256, k}
}

func (sk signingKey) public() jose.JSONWebKey {
	jwk := jose.JSONWebKey{Key: sk.key, KeyID: sk.kid, Algorithm: string(sk.alg), Use: "sig"}
	return jwk.Public()
}

func (is *issuer) publish(keys ...signingKey) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys = nil
	for _, k := range keys {
		is.keys = append(is.keys, k.public())
	}
}

func sign(t *testing.T, k signingKey, typ string, cl any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), k.kid)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jwt.Signed(s).Claims(cl).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func newValidator(t *testing.T, is *issuer, clk *clock, mod func(*Config)) *Validator {
	t.Helper()
	cfg := Config{Issuer: is.srv.URL, Audience: "https://rssp.example", Now: clk.Now,
		IntrospectionEndpoint: is.srv.URL + "/introspect", ClientID: "rssp", ClientSecret: "introspection secret"}
	if mod != nil {
		mod(&cfg)
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func stdClaims(is *issuer) map[string]any {
	return map[string]any{
		"iss": is.srv.URL, "sub": "alice-sub", "aud": []string{"https://rssp.example"},
		"exp": t0.Add(time.Hour).Unix(), "iat": t0.Unix(), "nbf": t0.Unix(),
		"client_id": "csctoken", "scp": []string{"service"}, "jti": "j1",
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestValidateJWT(t *testing.T) {
	is := newIssuer(t)
	rsaKey, ecKey, other := newRSAKey(t, "k1"), newECKey(t, "k2"), newRSAKey(t, "k1")
	is.publish(rsaKey, ecKey)
	std := stdClaims(is)
	good := sign(t, rsaKey, "", std)
	parts := strings.Split(good, ".")
	hs, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("a shared secret of 32 bytes!!!!!")},
		(&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), "k1"))
	hsTok, _ := jwt.Signed(hs).Claims(std).Serialize()
	payload, _ := json.Marshal(std)
	details := []map[string]any{{"type": "credential", "credentialID": "c1", "numSignatures": 2,
		"hashAlgorithmOID": "2.16.840.1.101.3.4.2.1",
		"documentDigests": []map[string]string{{"hash": base64.StdEncoding.EncodeToString(make([]byte, 32)), "label": "a"},
			{"hash": base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("\xff", 32)))}}}}

	tests := []struct {
		name    string
		token   string
		wantErr error
		check   func(t *testing.T, tok Token)
	}{
		{"ok RS256", good, nil, func(t *testing.T, tok Token) {
			if tok.Subject != "alice-sub" || tok.ClientID != "csctoken" || !tok.HasScope("service") || !tok.ExpiresAt.Equal(t0.Add(time.Hour)) || tok.ID != "j1" {
				t.Errorf("token %+v", tok)
			}
		}},
		{"ok ES256 typ at+jwt, scope string", sign(t, ecKey, "at+jwt", with(std, "scp", nil, "scope", "credential service")), nil, func(t *testing.T, tok Token) {
			if !tok.HasScope("credential") || !tok.HasScope("service") {
				t.Errorf("scopes %v", tok.Scopes)
			}
		}},
		{"ok audience string", sign(t, rsaKey, "", with(std, "aud", "https://rssp.example")), nil, nil},
		{"ok within leeway", sign(t, rsaKey, "", with(std, "exp", t0.Add(-10*time.Second).Unix())), nil, nil},
		{"ok details at the top", sign(t, rsaKey, "", with(std, "authorization_details", details)), nil, func(t *testing.T, tok Token) {
			if len(tok.Credentials) != 1 || tok.Credentials[0].CredentialID != "c1" || tok.Credentials[0].NumSignatures != 2 ||
				len(tok.Credentials[0].Hashes) != 2 || tok.Credentials[0].Hashes[1][0] != 0xff {
				t.Errorf("details %+v", tok.Credentials)
			}
		}},
		{"ok details in ext (ORY Hydra)", sign(t, rsaKey, "", with(std, "ext", map[string]any{"authorization_details": details})), nil, func(t *testing.T, tok Token) {
			if len(tok.Credentials) != 1 || tok.Credentials[0].HashAlgorithmOID != "2.16.840.1.101.3.4.2.1" {
				t.Errorf("details %+v", tok.Credentials)
			}
		}},
		{"fail another issuer", sign(t, rsaKey, "", with(std, "iss", "https://evil.example")), ErrInvalid, nil},
		{"fail expired", sign(t, rsaKey, "", with(std, "exp", t0.Add(-time.Minute).Unix())), ErrExpired, nil},
		{"fail not yet valid", sign(t, rsaKey, "", with(std, "nbf", t0.Add(time.Hour).Unix())), ErrInvalid, nil},
		{"fail issued in the future", sign(t, rsaKey, "", with(std, "iat", t0.Add(time.Hour).Unix())), ErrInvalid, nil},
		{"fail no exp", sign(t, rsaKey, "", with(std, "exp", nil)), ErrInvalid, nil},
		{"fail no sub", sign(t, rsaKey, "", with(std, "sub", nil)), ErrInvalid, nil},
		{"fail wrong audience", sign(t, rsaKey, "", with(std, "aud", []string{"https://other.example", "csctoken"})), ErrInvalid, nil},
		{"fail no audience", sign(t, rsaKey, "", with(std, "aud", nil)), ErrInvalid, nil},
		{"fail tampered payload", parts[0] + "." + b64(strings.Replace(string(payload), "alice-sub", "bob-sub", 1)) + "." + parts[2], ErrInvalid, nil},
		{"fail tampered signature", parts[0] + "." + parts[1] + "." + b64("not the signature"), ErrInvalid, nil},
		{"fail signed by another key with the same kid", sign(t, other, "", std), ErrInvalid, nil},
		{"fail alg none", b64(`{"alg":"none","kid":"k1"}`) + "." + parts[1] + ".", ErrInvalid, nil},
		{"fail alg HS256", hsTok, ErrInvalid, nil},
		{"fail RS256 header on the EC key", b64(`{"alg":"RS256","kid":"k2"}`) + "." + parts[1] + "." + parts[2], ErrInvalid, nil},
		{"fail typ of an ID token's cousin", sign(t, rsaKey, "dpop+jwt", std), ErrInvalid, nil},
		{"fail unknown kid", sign(t, newRSAKey(t, "k9"), "", std), ErrInvalid, nil},
		{"fail bad scope type", sign(t, rsaKey, "", with(std, "scp", 7)), ErrInvalid, nil},
		{"fail garbage", "a.b.c", ErrInvalid, nil},
		{"fail empty", "", ErrInvalid, nil},
	}
	clk := &clock{t: t0}
	v := newValidator(t, is, clk, func(c *Config) { c.IntrospectionEndpoint = ""; c.ClientID, c.ClientSecret = "", "" })
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := v.Validate(t.Context(), tc.token)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if tc.check != nil {
					tc.check(t, tok)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Validate: %v, want %v", err, tc.wantErr)
			}
		})
	}
	t.Run("fail opaque without introspection", func(t *testing.T) {
		if _, err := v.Validate(t.Context(), "ory_at_opaque.thing"); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Validate: %v", err)
		}
	})
}

func TestKeyRotation(t *testing.T) {
	is := newIssuer(t)
	k1, k2, k3 := newRSAKey(t, "k1"), newECKey(t, "k2"), newECKey(t, "k3")
	is.publish(k1)
	clk := &clock{t: t0}
	v := newValidator(t, is, clk, func(c *Config) {
		c.KeyCacheTTL, c.KeyRefreshInterval, c.Leeway = 10*time.Minute, 30*time.Second, time.Hour
	})
	std := stdClaims(is)
	validate := func(k signingKey) error {
		_, err := v.Validate(t.Context(), sign(t, k, "", std))
		return err
	}
	if err := validate(k1); err != nil {
		t.Fatal(err)
	}
	if err := validate(k1); err != nil || is.jwksFetches.Load() != 1 {
		t.Fatalf("second validation: %v, %d fetches (want the cached set)", err, is.jwksFetches.Load())
	}
	// A new key appears: the unknown kid fetches the set again.
	is.publish(k1, k2)
	clk.add(time.Minute)
	if err := validate(k2); err != nil || is.jwksFetches.Load() != 2 {
		t.Fatalf("rotated key: %v, %d fetches", err, is.jwksFetches.Load())
	}
	// Unknown kids are rate-limited: within the interval, no fetch.
	is.publish(k1, k2, k3)
	for range 5 {
		if err := validate(newRSAKey(t, "k-unknown")); !errors.Is(err, ErrInvalid) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if err := validate(k3); !errors.Is(err, ErrInvalid) || is.jwksFetches.Load() != 2 {
		t.Fatalf("k3 within the interval: %v, %d fetches (want refused without fetching)", err, is.jwksFetches.Load())
	}
	clk.add(31 * time.Second)
	if err := validate(k3); err != nil || is.jwksFetches.Load() != 3 {
		t.Fatalf("k3 after the interval: %v, %d fetches", err, is.jwksFetches.Load())
	}
	// A key removed from the set stops verifying once the cache is stale.
	is.publish(k2, k3)
	if err := validate(k1); err != nil {
		t.Fatalf("k1 while cached: %v", err)
	}
	clk.add(11 * time.Minute)
	if err := validate(k1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("k1 removed from the key set: %v", err)
	}
	if err := validate(k2); err != nil {
		t.Fatalf("k2 still published: %v", err)
	}
	// The issuer down: the stale set keeps verifying its keys.
	clk.add(11 * time.Minute)
	var down atomic.Int64
	is.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		down.Add(1)
		http.NotFound(w, r)
	})
	if err := validate(k2); err != nil {
		t.Fatalf("k2 with the issuer down: %v", err)
	}
	// ... and asking the issuer again is rate-limited as for an unknown
	// kid: not one fetch per token while it is down.
	asked := down.Load()
	for range 5 {
		if err := validate(k2); err != nil {
			t.Fatalf("k2 with the issuer down: %v", err)
		}
		if err := validate(newRSAKey(t, "k-unknown")); err == nil {
			t.Fatal("unknown kid accepted")
		}
	}
	if n := down.Load(); n != asked {
		t.Fatalf("%d requests to the issuer within the refresh interval, want none", n-asked)
	}
	clk.add(31 * time.Second)
	if err := validate(k2); err != nil || down.Load() == asked {
		t.Fatalf("after the interval: %v, %d requests to the issuer, want a new attempt", err, down.Load()-asked)
	}
}

func TestDiscovery(t *testing.T) {
	is := newIssuer(t)
	k := newRSAKey(t, "k1")
	is.publish(k)
	clk := &clock{t: t0}
	tests := []struct {
		name    string
		mod     func(*Config)
		handler http.Handler
		wantErr error
	}{
		{"ok configured jwks_uri", func(c *Config) { c.JWKSURI = is.srv.URL + "/jwks" }, nil, nil},
		{"fail metadata of another issuer", nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(map[string]string{"issuer": "https://other.example", "jwks_uri": is.srv.URL + "/jwks"})
		}), ErrUnavailable},
		{"fail no metadata", nil, http.NotFoundHandler(), ErrUnavailable},
		{"fail metadata not JSON", nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("<html>"))
		}), ErrUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := is.srv
			if tc.handler != nil {
				md := httptest.NewServer(tc.handler)
				defer md.Close()
				srv = md
			}
			v, err := New(Config{Issuer: srv.URL, Audience: "https://rssp.example", Now: clk.Now, JWKSURI: ""})
			if err != nil {
				t.Fatal(err)
			}
			if tc.mod != nil {
				tc.mod(&v.cfg)
				v.jwksURI = v.cfg.JWKSURI
			}
			_, err = v.Validate(t.Context(), sign(t, k, "", with(stdClaims(is), "iss", srv.URL)))
			if (tc.wantErr == nil && err != nil) || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("Validate: %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	for _, c := range []Config{
		{Issuer: "", Audience: "a"},
		{Issuer: "http://idp.example", Audience: "a"},
		{Issuer: "https://idp.example?x=1", Audience: "a"},
		{Issuer: "https://idp.example"},
		{Issuer: "https://idp.example", Audience: "a", Algorithms: []string{"HS256"}},
		{Issuer: "https://idp.example", Audience: "a", Algorithms: []string{"none"}},
		{Issuer: "https://idp.example", Audience: "a", IntrospectionEndpoint: "https://idp.example/i", ClientID: "rssp"},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

func TestIntrospection(t *testing.T) {
	is := newIssuer(t)
	clk := &clock{t: t0}
	v := newValidator(t, is, clk, func(c *Config) { c.IntrospectionCacheTTL, c.IntrospectionCacheSize = time.Minute, 2 })
	base := map[string]any{"active": true, "sub": "alice-sub", "iss": is.srv.URL, "aud": []string{"https://rssp.example"},
		"client_id": "csctoken", "scope": "credential", "exp": t0.Add(10 * time.Minute).Unix(),
		"ext": map[string]any{"authorization_details": []map[string]any{{"type": "credential", "credentialID": "c1", "numSignatures": 1}}}}
	is.active["tok-ok"] = base
	is.active["tok-other-iss"] = with(base, "iss", "https://other.example")
	is.active["tok-other-aud"] = with(base, "aud", []string{"https://other.example"})
	is.active["tok-expired"] = with(base, "exp", t0.Add(-time.Hour).Unix())
	is.active["tok-short"] = with(base, "exp", t0.Add(20*time.Second).Unix())

	tests := []struct {
		name, token string
		wantErr     error
	}{
		{"ok active", "tok-ok", nil},
		{"fail unknown (inactive)", "tok-unknown", ErrInvalid},
		{"fail another issuer", "tok-other-iss", ErrInvalid},
		{"fail another audience", "tok-other-aud", ErrInvalid},
		{"fail expired though active", "tok-expired", ErrExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := v.Validate(t.Context(), tc.token)
			if tc.wantErr == nil {
				if err != nil || tok.Subject != "alice-sub" || !tok.HasScope("credential") || len(tok.Credentials) != 1 {
					t.Fatalf("Validate: %+v, %v", tok, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Validate: %v, want %v", err, tc.wantErr)
			}
		})
	}

	t.Run("revocation seen when the cache entry ends", func(t *testing.T) {
		n := is.introspections.Load()
		if _, err := v.Validate(t.Context(), "tok-ok"); err != nil || is.introspections.Load() != n {
			t.Fatalf("cached: %v, %d introspections", err, is.introspections.Load()-n)
		}
		is.mu.Lock()
		delete(is.active, "tok-ok") // revoked
		is.mu.Unlock()
		clk.add(61 * time.Second)
		if _, err := v.Validate(t.Context(), "tok-ok"); !errors.Is(err, ErrInvalid) {
			t.Fatalf("revoked: %v", err)
		}
	})
	t.Run("cached no longer than the token lives", func(t *testing.T) {
		clk.mu.Lock()
		clk.t = t0
		clk.mu.Unlock()
		if _, err := v.Validate(t.Context(), "tok-short"); err != nil {
			t.Fatal(err)
		}
		clk.add(55 * time.Second) // past exp and the leeway
		if _, err := v.Validate(t.Context(), "tok-short"); !errors.Is(err, ErrExpired) {
			t.Fatalf("after exp: %v", err)
		}
	})
	t.Run("cache bounded", func(t *testing.T) {
		for i := range 5 {
			is.active["many"+string(rune('a'+i))] = base
			if _, err := v.Validate(t.Context(), "many"+string(rune('a'+i))); err != nil {
				t.Fatal(err)
			}
		}
		v.cacheMu.Lock()
		n := len(v.cache)
		v.cacheMu.Unlock()
		if n > 2 {
			t.Fatalf("%d cached answers, bound 2", n)
		}
	})
	t.Run("fail wrong client secret", func(t *testing.T) {
		w := newValidator(t, is, clk, func(c *Config) { c.ClientSecret = "wrong" })
		if _, err := w.Validate(t.Context(), "tok-ok2"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Validate: %v", err)
		}
	})
}
