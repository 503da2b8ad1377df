package cscclient

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
)

// callKind picks the method a bad-server row exercises.
type callKind int

const (
	callInfo callKind = iota
	callList
	callSignHash
	callAuthorize
)

func (k callKind) path() string {
	return [...]string{"info", "credentials/list", "signatures/signHash", "credentials/authorize"}[k]
}

func (k callKind) run(ctx context.Context, c *Client) error {
	var err error
	switch k {
	case callInfo:
		_, err = c.Info(ctx, nil)
	case callList:
		_, err = c.ListCredentials(ctx, nil)
	case callSignHash:
		_, err = c.SignHash(ctx, &csc.SignHashRequest{CredentialID: "c1", SAD: "S", Hashes: []csc.Bytes{testHash},
			SignAlgo: csc.OIDSHA256WithRSA})
	case callAuthorize:
		_, err = c.Authorize(ctx, &csc.AuthorizeRequest{CredentialID: "c1", NumSignatures: 1,
			AuthData: []csc.AuthData{{ID: "PIN", Value: "1234"}}})
	}
	return err
}

// goodBody is a valid 200 answer for each kind.
func (k callKind) goodBody() string {
	switch k {
	case callInfo:
		return `{"specs":"2.0.0.2","name":"x","authType":["basic"],"methods":[]}`
	case callList:
		return `{"credentialIDs":["c1"]}`
	case callSignHash:
		return `{"signatures":["` + stdHash + `"]}`
	default:
		return `{"SAD":"S"}`
	}
}

