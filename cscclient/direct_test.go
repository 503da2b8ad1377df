package cscclient

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// callerIOEnv runs the package's tests with WithCallerIO on every Client.
const callerIOEnv = "CSCCLIENT_TEST_CALLER_IO"

func init() {
	testCallerIO = os.Getenv(callerIOEnv) == "1"
}

// TestCallerIO runs every other test of the package again with
// WithCallerIO, in a child process: the caller-I/O transport must keep
// every behaviour of net/http's (retries, failover, TLS, limits, errors).
func TestCallerIO(t *testing.T) {
	if testCallerIO {
		t.Skip("this is the run with caller I/O")
	}
	if !CallerIOSupported {
		t.Skipf("no caller I/O on %s", runtime.GOOS)
	}
	if testing.Short() {
		t.Skip("short")
	}
	args := []string{"-test.run", "^Test", "-test.timeout", "5m"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), callerIOEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tests with caller I/O: %v\n%s", err, out)
	}
}

// callerClient is a Client with WithCallerIO (skipped where it does
// nothing).
func callerClient(t *testing.T, url string, opts ...Option) *Client {
	t.Helper()
	if !CallerIOSupported {
		t.Skipf("no caller I/O on %s", runtime.GOOS)
	}
	c := mustClient(t, url, append(opts, WithCallerIO())...)
	if _, ok := c.tr.(*callerTransport); !ok {
		t.Fatalf("transport %T, want *callerTransport", c.tr)
	}
	return c
}

// TestCallerIOKeepAlive: sequential calls share one connection; one the
// server closed while idle is noticed and replaced, so that even signHash,
// which is never sent twice after it may have arrived, succeeds.
func TestCallerIOKeepAlive(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, callSignHash.goodBody())
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Config.IdleTimeout = 100 * time.Millisecond
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c := callerClient(t, srv.URL+"/csc/v2", WithRootCAs(pool), WithTokenSource(StaticToken("AT")), WithRetry(RetryPolicy{MaxAttempts: 1}))
	ctx := testCtx(t)
	for i := range 10 {
		if err := callSignHash.run(ctx, c); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 10 sequential calls, want 1", n)
	}
	time.Sleep(300 * time.Millisecond) // the server closes the idle connection
	if err := callSignHash.run(ctx, c); err != nil {
		t.Fatalf("after the server closed the idle connection: %v", err)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// TestCallerIOLimits: an answer whose header never ends is cut at
// maxResponseHeader; a server that never answers is cut at the timeout.
func TestCallerIOLimits(t *testing.T) {
	addr := rawServer(t, func(conn net.Conn, hang <-chan struct{}) {
		buf := make([]byte, 4096)
		n, _ := conn.Read(buf)
		if strings.Contains(string(buf[:n]), "credentials/list") {
			<-hang
			return
		}
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
		line := "X-Filler: " + strings.Repeat("a", 1000) + "\r\n"
		for range 2 * maxResponseHeader / len(line) {
			if _, err := io.WriteString(conn, line); err != nil {
				return
			}
		}
	})
	c := callerClient(t, "http://"+addr+"/csc/v2", WithTokenSource(StaticToken("AT")),
		WithRetry(RetryPolicy{MaxAttempts: 1}), WithTimeout(300*time.Millisecond))
	ctx := testCtx(t)
	if err := callSignHash.run(ctx, c); !errors.Is(err, ErrResponseTooLarge) {
		t.Fatalf("endless header: err = %v, want ErrResponseTooLarge", err)
	}
	start := time.Now()
	if err := callList.run(ctx, c); !errors.Is(err, ErrTimeout) {
		t.Fatalf("no answer: err = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("no answer: took %v", d)
	}
}

// TestCallerIOProxy: a request for which the environment names a proxy
// goes through net/http's Transport and that proxy.
func TestCallerIOProxy(t *testing.T) {
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Host == "" {
			t.Errorf("proxy got %s, not an absolute URL", r.URL)
		}
		proxied.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, callSignHash.goodBody())
	}))
	t.Cleanup(proxy.Close)
	pu, _ := url.Parse(proxy.URL)
	old := proxyFunc
	proxyFunc = func(*http.Request) (*url.URL, error) { return pu, nil }
	t.Cleanup(func() { proxyFunc = old })
	c := callerClient(t, "http://127.0.0.1:1/csc/v2", WithTokenSource(StaticToken("AT")))
	if err := callSignHash.run(testCtx(t), c); err != nil {
		t.Fatal(err)
	}
	if proxied.Load() != 1 {
		t.Fatalf("%d requests through the proxy, want 1", proxied.Load())
	}
}

