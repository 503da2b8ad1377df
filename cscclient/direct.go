package cscclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"
)

// WithCallerIO makes the Client do each call's network I/O on the calling
// goroutine, over sockets in blocking mode, where the platform allows it
// (Linux; elsewhere the option does nothing). It is meant for the PKCS#11
// library: a host thread calls in through cgo on a goroutine locked to
// that thread, and net/http's Transport hands every request and answer
// between goroutines (the connection's read and write loops, the network
// poller), each hand-off a thread wake-up. With this option the calling
// thread writes the request and sleeps in the kernel until the answer
// arrives, as a C client would.
//
// Everything else is as without it: the same TLS configuration (trust
// roots, pins, session resumption), HTTP/1.1 with keep-alive and the same
// idle limits, the same timeouts and size limits, and cancellation through
// the context (the socket is shut down, which wakes the thread). Requests
// through a proxy (HTTPS_PROXY and the like) go through net/http's
// Transport.
func WithCallerIO() Option { return func(c *config) { c.callerIO = true } }

// testCallerIO turns WithCallerIO on for every Client (tests: the suite
// runs again with it, see TestCallerIO).
var testCallerIO bool

// maxResponseHeader bounds the status line and headers of an answer read
// by the caller-I/O transport.
const maxResponseHeader = 1 << 20

// max1xx bounds the informational (1xx) answers skipped before the final
// one, as net/http does.
const max1xx = 5

// callerTransport is the transport of WithCallerIO: an http.RoundTripper
// that writes the request and reads the answer's header on the calling
// goroutine, over a pool of kept-alive connections whose sockets block
// (blockingConn), and hands the connection back to the pool when the
// body has been read to its end.
type callerTransport struct {
	proxied  *http.Transport // requests through a proxy, and the settings shared with it
	tlsConf  *tls.Config
	dialer   *net.Dialer
	maxIdle  int           // per host
	maxTotal int           // all hosts
	idleFor  time.Duration // IdleConnTimeout
	hsFor    time.Duration // TLSHandshakeTimeout

	mu       sync.Mutex
	idle     map[string][]*callerConn // by scheme://host:port; the last one used last
	total    int
	sweeping bool // a sweep is due (a timer runs)
}

func newCallerTransport(ht *http.Transport, dialer *net.Dialer) *callerTransport {
	return &callerTransport{
		proxied:  ht,
		tlsConf:  ht.TLSClientConfig,
		dialer:   dialer,
		maxIdle:  ht.MaxIdleConnsPerHost,
		maxTotal: ht.MaxIdleConns,
		idleFor:  ht.IdleConnTimeout,
		hsFor:    ht.TLSHandshakeTimeout,
		idle:     map[string][]*callerConn{},
	}
}

// callerConn is one kept-alive connection.
type callerConn struct {
	raw   *blockingConn
	conn  net.Conn // raw, or a *tls.Conn over it
	lim   limitedReader
	br    *bufio.Reader // over lim, over conn
	bw    *bufio.Writer
	since time.Time // idle since
	used  bool      // has carried a request
}

func (pc *callerConn) close() { _ = pc.conn.Close() }

// limitedReader fails a read past n bytes (the answer's header).
type limitedReader struct {
	r io.Reader
	n int64
}

var errHeaderTooLarge = fmt.Errorf("%w: response header exceeds %d bytes", ErrResponseTooLarge, maxResponseHeader)

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

func connKey(req *http.Request) string {
	host := req.URL.Host
	if req.URL.Port() == "" {
		if req.URL.Scheme == "https" {
			host += ":443"
		} else {
			host += ":80"
		}
	}
	return req.URL.Scheme + "://" + host
}

// CloseIdleConnections implements transport.
func (t *callerTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle, t.total = map[string][]*callerConn{}, 0
	t.mu.Unlock()
	for _, pcs := range idle {
		for _, pc := range pcs {
			pc.close()
		}
	}
	t.proxied.CloseIdleConnections()
}

