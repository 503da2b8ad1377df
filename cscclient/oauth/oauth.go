package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/csctoken/csctoken/cscclient"
)

// Defaults of Config.
const (
	// DefaultTimeout bounds the wait for the user in the browser.
	DefaultTimeout = 5 * time.Minute
	// DefaultCallbackPath is the path of the loopback redirect URI.
	DefaultCallbackPath = "/callback"
	// DefaultHTTPTimeout bounds one call to the authorization server when
	// Config.HTTPClient is nil.
	DefaultHTTPTimeout = 30 * time.Second
)

// maxBody bounds every answer read from the authorization server.
const maxBody = 1 << 20

// timeNow is swapped by tests.
var timeNow = time.Now

// Config configures a Client.
type Config struct {
	// Issuer is the authorization server: the CSC info's oauth2 (the base
	// URL under which oauth2/authorize, oauth2/token... live) or
	// oauth2Issuer. NewForService fills it from info.
	Issuer string
	// ClientID is the client registered at the authorization server, with
	// the redirect URI http://127.0.0.1/callback (any port, RFC 8252 §7.3).
	ClientID string
	// ClientSecret makes the client confidential (sent with HTTP Basic to
	// the pushed authorization, token and revocation endpoints). Empty: a
	// public client, which a desktop program is, since it cannot keep a
	// secret (RFC 8252 §8.4); PKCE protects its codes.
	ClientSecret string
	// HTTPClient calls the authorization server. It should not follow
	// redirects. Nil: one with DefaultHTTPTimeout and the system's roots
	// (NewForService uses the cscclient.Client's HTTPClient).
	HTTPClient *http.Client
	// Endpoints, when set, skips discovery.
	Endpoints *Endpoints
	// Opener opens the authorization URL (BrowserOpener when nil).
	Opener Opener
	// Out, when set, gets one line telling the user to open the URL, for
	// headless use (a terminal, an SSH session).
	Out io.Writer
	// OnURL, when set, is called with the URL before the browser opens.
	OnURL func(authURL string)
	// Timeout bounds the wait for the browser to come back (DefaultTimeout
	// when zero).
	Timeout time.Duration
	// CallbackPath is the redirect URI's path (DefaultCallbackPath when
	// empty). The listener is on 127.0.0.1 on a random port.
	CallbackPath string
	// DisablePAR sends the request through the browser even when the
	// server offers pushed authorization requests (RFC 9126), unless it
	// requires them.
	DisablePAR bool
	// Lang, when set, is sent as lang (the language of the pages).
	Lang string
	// Service keys service tokens in a SecretStore (NewSession): the CSC
	// base URL, as for a basic session. NewForService fills it; empty:
	// Issuer.
	Service string
	// ServiceToken, when set, returns the user's service access token:
	// with it, a pushed credential authorization that nobody waits for any
	// more (the context ended) is reported abandoned to the server
	// (Endpoints.Abandon), so the consent page says so.
	ServiceToken func(ctx context.Context) (string, error)
	// Logger: nothing is logged when nil. Tokens and codes are never
	// logged; the authorization URL is (Info), since the user may need it.
	Logger *slog.Logger
}

// Endpoints are the authorization server's endpoints and capabilities
// (RFC 8414 metadata, or the CSC defaults).
type Endpoints struct {
	// Issuer is checked against the iss of authorization responses.
	Issuer              string
	Authorization       string
	Token               string
	PushedAuthorization string // empty: no PAR
	Revocation          string // empty: no revocation
	// Abandon is where a client that stops waiting for a pushed
	// credential authorization says so (rssp's csctoken_abandon_endpoint);
	// empty: the server has none.
	Abandon string
	// IssParameter: the server sends iss in every authorization response
	// (authorization_response_iss_parameter_supported), so a response
	// without it is refused.
	IssParameter bool
	// RequirePAR: the server accepts only pushed requests.
	RequirePAR bool
	// Discovered says whether these come from the server's metadata.
	Discovered bool
}

// Client runs OAuth2 flows against one authorization server: the service
// scope (Login, Refresh, Logout) and the credential scope
// (AuthorizeCredential). It is safe for concurrent use; each flow has its
// own loopback listener.
type Client struct {
	cfg Config
	hc  *http.Client
	log *slog.Logger

	mu sync.Mutex
	ep *Endpoints // discovered, guarded by mu
}

