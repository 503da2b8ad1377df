package cscclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Client calls one CSC service. It is safe for concurrent use; its one
// *http.Client keeps connections alive between calls (HTTP/1.1, one
// connection per call under way), so make one Client per service and share
// it.
type Client struct {
	base    *url.URL // ends in /csc/v1 or /csc/v2; nodes[0].base
	nodes   []*node  // base, then the failover URLs
	fo      FailoverPolicy
	version Version
	hc      *http.Client
	tr      transport
	plain   *http.Client // no token, no redirects: HTTPClient
	log     *slog.Logger
	maxBody int64
	timeout time.Duration // of one attempt
	retry   RetryPolicy
	ua      string
	source  atomic.Pointer[sourceBox]

	// sleep waits d or until ctx is done; swapped by tests.
	sleep func(ctx context.Context, d time.Duration) error
	// now is the clock of the nodes' backoff; swapped by tests.
	now func() time.Time
}

type sourceBox struct{ ts TokenSource }

// clientSource lets SetTokenSource swap the source under a running
// Transport.
type clientSource struct{ c *Client }

func (s clientSource) Token(ctx context.Context) (*Token, error) {
	b := s.c.source.Load()
	if b == nil || b.ts == nil {
		return nil, ErrLoginRequired
	}
	return b.ts.Token(ctx)
}

func (s clientSource) Invalidate(access string) {
	if b := s.c.source.Load(); b != nil {
		if inv, ok := b.ts.(invalidator); ok {
			inv.Invalidate(access)
		}
	}
}

// New returns a Client for the service at baseURL, which ends in /csc/v2 or
// /csc/v1 (the wire version spoken). Without that suffix, the version of
// WithVersion (else v2) is appended. baseURL must be https, or http on a
// loopback host (tests), or http anywhere with WithInsecureHTTP.
//
// Trust: the system roots, or WithRootCAs, plus WithCAFile; pinning with
// WithPinnedSPKI.
//
// WithFailoverURLs adds other nodes of the same service, and says when a
// call moves to another node.
func New(baseURL string, opts ...Option) (*Client, error) {
	var cfg config
	cfg.callerIO = testCallerIO
	for _, o := range opts {
		o(&cfg)
	}
	u, v, err := parseBase(baseURL, cfg.version, cfg.insecureHTTP)
	if err != nil {
		return nil, err
	}
	nodes := []*node{{base: u}}
	for _, raw := range cfg.failover {
		fu, _, err := parseBase(raw, v, cfg.insecureHTTP)
		if err != nil {
			return nil, fmt.Errorf("failover URL: %w", err)
		}
		for _, n := range nodes {
			if n.base.String() == fu.String() {
				return nil, fmt.Errorf("%w: failover URL %q given twice", ErrInvalidArgument, raw)
			}
		}
		nodes = append(nodes, &node{base: fu})
	}
	tr, err := newTransport(&cfg)
	if err != nil {
		return nil, err
	}
	c := &Client{
		base:    u,
		nodes:   nodes,
		fo:      cfg.failoverPolicy.withDefaults(),
		version: v,
		tr:      tr,
		log:     cfg.logger,
		maxBody: cfg.maxBody,
		retry:   cfg.retry.withDefaults(),
		ua:      cfg.userAgent,
		sleep:   sleepCtx,
		now:     time.Now,
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxResponseSize
	}
	if c.ua == "" {
		c.ua = "csctoken"
	}
	if cfg.tokenSource != nil {
		c.SetTokenSource(cfg.tokenSource)
	}
	var base http.RoundTripper = tr
	if cfg.transport != nil {
		base = cfg.transport
	}
	timeout := cfg.timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c.timeout = timeout
	// No Timeout here: attempt bounds each attempt with its context.
	// http.Client enforces its own Timeout over a RoundTripper of another
	// package (the token's Transport) with a goroutine per request.
	c.hc = &http.Client{
		Transport:     &Transport{Source: clientSource{c}, Base: base, Origin: u, Origins: c.nodeURLs()},
		CheckRedirect: c.checkRedirect,
	}
	c.plain = &http.Client{
		Transport: base,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return c, nil
}

func parseBase(raw string, want Version, insecure bool) (*url.URL, Version, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: base URL: %w", ErrInvalidArgument, err)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, 0, fmt.Errorf("%w: base URL %q: want scheme://host[:port][/prefix]/csc/v2", ErrInvalidArgument, raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !insecure && !isLoopback(u.Hostname()) {
			return nil, 0, fmt.Errorf("%w: base URL %q: http is allowed only on the loopback", ErrInvalidArgument, raw)
		}
	default:
		return nil, 0, fmt.Errorf("%w: base URL %q: scheme must be https", ErrInvalidArgument, raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	var v Version
	switch {
	case strings.HasSuffix(u.Path, "/csc/v2"):
		v = V2
	case strings.HasSuffix(u.Path, "/csc/v1"):
		v = V1
	}
	switch {
	case v != 0 && want != 0 && v != want:
		return nil, 0, fmt.Errorf("%w: base URL %q is %v, but %v was asked", ErrInvalidArgument, raw, v, want)
	case v == 0 && want != 0 && want != V1 && want != V2:
		return nil, 0, fmt.Errorf("%w: unknown version %d", ErrInvalidArgument, int(want))
	case v == 0:
		v = want
		if v == 0 {
			v = V2
		}
		u.Path += "/csc/" + v.String()
	}
	return u, v, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// BaseURL returns the base URL, ending in /csc/v1 or /csc/v2: the first
// node's, which names the service (token store, caches).
func (c *Client) BaseURL() string { return c.base.String() }

// BaseURLs returns the base URLs of every node, the first one first.
func (c *Client) BaseURLs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.base.String()
	}
	return out
}