// TestCallerIOReplay: a kept-alive connection that the server closes as
// the next request arrives is replaced and the request sent again when
// net/http would (GET), and not otherwise (POST: it may have been read).
func TestCallerIOReplay(t *testing.T) {
	if !CallerIOSupported {
		t.Skipf("no caller I/O on %s", runtime.GOOS)
	}
	var conns atomic.Int32
	addr := rawServer(t, func(conn net.Conn, hang <-chan struct{}) {
		conns.Add(1)
		br := bufio.NewReader(conn)
		for n := 0; ; n++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if n == 1 {
				return // the second request on a connection: closed unanswered
			}
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	tr := roundTripper(&config{callerIO: true}, nil)
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	url := "http://" + addr + "/"
	do := func(method string) error {
		req, _ := http.NewRequestWithContext(testCtx(t), method, url, strings.NewReader("x"))
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && string(b) != "ok" {
			err = errors.New("body " + string(b))
		}
		return err
	}
	for i := range 2 {
		if err := do(http.MethodGet); err != nil {
			t.Fatalf("GET %d: %v", i, err)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections after two GETs, want 2 (the second sent again on a new one)", n)
	}
	// The next request goes out on the second connection, kept alive.
	if err := do(http.MethodPost); err == nil {
		t.Fatal("POST closed unanswered on a kept-alive connection: sent again")
	}
	if err := do(http.MethodPost); err != nil {
		t.Fatalf("POST on a new connection: %v", err)
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
}

// TestCallerIOCutBody: an answer whose body ends with the connection (no
// Content-Length, not chunked) cut by the end of the request's context
// fails with the context's error, as with net/http's Transport, and is
// not taken for the whole body: the socket shut down by the cancellation
// reads as an end of file.
func TestCallerIOCutBody(t *testing.T) {
	addr := rawServer(t, func(conn net.Conn, hang <-chan struct{}) {
		if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
			return
		}
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"signatures\":[")
		<-hang
	})
	url := "http://" + addr + "/"
	for _, callerIO := range []bool{false, true} {
		if callerIO && !CallerIOSupported {
			continue
		}
		for _, tc := range []struct {
			name string
			want error
			ctx  func() (context.Context, context.CancelFunc)
		}{
			{"cancel", context.Canceled, func() (context.Context, context.CancelFunc) { return context.WithCancel(testCtx(t)) }},
			{"deadline", context.DeadlineExceeded, func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(testCtx(t), 200*time.Millisecond)
			}},
		} {
			t.Run(fmt.Sprintf("callerIO=%v/%s", callerIO, tc.name), func(t *testing.T) {
				tr := roundTripper(&config{callerIO: callerIO}, nil)
				t.Cleanup(tr.CloseIdleConnections)
				ctx, cancel := tc.ctx()
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if tc.want == context.Canceled {
					time.AfterFunc(100*time.Millisecond, cancel)
				}
				b, err := io.ReadAll(resp.Body)
				if !errors.Is(err, tc.want) {
					t.Fatalf("body %q, err = %v, want %v", b, err, tc.want)
				}
			})
		}
	}
}

// TestCallerIOIdleClosed: a kept-alive connection left idle is closed after
// the idle timeout even if no request comes after it, as net/http's
// Transport does: a Client dropped without CloseIdleConnections (the
// module's, at each C_Finalize) must not keep its sockets open for ever.
func TestCallerIOIdleClosed(t *testing.T) {
	if !CallerIOSupported {
		t.Skipf("no caller I/O on %s", runtime.GOOS)
	}
	var open atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	tr := roundTripper(&config{callerIO: true}, nil).(*callerTransport)
	tr.idleFor = 200 * time.Millisecond
	hc := &http.Client{Transport: tr}
	for range 3 {
		resp, err := hc.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if n := open.Load(); n != 1 {
		t.Fatalf("%d connections open after 3 calls, want 1 (kept alive)", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for open.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open 5 s after the idle timeout of %v", open.Load(), tr.idleFor)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// And the transport goes on: a new connection.
	resp, err := hc.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// TestCallerIONoStaleAnswer: bytes a server sends on a kept-alive
// connection after an answer (here a whole second answer, late or at
// once) are never read as the answer to the next request: that would hand
// a caller another request's answer (for signHash, the signatures of
// other hashes).
func TestCallerIONoStaleAnswer(t *testing.T) {
	var late atomic.Bool
	staleSent := make(chan struct{}, 16) // the stale answer is in the client's socket
	addr := rawServer(t, func(conn net.Conn, hang <-chan struct{}) {
		br := bufio.NewReader(conn)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			answer := "HTTP/1.1 200 OK\r\nContent-Length: " + fmt.Sprint(len(req.URL.Path)) + "\r\n\r\n" + req.URL.Path
			stale := "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n/stale"
			if late.Load() {
				io.WriteString(conn, answer)
				time.Sleep(50 * time.Millisecond)
				io.WriteString(conn, stale)
			} else {
				io.WriteString(conn, answer+stale)
			}
			staleSent <- struct{}{}
		}
	})
	base := "http://" + addr
	if !CallerIOSupported {
		t.Skipf("no caller I/O on %s", runtime.GOOS)
	}
	for _, lateStale := range []bool{false, true} {
		t.Run(fmt.Sprintf("late=%v", lateStale), func(t *testing.T) {
			late.Store(lateStale)
			tr := roundTripper(&config{callerIO: true}, nil)
			t.Cleanup(tr.CloseIdleConnections)
			hc := &http.Client{Transport: tr}
			for i := range 4 {
				path := fmt.Sprintf("/req%d", i)
				resp, err := hc.Get(base + path)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(b) != path {
					t.Fatalf("request %s answered %q, %v", path, b, err)
				}
				// The next request goes out once the stale answer has
				// reached this side (a write on loopback is in the
				// receiver's buffer when it returns).
				select {
				case <-staleSent:
				case <-time.After(10 * time.Second):
					t.Fatal("the server did not send its stale answer")
				}
			}
		})
	}
}

// rawServer serves each connection to a listener on 127.0.0.1 with serve,
// on a goroutine of its own, closes the connection when serve returns and
// returns the listener's address. hang is closed when the test ends (a
// serve may wait on it), then the listener.
func rawServer(t *testing.T, serve func(conn net.Conn, hang <-chan struct{})) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hang := make(chan struct{})
	t.Cleanup(func() {
		close(hang)
		ln.Close()
	})
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				serve(conn, hang)
			}()
		}
	}()
	return ln.Addr().String()
}

// lateCtx is a context whose deadline has passed but whose timer has not
// fired yet (Err is still nil).
type lateCtx struct{ context.Context }

func (lateCtx) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }
func (lateCtx) Err() error                  { return nil }

// TestCtxErr: a read ended by the socket's timeout an instant before the
// context's timer fires still reports the context's deadline.
func TestCtxErr(t *testing.T) {
	tests := []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"live", context.Background(), nil},
		{"deadline passed, timer not yet fired", lateCtx{context.Background()}, context.DeadlineExceeded},
		{"cancelled", func() context.Context { c, cancel := context.WithCancel(context.Background()); cancel(); return c }(), context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ctxErr(tc.ctx); got != tc.want {
				t.Fatalf("ctxErr = %v, want %v", got, tc.want)
			}
		})
	}
}