// TestBadServers: each misbehaving server gives a typed error, quickly,
// without a panic; idempotent calls are retried where allowed, signHash
// and authorize are not.
func TestBadServers(t *testing.T) {
	type step struct {
		status int
		header map[string]string
		body   string
	}
	tests := []struct {
		name      string
		kind      callKind
		steps     []step // answers in order; the last repeats
		handler   http.HandlerFunc
		opts      []Option
		wantErr   []error // nil: success expected
		wantCalls int
		wantWaits []time.Duration // recorded retry waits (nil: not checked)
		maxTime   time.Duration
	}{
		{name: "fail malformed JSON", kind: callInfo,
			steps: []step{{200, nil, `{"specs":"2.0`}}, wantErr: []error{ErrBadResponse}, wantCalls: 1},
		{name: "fail error inside a 200", kind: callAuthorize,
			steps:   []step{{200, nil, `{"error":"invalid_request","error_description":"Invalid PIN"}`}},
			wantErr: []error{ErrBadResponse, ErrWrongPIN}, wantCalls: 1},
		{name: "fail wrong content type", kind: callList,
			steps:   []step{{200, map[string]string{"Content-Type": "text/html"}, `<html>login</html>`}},
			wantErr: []error{ErrBadResponse}, wantCalls: 1},
		{name: "fail JSON array", kind: callList,
			steps: []step{{200, nil, `["c1"]`}}, wantErr: []error{ErrBadResponse}, wantCalls: 1},
		{name: "fail empty 200", kind: callInfo,
			steps: []step{{200, nil, ``}}, wantErr: []error{ErrBadResponse}, wantCalls: 1},
		{name: "fail bad base64 signature", kind: callSignHash,
			steps: []step{{200, nil, `{"signatures":["%%%"]}`}}, wantErr: []error{ErrBadResponse, csc.ErrBase64}, wantCalls: 1},
		{name: "fail signature count", kind: callSignHash,
			steps: []step{{200, nil, `{"signatures":[]}`}}, wantErr: []error{ErrBadResponse}, wantCalls: 1},
		{name: "fail authorize without SAD", kind: callAuthorize,
			steps: []step{{200, nil, `{"expiresIn":3}`}}, wantErr: []error{ErrBadResponse}, wantCalls: 1},
		{name: "fail HTML 502 page", kind: callInfo,
			steps:   []step{{502, map[string]string{"Content-Type": "text/html"}, `<html>Bad Gateway</html>`}},
			wantErr: []error{ErrServer}, wantCalls: 1},
		{name: "fail 10 MB body", kind: callList,
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"credentialIDs":["`)
				chunk := strings.Repeat("a", 1<<16)
				for range 10 << 4 {
					if _, err := io.WriteString(w, chunk); err != nil {
						return
					}
				}
				io.WriteString(w, `"]}`)
			},
			wantErr: []error{ErrResponseTooLarge}, wantCalls: 1},
		{name: "fail slow server past the timeout", kind: callInfo,
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.ReadAll(r.Body)
				select {
				case <-time.After(5 * time.Second):
				case <-r.Context().Done():
				}
			},
			opts:    []Option{WithTimeout(200 * time.Millisecond)},
			wantErr: []error{ErrTransport, ErrTimeout}, wantCalls: 1, maxTime: 2 * time.Second},
		{name: "fail slow body past the timeout", kind: callList,
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.ReadAll(r.Body)
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"credentialIDs":[`)
				w.(http.Flusher).Flush()
				select {
				case <-time.After(5 * time.Second):
				case <-r.Context().Done():
				}
			},
			opts:    []Option{WithTimeout(200 * time.Millisecond)},
			wantErr: []error{ErrTransport, ErrTimeout}, wantCalls: 1, maxTime: 2 * time.Second},
		{name: "fail connection dropped mid-answer, signHash not retried", kind: callSignHash,
			handler: func(w http.ResponseWriter, r *http.Request) {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
			},
			wantErr: []error{ErrTransport}, wantCalls: 1},
		{name: "ok 429 with Retry-After, then success (info retried)", kind: callInfo,
			steps: []step{{429, map[string]string{"Retry-After": "1"}, `{"error":"temporarily_unavailable"}`},
				{200, nil, callInfo.goodBody()}},
			wantCalls: 2, wantWaits: []time.Duration{time.Second}},
		{name: "ok 429 then success (list retried)", kind: callList,
			steps:     []step{{429, map[string]string{"Retry-After": "0"}, ``}, {200, nil, callList.goodBody()}},
			wantCalls: 2},
		{name: "fail 429 on signHash, not retried", kind: callSignHash,
			steps:   []step{{429, map[string]string{"Retry-After": "1"}, ``}, {200, nil, callSignHash.goodBody()}},
			wantErr: []error{ErrRateLimited}, wantCalls: 1},
		{name: "fail 429 asking for too long a wait", kind: callInfo,
			steps:   []step{{429, map[string]string{"Retry-After": "3600"}, ``}, {200, nil, callInfo.goodBody()}},
			wantErr: []error{ErrRateLimited}, wantCalls: 1},
		{name: "ok 503 then success (list retried)", kind: callList,
			steps:     []step{{503, nil, ``}, {503, nil, ``}, {200, nil, callList.goodBody()}},
			wantCalls: 3},
		{name: "fail 503 until attempts run out", kind: callList,
			steps:   []step{{503, nil, `{"error":"temporarily_unavailable","error_description":"maintenance"}`}},
			wantErr: []error{ErrUnavailable}, wantCalls: 4},
		{name: "fail 503 on authorize, not retried", kind: callAuthorize,
			steps:   []step{{503, nil, ``}, {200, nil, callAuthorize.goodBody()}},
			wantErr: []error{ErrUnavailable}, wantCalls: 1},
		{name: "fail 500", kind: callList,
			steps:   []step{{500, nil, `{"error":"server_error"}`}},
			wantErr: []error{ErrServer}, wantCalls: 1},
		{name: "fail 501", kind: callSignHash,
			steps:   []step{{501, nil, ``}},
			wantErr: []error{ErrNotSupported}, wantCalls: 1},
		{name: "fail 302 redirect (method change) not followed", kind: callInfo,
			steps:   []step{{302, map[string]string{"Location": "/elsewhere"}, ``}},
			wantErr: []error{ErrRedirect}, wantCalls: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			h := tc.handler
			if h == nil {
				h = func(w http.ResponseWriter, r *http.Request) {
					n := int(calls.Load()) - 1
					s := tc.steps[min(n, len(tc.steps)-1)]
					w.Header().Set("Content-Type", "application/json")
					for k, v := range s.header {
						w.Header().Set(k, v)
					}
					w.WriteHeader(s.status)
					io.WriteString(w, s.body)
				}
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/"+tc.kind.path()) {
					calls.Add(1)
				}
				h(w, r)
			}))
			t.Cleanup(srv.Close)
			opts := append([]Option{WithTokenSource(StaticToken("AT"))}, tc.opts...)
			c := mustClient(t, srv.URL+"/csc/v2", opts...)
			waits := fastRetry(c)
			start := time.Now()
			err := func() (err error) {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("panic: %v", p)
					}
				}()
				return tc.kind.run(testCtx(t), c)
			}()
			took := time.Since(start)
			t.Logf("err: %v", err)
			if tc.wantErr == nil && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tc.wantErr != nil {
				if err == nil {
					t.Fatal("no error")
				}
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("err %T %v is not *Error", err, err)
				}
				for _, k := range tc.wantErr {
					if !errors.Is(err, k) {
						t.Errorf("err %q is not %v", err, k)
					}
				}
				if len(e.Body) > maxExcerpt+len("…") {
					t.Errorf("body excerpt of %d bytes", len(e.Body))
				}
			}
			if got := int(calls.Load()); got != tc.wantCalls {
				t.Errorf("%d calls, want %d", got, tc.wantCalls)
			}
			if tc.wantWaits != nil && !equalDurations(*waits, tc.wantWaits) {
				t.Errorf("waits %v, want %v", *waits, tc.wantWaits)
			}
			if tc.maxTime > 0 && took > tc.maxTime {
				t.Errorf("took %v", took)
			}
		})
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestContextCancelAborts: cancelling the context aborts a call in flight.
func TestContextCancelAborts(t *testing.T) {
	started := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body) // so the server notices the client going away
		close(started)
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	c := mustClient(t, srv.URL+"/csc/v2", WithTokenSource(StaticToken("AT")))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	start := time.Now()
	_, err := c.SignHash(ctx, &csc.SignHashRequest{CredentialID: "c", SAD: "s", Hashes: []csc.Bytes{testHash}, SignAlgo: csc.OIDSHA256WithRSA})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrTransport) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
}

// TestConnectionRefusedRetried: a refused connection is retried even for
// signHash (nothing was sent).
func TestConnectionRefusedRetried(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, callSignHash.goodBody())
	}))
	t.Cleanup(srv.Close)
	var dials atomic.Int32
	d := &net.Dialer{}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) == 1 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
		}
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	c := mustClient(t, srv.URL+"/csc/v2", WithTokenSource(StaticToken("AT")), func(c *config) { c.transport = tr })
	fastRetry(c)
	if err := callSignHash.run(testCtx(t), c); err != nil {
		t.Fatalf("err = %v", err)
	}
	if dials.Load() != 2 {
		t.Fatalf("%d dials", dials.Load())
	}

	// A port nobody listens on: the error is typed, after MaxAttempts.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c2 := mustClient(t, "http://"+addr+"/csc/v2", WithTokenSource(StaticToken("AT")))
	waits := fastRetry(c2)
	err = callSignHash.run(testCtx(t), c2)
	if !errors.Is(err, ErrTransport) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("err = %v", err)
	}
	if len(*waits) != 3 {
		t.Fatalf("waits %v", *waits)
	}
}

// TestRedirects: same-origin 307 is followed with the token; another origin
// is refused, and the other host sees neither a request nor the token.
func TestRedirects(t *testing.T) {
	var otherHits atomic.Int32
	var otherAuth atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		otherAuth.Store(r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, callList.goodBody())
	}))
	t.Cleanup(other.Close)
	var sawAuth atomic.Value
	same := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/csc/v2/credentials/list":
			http.Redirect(w, r, "/moved/csc/v2/credentials/list", http.StatusPermanentRedirect)
		case "/moved/csc/v2/credentials/list":
			sawAuth.Store(r.Header.Get("Authorization"))
			b, _ := io.ReadAll(r.Body)
			if string(b) != "{}" {
				t.Errorf("body after redirect: %q", b)
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, callList.goodBody())
		}
	}))
	t.Cleanup(same.Close)
	cross := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(cross.Close)

	c := mustClient(t, same.URL+"/csc/v2", WithTokenSource(StaticToken("AT")))
	if _, err := c.ListCredentials(testCtx(t), nil); err != nil {
		t.Fatalf("same-origin 308: %v", err)
	}
	if sawAuth.Load() != "Bearer AT" {
		t.Fatalf("same origin got Authorization %v", sawAuth.Load())
	}

	c = mustClient(t, cross.URL+"/csc/v2", WithTokenSource(StaticToken("AT")))
	_, err := c.ListCredentials(testCtx(t), nil)
	if !errors.Is(err, ErrRedirect) {
		t.Fatalf("cross-origin redirect: err = %v", err)
	}
	if otherHits.Load() != 0 {
		t.Fatalf("the other host was called %d times (Authorization %v)", otherHits.Load(), otherAuth.Load())
	}
}

// TestTransportOrigin: the Bearer goes only to the base URL's origin.
func TestTransportOrigin(t *testing.T) {
	var got []string
	var mu sync.Mutex
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		got = append(got, r.URL.Host+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}}, nil
	})
	origin, _ := http.NewRequest("GET", "https://rssp.example/csc/v2", nil)
	tr := &Transport{Source: StaticToken("AT"), Base: base, Origin: origin.URL}
	for _, u := range []string{"https://rssp.example/csc/v2/info", "https://evil.example/x", "http://rssp.example/x"} {
		req, _ := http.NewRequest("POST", u, nil)
		if _, err := tr.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"rssp.example Bearer AT", "evil.example ", "rssp.example "}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d: %q, want %q", i, got[i], want[i])
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestTLS: trust, CA file, pinning, HTTP/1.1 although the server offers
// HTTP/2.
func TestTLS(t *testing.T) {
	var proto atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(int32(r.ProtoMajor))
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, callInfo.goodBody())
	}))
	srv.EnableHTTP2 = true
	var handshakeErrors atomic.Int32
	srv.Config.ErrorLog = log.New(writerFunc(func(p []byte) (int, error) {
		handshakeErrors.Add(1)
		return len(p), nil
	}), "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cert := srv.Certificate()
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	pin := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	parsedPin, err := ParseSPKIPin(SPKIPin(cert))
	if err != nil || string(parsedPin) != string(pin[:]) {
		t.Fatalf("ParseSPKIPin(SPKIPin) = %x, %v", parsedPin, err)
	}
	wrongPin := sha256.Sum256([]byte("other"))
	url := srv.URL + "/csc/v2" // the certificate names 127.0.0.1

	tests := []struct {
		name    string
		opts    []Option
		wantErr []error
	}{
		{"fail untrusted certificate", nil, []error{ErrTransport, ErrTLS}},
		{"ok root pool", []Option{WithRootCAs(pool)}, nil},
		{"ok CA file", []Option{WithCAFile(caFile)}, nil},
		{"ok pinned", []Option{WithRootCAs(pool), WithPinnedSPKI(pin[:])}, nil},
		{"fail pin mismatch", []Option{WithRootCAs(pool), WithPinnedSPKI(wrongPin[:])}, []error{ErrTLS, ErrPinMismatch}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			proto.Store(0)
			c := mustClient(t, url, tc.opts...)
			fastRetry(c)
			_, err := c.Info(testCtx(t), nil)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if proto.Load() != 1 {
					t.Fatalf("HTTP/%d, want HTTP/1.1", proto.Load())
				}
				return
			}
			for _, k := range tc.wantErr {
				if !errors.Is(err, k) {
					t.Errorf("err %v is not %v", err, k)
				}
			}
		})
	}
	if _, err := ParseSPKIPin("nonsense"); err == nil {
		t.Error("ParseSPKIPin accepted nonsense")
	}
}

// TestKeepAlive: 64 parallel signers over HTTP/1.1 reuse their connections.
func TestKeepAlive(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, callSignHash.goodBody())
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := mustClient(t, srv.URL+"/csc/v2", WithTokenSource(StaticToken("AT")))
	ctx := testCtx(t)
	for round := range 3 {
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := callSignHash.run(ctx, c); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	if n := conns.Load(); n > 64 {
		t.Fatalf("%d connections for 3×64 parallel calls, want ≤ 64", n)
	}
}