// get returns a kept-alive connection to key that is still open, or nil.
func (t *callerTransport) get(key string) *callerConn {
	now := time.Now()
	for {
		t.mu.Lock()
		pcs := t.idle[key]
		n := len(pcs)
		if n == 0 {
			t.mu.Unlock()
			return nil
		}
		pc := pcs[n-1]
		pcs[n-1] = nil
		t.idle[key] = pcs[:n-1]
		t.total--
		t.mu.Unlock()
		if now.Sub(pc.since) < t.idleFor && pc.raw.idleOK() {
			return pc
		}
		pc.close() // timed out, or closed (or written to) by the server while idle
	}
}

// put keeps pc for the next call, within the idle limits.
func (t *callerTransport) put(key string, pc *callerConn) {
	pc.since = time.Now()
	var drop []*callerConn
	t.mu.Lock()
	pcs := t.idle[key]
	// The oldest first: drop those idle too long.
	for len(pcs) > 0 && pc.since.Sub(pcs[0].since) >= t.idleFor {
		drop = append(drop, pcs[0])
		pcs = pcs[1:]
		t.total--
	}
	if len(pcs) >= t.maxIdle || t.total >= t.maxTotal {
		drop = append(drop, pc)
	} else {
		pcs = append(pcs, pc)
		t.total++
		if !t.sweeping && t.idleFor > 0 {
			t.sweeping = true
			time.AfterFunc(t.idleFor, t.sweep)
		}
	}
	t.idle[key] = pcs
	t.mu.Unlock()
	for _, d := range drop {
		d.close()
	}
}

// sweep closes the connections idle for idleFor or longer, and comes again
// when the oldest of the others will be, as net/http's Transport closes
// each idle connection at its IdleConnTimeout: without it the sockets of
// a Client dropped without CloseIdleConnections (the module's at
// C_Finalize) stayed open as long as the process.
func (t *callerTransport) sweep() {
	now := time.Now()
	var (
		drop []*callerConn
		next time.Duration
	)
	t.mu.Lock()
	for key, pcs := range t.idle {
		i := 0 // the oldest first
		for i < len(pcs) && now.Sub(pcs[i].since) >= t.idleFor {
			i++
		}
		drop = append(drop, pcs[:i]...)
		t.total -= i
		if i == len(pcs) {
			delete(t.idle, key)
			continue
		}
		clear(pcs[:i])
		t.idle[key] = pcs[i:]
		if d := t.idleFor - now.Sub(pcs[i].since); next == 0 || d < next {
			next = d
		}
	}
	t.sweeping = next > 0
	if t.sweeping {
		time.AfterFunc(next, t.sweep)
	}
	t.mu.Unlock()
	for _, pc := range drop {
		pc.close()
	}
}

// dial opens a connection for req: TCP, then TLS for https, with the
// Transport's dialer, TLS configuration and handshake timeout.
func (t *callerTransport) dial(ctx context.Context, req *http.Request) (*callerConn, error) {
	addr := connKey(req)[len(req.URL.Scheme)+3:]
	c, err := t.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	raw, err := newBlockingConn(c)
	if err != nil {
		return nil, err
	}
	pc := &callerConn{raw: raw, conn: raw}
	if req.URL.Scheme == "https" {
		cfg := t.tlsConf.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = req.URL.Hostname()
		}
		tc := tls.Client(raw, cfg)
		dl := time.Now().Add(t.hsFor)
		if d, ok := ctx.Deadline(); ok && d.Before(dl) {
			dl = d
		}
		_ = raw.SetDeadline(dl)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, err
		}
		pc.conn = tc
	}
	pc.lim.r = pc.conn
	pc.br = bufio.NewReaderSize(&pc.lim, 4<<10)
	pc.bw = bufio.NewWriterSize(pc.conn, 8<<10)
	return pc, nil
}

