package oauth

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// oauth2Config is the x/oauth2 view of the client for one redirect URI.
func (c *Client) oauth2Config(ep Endpoints, redirectURI string) *oauth2.Config {
	style := oauth2.AuthStyleInParams // public: client_id in the form
	if c.cfg.ClientSecret != "" {
		style = oauth2.AuthStyleInHeader // client_secret_basic
	}
	return &oauth2.Config{
		ClientID:     c.cfg.ClientID,
		ClientSecret: c.cfg.ClientSecret,
		Endpoint:     oauth2.Endpoint{AuthURL: ep.Authorization, TokenURL: ep.Token, AuthStyle: style},
		RedirectURL:  redirectURI,
	}
}

// httpContext carries the HTTP client to x/oauth2, which would otherwise
// use http.DefaultClient.
func (c *Client) httpContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, c.hc)
}

// authorize runs one authorization code flow with PKCE (RFC 6749 §4.1,
// RFC 7636 S256) through the system browser and a loopback redirect URI
// (RFC 8252 §7.3), pushed (RFC 9126) when the server offers it, and
// returns the token endpoint's answer, which check accepts. params are the
// request's own parameters (scope, credential scope, authorization_details...).
// Errors are prefixed with what. abandonable: a credential authorization,
// which the server is told about when nobody waits for it any more.
func (c *Client) authorize(ctx context.Context, what string, abandonable bool, params url.Values, check func(*oauth2.Token) error) (*oauth2.Token, error) {
	tok, err := c.run(ctx, what, abandonable, params, check)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return tok, nil
}

func (c *Client) run(ctx context.Context, what string, abandonable bool, params url.Values, check func(*oauth2.Token) error) (*oauth2.Token, error) {
	ep, err := c.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	state, verifier := rand.Text(), oauth2.GenerateVerifier()
	cb, err := listenCallback(c.cfg.CallbackPath, state, ep.Issuer, ep.IssParameter, c.log)
	if err != nil {
		return nil, err
	}
	defer cb.close()
	conf := c.oauth2Config(ep, cb.redirectURI)
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	if c.cfg.Lang != "" {
		opts = append(opts, oauth2.SetAuthURLParam("lang", c.cfg.Lang))
	}
	for k, vs := range params {
		if len(vs) > 0 && vs[0] != "" {
			opts = append(opts, oauth2.SetAuthURLParam(k, vs[0]))
		}
	}
	authURL := conf.AuthCodeURL(state, opts...)
	pushed := ep.PushedAuthorization != "" && (!c.cfg.DisablePAR || ep.RequirePAR)
	var valid time.Duration // of a pushed request's URL
	var requestURI string
	if pushed {
		if authURL, requestURI, valid, err = c.push(ctx, ep, authURL); err != nil {
			return nil, err
		}
	}
	c.log.Info("oauth: authorization in the browser", "what", what, "url", authURL, "pushed", pushed,
		"redirect_uri", cb.redirectURI, "timeout", c.cfg.Timeout)
	if requestURI != "" && abandonable {
		hctx, stopHold := context.WithCancel(ctx)
		held := make(chan struct{})
		go func() { defer close(held); c.hold(hctx, ep, requestURI) }()
		defer func() { stopHold(); <-held }()
	}
	code, err := c.waitBrowser(ctx, authURL, valid, cb)
	if err != nil {
		cb.finish(err)
		var answered *callbackError
		if requestURI != "" && abandonable && !errors.As(err, &answered) {
			c.abandon(ctx, ep, requestURI)
		}
		return nil, err
	}
	tok, err := conf.Exchange(c.httpContext(ctx), code, oauth2.VerifierOption(verifier))
	if err != nil {
		err = tokenError(err)
	} else {
		err = check(tok)
	}
	cb.finish(err)
	if err != nil {
		return nil, err
	}
	return tok, nil
}

// waitBrowser shows authURL to the user and waits for the redirect. valid,
// when not zero, is how long the URL can be opened (a pushed request).
func (c *Client) waitBrowser(ctx context.Context, authURL string, valid time.Duration, cb *callback) (string, error) {
	wctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	shown := false
	if c.cfg.Out != nil {
		within := ""
		if valid > 0 {
			within = " within " + valid.String()
		}
		if _, err := fmt.Fprintf(c.cfg.Out, "To continue, open this URL in a browser%s:\n  %s\n", within, authURL); err == nil {
			shown = true
		}
	}
	if c.cfg.OnURL != nil {
		c.cfg.OnURL(authURL)
		shown = true
	}
	opened := make(chan error, 1)
	go func() { opened <- c.cfg.Opener.Open(wctx, authURL) }()
	for {
		select {
		case err := <-opened:
			opened = nil
			if err != nil {
				if !shown {
					return "", fmt.Errorf("%w: %w", ErrNoBrowser, err)
				}
				c.log.Warn("oauth: cannot open the browser; waiting for the URL to be opened by hand", "err", err)
			}
		case r := <-cb.result:
			if r.err != nil {
				return "", &callbackError{r.err}
			}
			return r.code, nil
		case <-wctx.Done():
			if err := ctx.Err(); err != nil {
				return "", err
			}
			return "", fmt.Errorf("%w (%v)", ErrTimeout, c.cfg.Timeout)
		}
	}
}

// bearer accepts a Bearer token.
func bearer(tok *oauth2.Token) error {
	if t := tok.Type(); t != "Bearer" {
		return badResponse(EndpointToken, http.StatusOK, "token_type %q, want Bearer", t)
	}
	return nil
}