// New returns a Client. It does not touch the network: the endpoints are
// discovered at the first flow.
func New(cfg Config) (*Client, error) {
	if cfg.ClientID == "" {
		return nil, invalidArgument("no client ID")
	}
	if cfg.Endpoints == nil {
		iss, err := checkIssuer(cfg.Issuer)
		if err != nil {
			return nil, err
		}
		cfg.Issuer = iss
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.CallbackPath == "" {
		cfg.CallbackPath = DefaultCallbackPath
	}
	if !strings.HasPrefix(cfg.CallbackPath, "/") || strings.ContainsAny(cfg.CallbackPath, "?#") {
		return nil, invalidArgument("callback path %q: want an absolute path without query", cfg.CallbackPath)
	}
	if cfg.Service == "" {
		cfg.Service = cfg.Issuer
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Opener == nil {
		cfg.Opener = BrowserOpener{Logger: log}
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{
			Timeout:       DefaultHTTPTimeout,
			Transport:     http.DefaultTransport.(*http.Transport).Clone(),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	c := &Client{cfg: cfg, hc: hc, log: log}
	if cfg.Endpoints != nil {
		ep := *cfg.Endpoints
		c.ep = &ep
	}
	return c, nil
}

// NewForService returns a Client for the authorization server of the CSC
// service that cl talks to: Issuer from info (oauth2Issuer, else oauth2),
// HTTPClient from cl.HTTPClient() (same trust roots and pins), Service from
// cl.BaseURL(), when cfg leaves them empty. It calls info.
func NewForService(ctx context.Context, cl *cscclient.Client, cfg Config) (*Client, error) {
	if cfg.Issuer == "" && cfg.Endpoints == nil {
		info, err := cl.Info(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("oauth: info: %w", err)
		}
		cfg.Issuer = info.OAuth2Issuer
		if cfg.Issuer == "" {
			cfg.Issuer = info.OAuth2
		}
		if cfg.Issuer == "" {
			return nil, fmt.Errorf("%w: the service offers no OAuth2 authorization server (info has neither oauth2 nor oauth2Issuer)",
				cscclient.ErrNotSupported)
		}
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = cl.HTTPClient()
	}
	if cfg.Service == "" {
		cfg.Service = cl.BaseURL()
	}
	return New(cfg)
}

func checkIssuer(raw string) (string, error) {
	raw = strings.TrimRight(strings.TrimSpace(raw), "/")
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", invalidArgument("issuer %q: want https://host[:port][/path]", raw)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		return "", invalidArgument("issuer %q: https is required (http only on the loopback)", raw)
	}
	return raw, nil
}

// Endpoints returns the authorization server's endpoints, discovering them
// once (RFC 8414) and falling back to the CSC layout {issuer}/oauth2/...
// when the server publishes no metadata.
func (c *Client) Endpoints(ctx context.Context) (Endpoints, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ep != nil {
		return *c.ep, nil
	}
	ep, err := c.discover(ctx)
	if err != nil {
		return Endpoints{}, err
	}
	c.ep = &ep
	return ep, nil
}

// metadata is the part of RFC 8414 §2 this package uses.
type metadata struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	PAREndpoint           string   `json:"pushed_authorization_request_endpoint"`
	RevocationEndpoint    string   `json:"revocation_endpoint"`
	RequirePAR            bool     `json:"require_pushed_authorization_requests"`
	IssParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
	AbandonEndpoint       string   `json:"csctoken_abandon_endpoint"`
}

// wellKnownURLs are where the metadata of issuer may be: RFC 8414 §3.1
// inserts the well-known path between host and path; servers mounted under
// a prefix often serve it below the prefix instead; an OpenID provider
// (ORY Hydra, Keycloak) serves OpenID Connect Discovery's, appended to
// the issuer (Discovery §4), whose members used here are the same.
func wellKnownURLs(issuer string) []string {
	const wk = "/.well-known/oauth-authorization-server"
	oidc := strings.TrimRight(issuer, "/") + "/.well-known/openid-configuration"
	u, _ := url.Parse(issuer)
	if u.Path == "" || u.Path == "/" {
		return []string{u.Scheme + "://" + u.Host + wk, oidc}
	}
	return []string{u.Scheme + "://" + u.Host + wk + u.Path, issuer + wk, oidc}
}

// discover reads the metadata; a server without any (404 and the like)
// gets the CSC layout. Network failures are errors, so that a flaky
// network does not pin the fallback.
func (c *Client) discover(ctx context.Context) (Endpoints, error) {
	iss := c.cfg.Issuer
	for _, u := range wellKnownURLs(iss) {
		md, found, err := c.fetchMetadata(ctx, u)
		if err != nil {
			return Endpoints{}, err
		}
		if !found {
			continue
		}
		// RFC 8414 §3.3: the issuer must be the one the URL was made from.
		if strings.TrimRight(md.Issuer, "/") != iss {
			return Endpoints{}, badResponse(EndpointMetadata, http.StatusOK,
				"metadata at %s names issuer %q, not %q (RFC 8414 §3.3)", u, md.Issuer, iss)
		}
		if md.AuthorizationEndpoint == "" || md.TokenEndpoint == "" {
			return Endpoints{}, badResponse(EndpointMetadata, http.StatusOK,
				"metadata at %s lacks authorization_endpoint or token_endpoint", u)
		}
		if len(md.CodeChallengeMethods) > 0 && !contains(md.CodeChallengeMethods, "S256") {
			c.log.Warn("oauth: the server does not list PKCE S256; sending it anyway", "issuer", iss)
		}
		ep := Endpoints{
			Issuer: md.Issuer, Authorization: md.AuthorizationEndpoint, Token: md.TokenEndpoint,
			PushedAuthorization: md.PAREndpoint, Revocation: md.RevocationEndpoint,
			IssParameter: md.IssParameterSupported, RequirePAR: md.RequirePAR, Discovered: true,
			Abandon: md.AbandonEndpoint,
		}
		for _, e := range []string{ep.Authorization, ep.Token, ep.PushedAuthorization, ep.Revocation, ep.Abandon} {
			if e == "" {
				continue
			}
			if _, err := checkIssuer(e); err != nil {
				return Endpoints{}, badResponse(EndpointMetadata, http.StatusOK, "metadata at %s: endpoint %q: %w", u, e, err)
			}
		}
		c.log.Debug("oauth: metadata discovered", "issuer", iss, "par", ep.PushedAuthorization != "")
		return ep, nil
	}
	c.log.Debug("oauth: no metadata; using the CSC endpoints", "issuer", iss)
	return Endpoints{
		Issuer:        iss,
		Authorization: iss + "/oauth2/authorize",
		Token:         iss + "/oauth2/token",
		Revocation:    iss + "/oauth2/revoke",
	}, nil
}

// fetchMetadata GETs one well-known URL: found is false for an answer
// that is not metadata (a 404, an HTML page).
func (c *Client) fetchMetadata(ctx context.Context, u string) (md metadata, found bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return md, false, &Error{Endpoint: EndpointMetadata, Err: err}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return md, false, &Error{Endpoint: EndpointMetadata, Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return md, false, &Error{Endpoint: EndpointMetadata, StatusCode: resp.StatusCode, Err: err}
	}
	switch {
	case resp.StatusCode >= 500:
		return md, false, &Error{Endpoint: EndpointMetadata, StatusCode: resp.StatusCode}
	case resp.StatusCode != http.StatusOK:
		return md, false, nil
	case len(body) > maxBody:
		return md, false, badResponse(EndpointMetadata, resp.StatusCode, "metadata larger than %d bytes", maxBody)
	}
	if err := json.Unmarshal(body, &md); err != nil {
		if strings.HasPrefix(strings.TrimSpace(string(body)), "{") {
			return md, false, badResponse(EndpointMetadata, resp.StatusCode, "metadata at %s: %w", u, err)
		}
		return md, false, nil // not JSON: not metadata
	}
	if md.Issuer == "" {
		return md, false, nil
	}
	return md, true, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// doForm posts a form to an endpoint with the client's authentication and
// returns status and body (bounded). Failures to get an answer are *Error.
func (c *Client) doForm(ctx context.Context, endpoint, target string, form url.Values) (int, []byte, error) {
	if c.cfg.ClientSecret == "" {
		form.Set("client_id", c.cfg.ClientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, &Error{Endpoint: endpoint, Err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.cfg.ClientSecret != "" {
		// RFC 6749 §2.3.1: both form-urlencoded, then Basic.
		req.SetBasicAuth(url.QueryEscape(c.cfg.ClientID), url.QueryEscape(c.cfg.ClientSecret))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, &Error{Endpoint: endpoint, Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return resp.StatusCode, nil, &Error{Endpoint: endpoint, StatusCode: resp.StatusCode, Err: err}
	}
	if len(body) > maxBody {
		return resp.StatusCode, nil, badResponse(endpoint, resp.StatusCode, "answer larger than %d bytes", maxBody)
	}
	return resp.StatusCode, body, nil
}

// errorBody reads an RFC 6749 §5.2 error answer.
func errorBody(endpoint string, status int, body []byte) *Error {
	var eb struct {
		Code        string `json:"error"`
		Description string `json:"error_description"`
		URI         string `json:"error_uri"`
	}
	e := &Error{Endpoint: endpoint, StatusCode: status}
	if err := json.Unmarshal(body, &eb); err != nil || eb.Code == "" {
		e.bad = status < 500
		e.Err = errors.New("no OAuth2 error in the answer")
		return e
	}
	e.Code, e.Description, e.URI = clip(eb.Code), clip(eb.Description), clip(eb.URI)
	return e
}