// RoundTrip implements http.RoundTripper.
func (t *callerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" && req.URL.Scheme != "http" {
		closeBody(req)
		return nil, fmt.Errorf("unsupported protocol scheme %q", req.URL.Scheme)
	}
	if t.proxied.Proxy != nil {
		p, err := t.proxied.Proxy(req)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		if p != nil {
			return t.proxied.RoundTrip(req)
		}
	}
	ctx := req.Context()
	key := connKey(req)
	for try := 0; ; try++ {
		var pc *callerConn
		if try == 0 {
			pc = t.get(key) // a retry gets a new connection
		}
		if pc == nil {
			var err error
			if pc, err = t.dial(ctx, req); err != nil {
				closeBody(req)
				return nil, err
			}
		}
		resp, retry, err := t.exchange(ctx, key, pc, req)
		if err == nil || !retry || try > 0 {
			return resp, err
		}
		// A kept-alive connection the server had closed: once more on a
		// new one, with the body again.
		if req.GetBody != nil {
			b, gerr := req.GetBody()
			if gerr != nil {
				return nil, err
			}
			r2 := *req
			r2.Body = b
			req = &r2
		}
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// exchange sends req over pc and reads the answer's header. retry says
// that pc was a kept-alive connection that turned out dead before the
// request could have reached the server and that req may be sent again.
func (t *callerTransport) exchange(ctx context.Context, key string, pc *callerConn, req *http.Request) (*http.Response, bool, error) {
	reused := pc.used
	pc.used = true
	dl, _ := ctx.Deadline()
	_ = pc.raw.SetDeadline(dl)
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, pc.raw.abort)
	}
	fail := func(err error) error {
		stop()
		pc.close()
		if cerr := ctxErr(ctx); cerr != nil {
			return fmt.Errorf("%w (%w)", cerr, err)
		}
		return err
	}
	// (*Request).Write calls the trace's WroteHeaders before the request
	// leaves the buffer, as net/http's Transport does.
	if err := req.Write(pc.bw); err != nil {
		return nil, false, fail(err)
	}
	if err := pc.bw.Flush(); err != nil {
		// Nothing reached the server when the write failed at once on a
		// kept-alive connection: a request fits one TLS record.
		return nil, reused && pc.raw.written() == 0 && (req.Body == nil || req.Body == http.NoBody || req.GetBody != nil), fail(err)
	}
	pc.lim.n = maxResponseHeader
	var resp *http.Response
	for i := 0; ; i++ {
		var err error
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			// A kept-alive connection closed before any byte of an answer:
			// the server may have closed it just as the request went out
			// (it never read it), or read it; repeated only when the
			// method allows it, as net/http does.
			retry := reused && pc.raw.read() == 0 && replayable(req)
			return nil, retry, fail(err)
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			_ = trace.Got1xxResponse(resp.StatusCode, nil)
		}
		if i >= max1xx {
			return nil, false, fail(errors.New("too many 1xx informational responses"))
		}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body.Close()
		return nil, false, fail(errors.New("unexpected 101 Switching Protocols"))
	}
	pc.lim.n = 1<<63 - 1
	resp.Body = &callerBody{t: t, key: key, pc: pc, req: req, resp: resp, body: resp.Body, stop: stop}
	return resp, false, nil
}

// ctxErr is ctx's error, or context.DeadlineExceeded once ctx's deadline
// has passed though ctx's own timer has not fired yet: the socket's
// timeout, set to the same instant and never shorter, may end a read a
// moment before it does, and the caller must see the context's error, as
// with net/http's Transport.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// replayable reports whether req may be sent twice (net/http's rule).
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, a := req.Header["Idempotency-Key"]
	_, b := req.Header["X-Idempotency-Key"]
	return a || b
}

// callerBody is the body of an answer: the connection goes back to the
// pool when the body has been read to its end, and is closed when it is
// closed before.
type callerBody struct {
	t    *callerTransport
	key  string
	pc   *callerConn // nil once done
	req  *http.Request
	resp *http.Response
	body io.ReadCloser
	stop func() bool
	err  error // after done
}

var errBodyClosed = errors.New("http: read on closed response body")

func (b *callerBody) Read(p []byte) (int, error) {
	if b.pc == nil {
		return 0, b.err
	}
	n, err := b.body.Read(p)
	switch {
	case err == io.EOF:
		b.done(true, io.EOF)
	case err != nil:
		if cerr := ctxErr(b.req.Context()); cerr != nil {
			err = fmt.Errorf("%w (%w)", cerr, err)
		}
		b.done(false, err)
	}
	return n, err
}

func (b *callerBody) Close() error {
	if b.pc != nil {
		b.done(false, errBodyClosed)
	}
	return nil
}

func (b *callerBody) done(eof bool, err error) {
	pc := b.pc
	b.pc, b.err = nil, err
	notAborted := b.stop()
	if eof && notAborted && !b.resp.Close && !b.req.Close && pc.br.Buffered() == 0 {
		b.t.put(b.key, pc)
		return
	}
	pc.close()
}