func (c *Client) nodeURLs() []*url.URL {
	out := make([]*url.URL, 0, len(c.nodes)-1)
	for _, n := range c.nodes[1:] {
		out = append(out, n.base)
	}
	return out
}

// Version returns the wire version spoken.
func (c *Client) Version() Version { return c.version }

// SetTokenSource sets the source of the service token (nil: none; calls
// that need one then fail with ErrLoginRequired).
func (c *Client) SetTokenSource(ts TokenSource) { c.source.Store(&sourceBox{ts}) }

// HTTPClient returns an *http.Client over this Client's connections and
// TLS settings (trust roots, CA file, SPKI pins, per-attempt timeout) that
// adds no Authorization header and follows no redirect (a 3xx comes back as
// the response): for other endpoints of the same service, such as its OAuth2
// authorization server (package cscclient/oauth). Pins apply to every host
// it talks to. The caller must not modify it.
func (c *Client) HTTPClient() *http.Client { return c.plain }

// CloseIdleConnections closes the kept-alive connections.
func (c *Client) CloseIdleConnections() { c.tr.CloseIdleConnections() }

// checkRedirect follows only same-origin redirects that keep the method
// (307, 308): a CSC method never needs another, and a token must never
// follow a redirect to another host.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 3 {
		return fmt.Errorf("%w: too many redirects", ErrRedirect)
	}
	if !c.isNodeOrigin(req.URL) {
		return fmt.Errorf("%w: to another origin (%s://%s)", ErrRedirect, req.URL.Scheme, req.URL.Host)
	}
	if req.Method != via[0].Method {
		return fmt.Errorf("%w: would turn %s into %s", ErrRedirect, via[0].Method, req.Method)
	}
	return nil
}

// methodSpec describes one CSC method.
type methodSpec struct {
	name       string // v2 name
	idempotent bool   // retried on 429, 503 (and 401 once after a refresh)
	sensitive  bool   // a 2xx body may carry a secret: no excerpt
	noAuth     bool   // no Bearer (info; auth/login sets its own header)
	emptyOK    bool   // a 2xx without body is a success
	// sameSADRetry: sent again to another node after a node failure even
	// when the first may have received it (signHash: the server refuses a
	// used-up SAD; see nodes.go).
	sameSADRetry bool
}

// call is one CSC call.
type call struct {
	spec  *methodSpec
	in    any    // request body (marshalled to JSON)
	get   bool   // GET without body (info on CZ-like servers)
	basic string // "user:password" for Basic, or ""
}

// result is a received answer.
type result struct {
	status int
	header http.Header
	body   []byte
}