// callbackError is the server's answer at the redirect URI (an error, a
// mismatched state...): the request is answered, nothing to abandon.
type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }
func (e *callbackError) Unwrap() error { return e.err }

// AbandonTimeout bounds the call that tells the server a pushed request
// was abandoned: it runs while the host program quits.
const AbandonTimeout = 1500 * time.Millisecond

// abandon tells the server that nobody waits for the pushed request any
// more (the context ended: the host quit or cancelled, or the wait timed
// out), so that the consent page, if open, says so and approving it gives
// nothing. It needs the server's abandon endpoint (rssp's metadata) and
// the user's service token (Config.ServiceToken); it is best effort,
// bounded by AbandonTimeout, and only logged.
func (c *Client) abandon(ctx context.Context, ep Endpoints, requestURI string) {
	if ep.Abandon == "" || c.cfg.ServiceToken == nil {
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), AbandonTimeout)
	defer cancel()
	start := time.Now()
	err := func() error {
		bearer, err := c.cfg.ServiceToken(actx)
		if err != nil || bearer == "" {
			return fmt.Errorf("no service token: %w", err)
		}
		req, err := http.NewRequestWithContext(actx, http.MethodPost, ep.Abandon,
			strings.NewReader(url.Values{"request_uri": {requestURI}}.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := c.hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return errorBody(EndpointAbandon, resp.StatusCode, body)
		}
		return nil
	}()
	took := time.Since(start).Round(time.Millisecond).String()
	if err != nil {
		c.log.Info("oauth: telling the server the request was abandoned failed", "took", took, "err", err.Error())
		return
	}
	c.log.Info("oauth: the server was told the request was abandoned (the page says so)", "took", took)
}

// hold keeps a call to the server's abandon endpoint open (hold=1) while
// the flow waits for the user, calling again when one ends with the
// request still pending, until ctx ends: if this process dies without a
// word (a host that exits without C_Finalize, a kill), the server sees the
// connection close and abandons the request, so the consent page says so.
func (c *Client) hold(ctx context.Context, ep Endpoints, requestURI string) {
	if ep.Abandon == "" || c.cfg.ServiceToken == nil {
		return
	}
	hc := *c.hc
	hc.Timeout = 0 // each call lasts up to the server's hold segment; ctx bounds it
	for ctx.Err() == nil {
		state, err := func() (string, error) {
			bearer, err := c.cfg.ServiceToken(ctx)
			if err != nil || bearer == "" {
				return "", fmt.Errorf("no service token: %w", err)
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.Abandon,
				strings.NewReader(url.Values{"request_uri": {requestURI}, "hold": {"1"}}.Encode()))
			if err != nil {
				return "", err
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", "Bearer "+bearer)
			resp, err := hc.Do(req)
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if resp.StatusCode != http.StatusOK {
				return "", errorBody(EndpointAbandon, resp.StatusCode, body)
			}
			var r struct {
				State string `json:"state"`
			}
			if err := json.Unmarshal(body, &r); err != nil {
				return "", badResponse(EndpointAbandon, resp.StatusCode, "%w", err)
			}
			return r.State, nil
		}()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			var oe *Error
			if errors.As(err, &oe) && oe.StatusCode >= 400 && oe.StatusCode < 500 {
				c.log.Info("oauth: the server does not hold the request open", "err", err.Error())
				return
			}
			c.log.Debug("oauth: holding the request open failed; again in 1s", "err", err.Error())
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		case state != "pending":
			return
		}
	}
}

// push sends the request of authURL to the PAR endpoint and returns the
// URL that names it (RFC 9126 §4), its request_uri and how long it is
// valid.
func (c *Client) push(ctx context.Context, ep Endpoints, authURL string) (string, string, time.Duration, error) {
	u, err := url.Parse(authURL)
	if err != nil {
		return "", "", 0, err
	}
	status, body, err := c.doForm(ctx, EndpointPushAuthorize, ep.PushedAuthorization, u.Query())
	if err != nil {
		return "", "", 0, err
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return "", "", 0, errorBody(EndpointPushAuthorize, status, body)
	}
	var r struct {
		RequestURI string `json:"request_uri"`
		ExpiresIn  int64  `json:"expires_in"`
		Error      string `json:"error"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", "", 0, badResponse(EndpointPushAuthorize, status, "%w", err)
	}
	if r.Error != "" {
		e := errorBody(EndpointPushAuthorize, status, body)
		e.bad = true
		return "", "", 0, e
	}
	if r.RequestURI == "" {
		return "", "", 0, badResponse(EndpointPushAuthorize, status, "no request_uri")
	}
	q := url.Values{"client_id": {c.cfg.ClientID}, "request_uri": {r.RequestURI}}
	sep := "?"
	if strings.Contains(ep.Authorization, "?") {
		sep = "&"
	}
	return ep.Authorization + sep + q.Encode(), r.RequestURI, time.Duration(max(r.ExpiresIn, 0)) * time.Second, nil
}

// tokenError converts an error of x/oauth2's token retrieval.
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		if re.ErrorCode == "" {
			return &Error{Endpoint: EndpointToken, StatusCode: status, bad: status < 500,
				Err: errors.New("no OAuth2 error in the answer")}
		}
		return &Error{Endpoint: EndpointToken, StatusCode: status, Code: clip(re.ErrorCode),
			Description: clip(re.ErrorDescription), URI: clip(re.ErrorURI), bad: status < 400}
	}
	var ue *url.Error
	if errors.As(err, &ue) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Endpoint: EndpointToken, Err: err}
	}
	return &Error{Endpoint: EndpointToken, Err: err, bad: true} // unparsable, no access_token...
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
