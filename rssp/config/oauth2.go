package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
)

// OAuth2 puts the rssp behind an external OAuth2 authorization server
// (docs/external-as.md). With Issuer empty (the default) the rssp is its
// own authorization server.
type OAuth2 struct {
	// Issuer is the external server's issuer identifier, exactly as in its
	// tokens' iss (https; http only on a loopback address). info then
	// advertises it as oauth2Issuer, and the rssp's own authorization
	// endpoints are not served.
	Issuer string `toml:"issuer"`
	// Audience must be in the tokens' aud (default: public_url).
	Audience string `toml:"audience"`
	// Algorithms are the JWS algorithms accepted (default RS256, RS384,
	// RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA; never none
	// nor HS*).
	Algorithms []string `toml:"algorithms"`
	// JWKSURI overrides the jwks_uri of the issuer's metadata.
	JWKSURI string `toml:"jwks_uri"`
	// IntrospectionEndpoint: opaque (non-JWT) tokens are checked there
	// (RFC 7662), as ClientID with the secret in ClientSecretFile (both
	// optional: ORY Hydra's admin endpoint takes none).
	IntrospectionEndpoint string `toml:"introspection_endpoint"`
	ClientID              string `toml:"client_id"`
	ClientSecretFile      string `toml:"client_secret_file"`
	// CAFile is an extra trust root for the server's TLS certificate.
	CAFile string `toml:"ca_file"`
	// Leeway for exp, nbf and iat (default 30s); KeyCacheTTL: the key set
	// is fetched again after it (default 5m); KeyRefreshInterval: at most
	// one fetch for an unknown key ID per interval (default 30s);
	// IntrospectionCacheTTL (default 30s, never past the token's exp; a
	// negative value: no cache) and IntrospectionCacheSize (default 10000).
	Leeway                 Duration `toml:"leeway"`
	KeyCacheTTL            Duration `toml:"key_cache_ttl"`
	KeyRefreshInterval     Duration `toml:"key_refresh_interval"`
	IntrospectionCacheTTL  Duration `toml:"introspection_cache_ttl"`
	IntrospectionCacheSize int      `toml:"introspection_cache_size"`
	// AutoCreateUsers creates a user (no password) for a valid token of an
	// unknown subject; default false: such tokens are refused.
	AutoCreateUsers bool `toml:"auto_create_users"`
	// HydraAdminURL makes the rssp ORY Hydra's login and consent provider
	// (its pages under /oauth2/hydra/): Hydra's admin API, reachable only
	// by the rssp (e.g. http://127.0.0.1:4445).
	HydraAdminURL string `toml:"hydra_admin_url"`
}

// External says whether an external authorization server is configured.
func (o OAuth2) External() bool { return o.Issuer != "" }

func (c *Config) oauth2Defaults() {
	if c.OAuth2.Issuer != "" && c.OAuth2.Audience == "" {
		c.OAuth2.Audience = c.PublicURL
	}
}

func (c *Config) validateOAuth2() error {
	o := c.OAuth2
	if o.Issuer == "" {
		if o.HydraAdminURL != "" || o.IntrospectionEndpoint != "" || o.JWKSURI != "" || o.AutoCreateUsers {
			return errors.New("oauth2: these keys need oauth2.issuer")
		}
		return nil
	}
	var errs []error
	for _, k := range []struct{ name, v string }{{"issuer", o.Issuer}, {"jwks_uri", o.JWKSURI},
		{"introspection_endpoint", o.IntrospectionEndpoint}, {"hydra_admin_url", o.HydraAdminURL}} {
		if k.v == "" {
			continue
		}
		u, err := url.Parse(k.v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("oauth2.%s %q: want an http(s) URL", k.name, k.v))
		}
	}
	if (o.ClientID == "") != (o.ClientSecretFile == "") {
		errs = append(errs, errors.New("oauth2: client_id and client_secret_file go together"))
	}
	for _, a := range o.Algorithms {
		if a == "none" || slices.Contains([]string{"HS256", "HS384", "HS512"}, a) {
			errs = append(errs, fmt.Errorf("oauth2.algorithms: %q is not allowed", a))
		}
	}
	return errors.Join(errs...)
}