// do runs c with retries and returns the answer of status 2xx (other
// answers and failures come back as *Error).
func (cl *Client) do(ctx context.Context, c call) (*result, error) {
	name := c.spec.name
	path := name
	if cl.version == V1 {
		p, ok := v1Path(name)
		if !ok {
			return nil, &Error{Method: name, kinds: []error{ErrNotSupported},
				Err: fmt.Errorf("%s has no CSC v1 form", name)}
		}
		path = p
	}
	if ctx == nil {
		return nil, localError(name, ErrInvalidArgument, "nil context")
	}
	var body []byte
	if !c.get {
		in := c.in
		if in == nil {
			in = struct{}{}
		}
		b, err := json.Marshal(in)
		if err != nil {
			return nil, localError(name, ErrInvalidArgument, "encode request: %w", err)
		}
		body = b
	}
	retried401 := false
	order := cl.order()
	i := 0
	var unknown *Error // a node failure after the request may have reached it
	for attempt := 1; ; attempt++ {
		n := order[i]
		target := n.base.JoinPath(path).String()
		actx, cancel := cl.attemptCtx(ctx, i+1 < len(order) && failoverSafe(c.spec, true))
		res, err := cl.attempt(actx, c, target, body, attempt)
		cancel()
		if err == nil {
			n.up()
			return res, nil
		}
		var e *Error
		if !errors.As(err, &e) {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, withUnknown(e, unknown)
		}
		if !nodeFailure(e) {
			if e.StatusCode != 0 {
				n.up()
			}
		} else {
			if len(cl.nodes) > 1 {
				d := n.down(cl.now(), cl.fo)
				cl.log.LogAttrs(ctx, slog.LevelInfo, "csc node failed", slog.String("method", name),
					slog.String("node", n.base.Host), slog.Int("status", e.StatusCode),
					slog.Duration("avoided_for", d), slog.String("err", e.Error()))
			}
			if e.sent && unknown == nil && !c.spec.idempotent {
				unknown = e
			}
			if i+1 < len(order) && failoverSafe(c.spec, e.sent) {
				i++
				cl.log.LogAttrs(ctx, slog.LevelInfo, "csc failover", slog.String("method", name),
					slog.String("to", order[i].base.Host), slog.Int("attempt", attempt))
				continue
			}
		}
		if attempt >= cl.retry.MaxAttempts {
			return nil, withUnknown(e, unknown)
		}
		wait, ok := cl.retryWait(c.spec, e, attempt, &retried401)
		if !ok {
			return nil, withUnknown(e, unknown)
		}
		cl.log.LogAttrs(ctx, slog.LevelInfo, "csc retry", slog.String("method", name),
			slog.Int("status", e.StatusCode), slog.Duration("wait", wait), slog.Int("attempt", attempt))
		if serr := cl.sleep(ctx, wait); serr != nil {
			return nil, withUnknown(e, unknown)
		}
		if nodeFailure(e) {
			// Start again from the best node.
			order, i = cl.order(), 0
		}
	}
}

// withUnknown marks the final error of a call that an earlier node may
// have carried out (see ErrOutcomeUnknown).
func withUnknown(e, unknown *Error) *Error {
	if unknown == nil || e == unknown {
		return e
	}
	e.kinds = append(e.kinds, ErrOutcomeUnknown)
	return e
}

// retryWait decides whether e is retried and after how long.
func (cl *Client) retryWait(spec *methodSpec, e *Error, attempt int, retried401 *bool) (time.Duration, bool) {
	backoff := cl.retry.BaseDelay << (attempt - 1)
	if backoff > cl.retry.MaxDelay || backoff <= 0 {
		backoff = cl.retry.MaxDelay
	}
	backoff = backoff/2 + rand.N(backoff/2+1) // jitter in [d/2, d]
	switch {
	case e.StatusCode == 0 && errors.Is(e.Err, syscall.ECONNREFUSED):
		// Nothing was sent: safe for every method, signHash included.
		return backoff, true
	case !spec.idempotent:
		return 0, false
	case e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusServiceUnavailable:
		if e.RetryAfter > 0 {
			if e.RetryAfter > cl.retry.MaxDelay {
				return 0, false
			}
			return e.RetryAfter, true
		}
		return backoff, true
	case e.StatusCode == http.StatusUnauthorized && e.authFromSource && !*retried401:
		// The Transport invalidated the token; one retry with a fresh one.
		*retried401 = true
		return 0, true
	}
	return 0, false
}

// attempt sends one HTTP request and reads its answer.
func (cl *Client) attempt(ctx context.Context, c call, target string, body []byte, n int) (*result, error) {
	name := c.spec.name
	method := http.MethodPost
	var rd io.Reader
	if c.get {
		method = http.MethodGet
	} else {
		rd = bytes.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(ctx, cl.timeout)
	defer cancel()
	note := &authNote{}
	rctx := context.WithValue(ctx, keyAuthNote, note)
	var wrote atomic.Bool // the request's headers went out: it may have arrived
	rctx = httptrace.WithClientTrace(rctx, &httptrace.ClientTrace{WroteHeaders: func() { wrote.Store(true) }})
	if c.spec.noAuth {
		rctx = context.WithValue(rctx, keyNoAuth, true)
	}
	req, err := http.NewRequestWithContext(rctx, method, target, rd)
	if err != nil {
		return nil, localError(name, ErrInvalidArgument, "build request: %w", err)
	}
	if !c.get {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", cl.ua)
	switch {
	case c.basic != "":
		user, pass, _ := strings.Cut(c.basic, ":")
		req.SetBasicAuth(user, pass)
	case !c.spec.noAuth:
		if tok, ok := ctx.Value(keyBearer).(string); ok && tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	start := time.Now()
	resp, err := cl.hc.Do(req)
	if err != nil {
		e := cl.transportError(ctx, name, err)
		e.sent = wrote.Load()
		cl.logAttempt(ctx, name, n, 0, "", start, e)
		return nil, e
	}
	defer func() {
		// Drain a little so the connection can be reused, then close.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	data, err := io.ReadAll(io.LimitReader(resp.Body, cl.maxBody+1))
	if err != nil {
		e := cl.transportError(ctx, name, err)
		e.StatusCode = resp.StatusCode
		e.sent = true
		cl.logAttempt(ctx, name, n, resp.StatusCode, "", start, e)
		return nil, e
	}
	if int64(len(data)) > cl.maxBody {
		e := &Error{Method: name, StatusCode: resp.StatusCode, kinds: []error{ErrResponseTooLarge},
			Err: fmt.Errorf("body exceeds %d bytes", cl.maxBody)}
		if !c.spec.sensitive {
			e.Body = excerpt(data)
		}
		cl.logAttempt(ctx, name, n, resp.StatusCode, "", start, e)
		return nil, e
	}
	res := &result{status: resp.StatusCode, header: resp.Header, body: data}
	e := checkResult(c.spec, res)
	if e != nil {
		e.authFromSource = note.fromSource
		e.sent = true
	}
	code := ""
	if e != nil {
		code = e.Code
	}
	cl.logAttempt(ctx, name, n, resp.StatusCode, code, start, e)
	if e != nil {
		return nil, e
	}
	return res, nil
}

func (cl *Client) logAttempt(ctx context.Context, method string, n, status int, code string, start time.Time, err *Error) {
	if !cl.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.Int("attempt", n),
		slog.Int("status", status),
		slog.Duration("took", time.Since(start)),
	}
	if code != "" {
		attrs = append(attrs, slog.String("csc_error", code))
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	cl.log.LogAttrs(ctx, slog.LevelDebug, "csc call", attrs...)
}

// transportError classifies a failure without a (complete) response.
func (cl *Client) transportError(ctx context.Context, method string, err error) *Error {
	var te *tokenError
	if errors.As(err, &te) {
		// The token source failed: report its error as is.
		e := &Error{Method: method, Err: te.err}
		if errors.Is(te.err, ErrLoginRequired) {
			e.kinds = append(e.kinds, ErrLoginRequired)
		}
		return e
	}
	if errors.Is(err, ErrRedirect) {
		return &Error{Method: method, kinds: []error{ErrRedirect}, Err: unwrapURLError(err)}
	}
	e := &Error{Method: method, kinds: []error{ErrTransport}, Err: err}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		e.kinds = append(e.kinds, ErrTimeout)
	}
	if isTLSError(err) {
		e.kinds = append(e.kinds, ErrTLS)
	}
	return e
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// checkResult turns every answer but a well-formed 2xx into an *Error.
func checkResult(spec *methodSpec, r *result) *Error {
	name := spec.name
	if r.status >= 300 && r.status < 400 {
		loc := r.header.Get("Location")
		where := "nowhere"
		if u, err := url.Parse(loc); err == nil && loc != "" {
			where = u.Scheme + "://" + u.Host
		}
		return &Error{Method: name, StatusCode: r.status, kinds: []error{ErrRedirect},
			Err: fmt.Errorf("redirect to %s not followed", where)}
	}
	if r.status < 200 || r.status >= 300 {
		return errorFromBody(name, r)
	}
	body := bytes.TrimSpace(r.body)
	if len(body) == 0 {
		if spec.emptyOK || r.status == http.StatusAccepted {
			return nil
		}
		return &Error{Method: name, StatusCode: r.status, kinds: []error{ErrBadResponse},
			Err: errors.New("empty body")}
	}
	ex := ""
	if !spec.sensitive {
		ex = excerpt(r.body)
	}
	if !jsonContentType(r.header.Get("Content-Type")) {
		if spec.emptyOK {
			// revoke, getChallenge, sendOTP: a text "OK" is a success too.
			r.body = nil
			return nil
		}
		return &Error{Method: name, StatusCode: r.status, Body: ex, kinds: []error{ErrBadResponse},
			Err: fmt.Errorf("unexpected Content-Type %q", r.header.Get("Content-Type"))}
	}
	if body[0] != '{' {
		return &Error{Method: name, StatusCode: r.status, Body: ex, kinds: []error{ErrBadResponse},
			Err: errors.New("body is not a JSON object")}
	}
	// An error inside a 2xx is an error.
	var eb wireError
	if json.Unmarshal(body, &eb) == nil && eb.Code != "" {
		e := &Error{Method: name, StatusCode: r.status, Code: clip(eb.Code, 100),
			Description: clip(eb.Description, maxExcerpt), Body: ex}
		if eb.Code != "accepted_request" {
			e.kinds = []error{ErrBadResponse}
		}
		return e
	}
	return nil
}

// wireError is the CSC error body, decoded leniently.
type wireError struct {
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

// errorFromBody builds the *Error of a non-2xx answer.
func errorFromBody(name string, r *result) *Error {
	e := &Error{Method: name, StatusCode: r.status, Body: excerpt(r.body)}
	var eb wireError
	if body := bytes.TrimSpace(r.body); len(body) > 0 && body[0] == '{' && json.Unmarshal(body, &eb) == nil {
		e.Code = clip(strings.TrimSpace(eb.Code), 100)
		e.Description = clip(eb.Description, maxExcerpt)
	}
	if ra, ok := parseRetryAfter(r.header.Get("Retry-After")); ok {
		e.RetryAfter = ra
	}
	return e
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return excerpt([]byte(s[:n]))
}

// jsonContentType accepts application/json, application/*+json, text/json
// and a missing Content-Type.
func jsonContentType(ct string) bool {
	if strings.TrimSpace(ct) == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || mt == "text/json" ||
		(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > 86400 {
			n = 86400
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := time.Until(t)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// decode unmarshals a 2xx body into out; sensitive bodies get no excerpt.
func decode(spec *methodSpec, r *result, out any) error {
	if err := json.Unmarshal(r.body, out); err != nil {
		e := &Error{Method: spec.name, StatusCode: r.status, kinds: []error{ErrBadResponse}, Err: err}
		if !spec.sensitive {
			e.Body = excerpt(r.body)
		}
		return e
	}
	return nil
}

// badResponse reports a well-formed answer that lacks what the method needs.
func badResponse(spec *methodSpec, r *result, format string, args ...any) *Error {
	e := &Error{Method: spec.name, kinds: []error{ErrBadResponse}, Err: fmt.Errorf(format, args...)}
	if r != nil {
		e.StatusCode = r.status
		if !spec.sensitive {
			e.Body = excerpt(r.body)
		}
	}
	return e
}
