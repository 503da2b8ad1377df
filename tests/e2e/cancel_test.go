package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/rssptest"
)

// holdProxy is a TLS reverse proxy on 127.0.0.1 in front of an RSSP.
// While hold is set it reads each signatures/signHash request whole and
// never answers it (the module's thread then waits in read(2) for the
// answer); everything else, and signHash while hold is clear, goes to the
// RSSP.
type holdProxy struct {
	*server // URL and CAFile are the proxy's
	hold    atomic.Bool
	// holdBody: a held signHash gets the header of an answer and the
	// start of its body, and then nothing.
	holdBody atomic.Bool
	// holdAuthorize: credentials/authorize requests for this credential
	// are held instead.
	holdAuthorize atomic.Pointer[string]
	// stall: new connections are accepted and never get the server's
	// side of the TLS handshake (held too).
	stall atomic.Bool
	ts    *httptest.Server
	held  chan *heldRequest
	stop  chan struct{}
}

// heldRequest is a signHash request the proxy holds.
type heldRequest struct {
	gone chan struct{} // closed when the client has closed the connection
	port int           // the client's port
}

func startHoldProxy(t *testing.T, rs *rssptest.Server) *holdProxy {
	t.Helper()
	target, err := url.Parse("https://" + rs.Addr())
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: rs.CAPool, MinVersion: tls.VersionTLS12}}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport: tr,
	}
	p := &holdProxy{held: make(chan *heldRequest, 16), stop: make(chan struct{})}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		held := p.hold.Load() && strings.HasSuffix(r.URL.Path, "/signatures/signHash")
		if cred := p.holdAuthorize.Load(); cred != nil && strings.HasSuffix(r.URL.Path, "/credentials/authorize") {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			held = bytes.Contains(body, []byte(`"`+*cred+`"`))
		}
		if !held {
			rp.ServeHTTP(w, r)
			return
		}
		// The whole request read: the server's connection now reads in
		// the background and cancels r's context when the client closes
		// the connection.
		_, _ = io.Copy(io.Discard, r.Body)
		if p.holdBody.Load() {
			// The answer's header and part of its body; never the rest.
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "4096")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{"signatures":["`)
			http.NewResponseController(w).Flush()
		}
		h := &heldRequest{gone: make(chan struct{})}
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			h.port = int(ap.Port())
		}
		p.held <- h
		select {
		case <-r.Context().Done():
			close(h.gone)
		case <-p.stop:
			return
		}
		// The server's side stays open until the test ends: were it
		// closed, the client's socket would leave the kernel's table
		// (TIME_WAIT) even with its descriptor leaked, and holdsSocket
		// could not see the leak.
		<-p.stop
	}))
	ts.Listener = &stallListener{Listener: ts.Listener, p: p}
	ts.StartTLS() // HTTP/1.1 only, as the module speaks
	p.ts = ts
	caFile := t.TempDir() + "/proxy-ca.pem"
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(p.stop)
		ts.CloseClientConnections()
		ts.Close()
		tr.CloseIdleConnections()
	})
	p.server = &server{URL: ts.URL + "/csc/v2", CAFile: caFile, Svc: rs.App.Service,
		DB: rs.App.Config.Path(rs.App.Config.Store.Path)}
	return p
}

// stallListener hands the proxy's server its connections, but while
// stall is set keeps them: the client's ClientHello is read and never
// answered.
type stallListener struct {
	net.Listener
	p *holdProxy
}

func (l *stallListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || !l.p.stall.Load() {
			return c, err
		}
		h := &heldRequest{gone: make(chan struct{}), port: c.RemoteAddr().(*net.TCPAddr).Port}
		go func() {
			_, _ = io.Copy(io.Discard, c) // until the client closes or shuts down
			close(h.gone)
			<-l.p.stop
			c.Close()
		}()
		l.p.held <- h
	}
}

// stallHandshakes makes the proxy's server close the connections it has
// (the module's kept-alive ones among them) and stall the handshake of
// new ones, or stop stalling.
func (p *holdProxy) stallHandshakes(on bool) {
	p.stall.Store(on)
	if on {
		p.ts.CloseClientConnections()
	}
}

// waitHeld returns the next signHash request the proxy holds, sent by
// the host of s (which has a descriptor of its connection: what
// closedWithin checks can be seen).
func (p *holdProxy) waitHeld(t *testing.T, s *session) *heldRequest {
	t.Helper()
	select {
	case h := <-p.held:
		// The module's thread is past the write of the request; give it a
		// moment to block in the read of the answer.
		time.Sleep(100 * time.Millisecond)
		if held, err := holdsSocket(s.cmd.Process.Pid, h.port); err != nil || !held {
			t.Fatalf("the host has no descriptor of the held signHash connection (port %d): %v", h.port, err)
		}
		return h
	case <-time.After(20 * time.Second):
		t.Fatal("no signHash request reached the proxy within 20s")
	}
	return nil
}

// closedWithin fails the test unless, within limit, the client shut the
// held request's connection down and the host process s no longer has a
// descriptor of it: the module ended the read rather than leaving a
// thread or a socket behind on it.
func (h *heldRequest) closedWithin(t *testing.T, s *session, limit time.Duration, what string) {
	t.Helper()
	deadline := time.After(limit)
	select {
	case <-h.gone:
	case <-deadline:
		t.Errorf("%s: the held signHash connection was still open %v after C_Sign returned", what, limit)
		return
	}
	for {
		held, err := holdsSocket(s.cmd.Process.Pid, h.port)
		if err != nil {
			t.Fatal(err)
		}
		if !held {
			return
		}
		select {
		case <-deadline:
			t.Errorf("%s: the host still has the descriptor of the held connection %v after C_Sign returned", what, limit)
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// holdsSocket reports whether process pid has a descriptor of a TCP
// socket whose local port is port (/proc/PID/net/tcp{,6} and /proc/PID/fd).
func holdsSocket(pid, port int) (bool, error) {
	if port == 0 {
		return false, errors.New("no client port for the held request")
	}
	inodes := map[string]bool{}
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			return false, err
		}
		for line := range strings.Lines(string(b)) {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fs := strings.Fields(line)
			if len(fs) < 10 || fs[9] == "0" {
				continue
			}
			_, hexPort, ok := strings.Cut(fs[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && int(p) == port {
				inodes[fs[9]] = true
			}
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return false, err
	}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") && inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
			return true, nil
		}
	}
	return false, nil
}

// signWait waits for the C_Sign of sign-start and returns its CK_RV name
// and the milliseconds from the cancel or finalize to its return.
func (s *session) signWait(limit time.Duration) (string, time.Duration) {
	s.t.Helper()
	f, _ := s.call("sign-wait", limit)
	if len(f) < 2 {
		s.t.Fatalf("sign-wait: %q", f)
	}
	ms, err := strconv.Atoi(f[1])
	if err != nil {
		s.t.Fatalf("sign-wait: %q", f)
	}
	return f[0], time.Duration(ms) * time.Millisecond
}

// quitWithin sends quit and fails the test unless the host exits within
// limit.
func (s *session) quitWithin(limit time.Duration) {
	s.t.Helper()
	start := time.Now()
	if _, err := io.WriteString(s.in, "quit\n"); err != nil {
		s.t.Fatal(err)
	}
	for {
		select {
		case _, ok := <-s.lines:
			if ok {
				continue
			}
			if d := time.Since(start); d > limit {
				s.t.Errorf("the host took %v to exit, want within %v", d, limit)
			}
		case <-time.After(limit + 10*time.Second):
			s.t.Fatalf("the host did not exit within %v of quit", limit+10*time.Second)
		}
		return
	}
}

// TestCancelWhileSigning drives the shipped library from a C host against
// the real RSSP behind a proxy that takes signHash requests and never
// answers them: the module's CSC calls run on the host's thread over a
// blocking socket (cscclient.WithCallerIO), and C_SessionCancel,
// C_Finalize and the configured timeout must each end a C_Sign blocked in
// read(2) on it, promptly, with the CK_RV docs/mapping.md and cgo/doc.go
// name, shutting the connection down.
func TestCancelWhileSigning(t *testing.T) {
	need(t, "gcc", "p11-kit-1")
	rs := rssptest.Start(t, rssptest.Options{Backend: rssptest.Soft})
	srv := &server{URL: rs.URL, CAFile: rs.Dir + "/tls-ca.pem", Svc: rs.App.Service}
	creds := enrol(t, srv, user, password)
	px := startHoldProxy(t, rs)
	e := newEnv(t)
	// A timeout far beyond what "promptly" allows: a cancellation that
	// waited for the socket's SO_RCVTIMEO would fail. Prompt is measured in
	// milliseconds here; the allowance is for a CI machine under the load
	// of the other test packages.
	const long = 20 * time.Second
	const prompt = 4 * time.Second
	e.useConfig(t, serviceTOMLTimeout(tokenLabel, px.server, user, long))
	e.login(t, password)
	doc := func(what string) string { return hex.EncodeToString([]byte(what)) }

	// start initializes the library in s's host, opens a session on slot 0
	// and logs in.
	start := func(s *session) {
		s.want("init", "CKR_OK")
		s.want("open 0", "CKR_OK")
		s.want("login "+pin, "CKR_OK")
	}
	open := func(t *testing.T) *session {
		t.Helper()
		s := e.session(t)
		start(s)
		return s
	}

	t.Run("C_SessionCancel", func(t *testing.T) {
		s := open(t)
		cert := s.cert(labelEC)
		s.signVerified("ECDSA-SHA256", labelEC, cert, []byte("before")) // a kept-alive connection
		px.hold.Store(true)
		defer px.hold.Store(false)
		// Rounds 0 and 1: waiting for the answer; round 2: for the rest
		// of its body.
		for i := range 3 {
			px.holdBody.Store(i == 2)
			s.want("sign-start ECDSA-SHA256 "+doc("cancelled")+" "+labelEC, "CKR_OK")
			h := px.waitHeld(t, s)
			if f, _ := s.call("cancel", 10*time.Second); f[0] != "CKR_OK" {
				t.Fatalf("C_SessionCancel(CKF_SIGN) = %s", f[0])
			}
			rv, took := s.signWait(long + 10*time.Second)
			t.Logf("round %d: C_Sign returned %v after C_SessionCancel", i, took)
			if rv != "CKR_FUNCTION_CANCELED" {
				t.Errorf("round %d: C_Sign = %s after C_SessionCancel, want CKR_FUNCTION_CANCELED", i, rv)
			}
			if took > prompt {
				t.Errorf("round %d: C_Sign returned %v after C_SessionCancel, want within %v (timeout %v)", i, took, prompt, long)
			}
			h.closedWithin(t, s, prompt, "C_SessionCancel")
		}
		// The session signs again once the service answers.
		px.hold.Store(false)
		px.holdBody.Store(false)
		s.signVerified("ECDSA-SHA256", labelEC, cert, []byte("after the cancellations"))
		s.want("finalize", "CKR_OK")
	})

	t.Run("C_Finalize", func(t *testing.T) {
		s := open(t)
		cert := s.cert(labelEC)
		px.hold.Store(true)
		defer px.hold.Store(false)
		s.want("sign-start ECDSA-SHA256 "+doc("finalized")+" "+labelEC, "CKR_OK")
		h := px.waitHeld(t, s)
		f, took := s.call("finalize", 10*time.Second)
		if f[0] != "CKR_OK" || took > prompt {
			t.Errorf("C_Finalize = %s after %v while C_Sign waits, want CKR_OK within %v", f[0], took, prompt)
		}
		rv, took := s.signWait(long + 10*time.Second)
		t.Logf("C_Sign returned %v after C_Finalize began", took)
		if rv != "CKR_CRYPTOKI_NOT_INITIALIZED" {
			t.Errorf("C_Sign = %s after C_Finalize, want CKR_CRYPTOKI_NOT_INITIALIZED", rv)
		}
		if took > prompt {
			t.Errorf("C_Sign returned %v after C_Finalize began, want within %v (timeout %v)", took, prompt, long)
		}
		h.closedWithin(t, s, prompt, "C_Finalize")
		// The library initializes and signs again.
		px.hold.Store(false)
		start(s)
		s.signVerified("ECDSA-SHA256", labelEC, cert, []byte("after C_Finalize"))
		// And a C_Finalize with a C_Sign waiting leaves nothing that
		// holds the process: it exits at once.
		px.hold.Store(true)
		s.want("sign-start ECDSA-SHA256 "+doc("finalized again")+" "+labelEC, "CKR_OK")
		h = px.waitHeld(t, s)
		s.want("finalize", "CKR_OK")
		if rv, _ := s.signWait(long + 10*time.Second); rv != "CKR_CRYPTOKI_NOT_INITIALIZED" {
			t.Errorf("second C_Sign = %s after C_Finalize, want CKR_CRYPTOKI_NOT_INITIALIZED", rv)
		}
		h.closedWithin(t, s, prompt, "second C_Finalize")
		s.quitWithin(3 * time.Second)
	})

	t.Run("C_CloseSession", func(t *testing.T) {
		s := open(t)
		cert := s.cert(labelEC)
		s.signVerified("ECDSA-SHA256", labelEC, cert, []byte("before")) // after the background pre-authorization
		px.hold.Store(true)
		defer px.hold.Store(false)
		s.want("sign-start ECDSA-SHA256 "+doc("closed")+" "+labelEC, "CKR_OK")
		h := px.waitHeld(t, s)
		if f, took := s.call("close", 10*time.Second); f[0] != "CKR_OK" || took > prompt {
			t.Errorf("C_CloseSession = %s after %v while C_Sign waits, want CKR_OK within %v", f[0], took, prompt)
		}
		rv, took := s.signWait(long + 10*time.Second)
		t.Logf("C_Sign returned %v after C_CloseSession", took)
		if rv != "CKR_SESSION_CLOSED" || took > prompt {
			t.Errorf("C_Sign = %s %v after C_CloseSession, want CKR_SESSION_CLOSED within %v", rv, took, prompt)
		}
		h.closedWithin(t, s, prompt, "C_CloseSession")
		// A host that exits while a C_Sign waits, without C_Finalize
		// (as browsers do), exits at once.
		s.want("open 0", "CKR_OK")
		if f, _ := s.call("login "+pin, time.Minute); f[0] != "CKR_OK" && f[0] != "CKR_USER_ALREADY_LOGGED_IN" {
			t.Fatalf("C_Login = %s", f[0])
		}
		s.want("sign-start ECDSA-SHA256 "+doc("at exit")+" "+labelEC, "CKR_OK")
		px.waitHeld(t, s)
		s.quitWithin(3 * time.Second)
	})

	t.Run("handshake", func(t *testing.T) {
		// A new connection whose TLS handshake the server never answers.
		s := open(t)
		cert := s.cert(labelEC)
		// After the background pre-authorization of C_Login, which this
		// signature waits for: the next connection is the signature's.
		s.signVerified("ECDSA-SHA256", labelEC, cert, []byte("before"))
		px.stallHandshakes(true)
		defer px.stallHandshakes(false)
		s.want("sign-start ECDSA-SHA256 "+doc("cancelled in the handshake")+" "+labelEC, "CKR_OK")
		h := px.waitHeld(t, s)
		if f, _ := s.call("cancel", 10*time.Second); f[0] != "CKR_OK" {
			t.Fatalf("C_SessionCancel(CKF_SIGN) = %s", f[0])
		}
		rv, took := s.signWait(long + 10*time.Second)
		t.Logf("C_Sign returned %v after C_SessionCancel", took)
		if rv != "CKR_FUNCTION_CANCELED" || took > prompt {
			t.Errorf("C_Sign = %s %v after C_SessionCancel in the TLS handshake, want CKR_FUNCTION_CANCELED within %v", rv, took, prompt)
		}
		h.closedWithin(t, s, prompt, "C_SessionCancel in the handshake")
		s.want("sign-start ECDSA-SHA256 "+doc("finalized in the handshake")+" "+labelEC, "CKR_OK")
		h = px.waitHeld(t, s)
		if f, took := s.call("finalize", 10*time.Second); f[0] != "CKR_OK" || took > prompt {
			t.Errorf("C_Finalize = %s after %v while C_Sign waits in the TLS handshake, want CKR_OK within %v", f[0], took, prompt)
		}
		rv, took = s.signWait(long + 10*time.Second)
		if rv != "CKR_CRYPTOKI_NOT_INITIALIZED" || took > prompt {
			t.Errorf("C_Sign = %s %v after C_Finalize in the TLS handshake, want CKR_CRYPTOKI_NOT_INITIALIZED within %v", rv, took, prompt)
		}
		h.closedWithin(t, s, prompt, "C_Finalize in the handshake")
		px.stallHandshakes(false)
		start(s)
		s.signVerified("ECDSA-SHA256", labelEC, cert, []byte("after the stalled handshakes"))
		s.want("finalize", "CKR_OK")
	})

	t.Run("pre-authorization", func(t *testing.T) {
		// C_Login authorizes the first SCAL1 credential itself and the
		// others in the background; a signature with one of those waits
		// for its authorization, here one the service never answers.
		// (The service lists credentials in the order enrol made them:
		// the RSA one first, authorized by C_Login, then the EC one.)
		s := e.session(t)
		s.want("init", "CKR_OK")
		s.want("open 0", "CKR_OK")
		cert := s.cert(labelEC)
		ec := creds[labelEC]
		px.holdAuthorize.Store(&ec)
		defer px.holdAuthorize.Store(nil)
		s.want("login "+pin, "CKR_OK")
		h := px.waitHeld(t, s)
		s.want("sign-start ECDSA-SHA256 "+doc("cancelled waiting for the pre-authorization")+" "+labelEC, "CKR_OK")
		time.Sleep(200 * time.Millisecond) // in C_Sign, waiting
		if f, _ := s.call("cancel", 10*time.Second); f[0] != "CKR_OK" {
			t.Fatalf("C_SessionCancel(CKF_SIGN) = %s", f[0])
		}
		rv, took := s.signWait(long + 10*time.Second)
		t.Logf("C_Sign returned %v after C_SessionCancel", took)
		if rv != "CKR_FUNCTION_CANCELED" || took > prompt {
			t.Errorf("C_Sign = %s %v after C_SessionCancel while waiting for the pre-authorization, want CKR_FUNCTION_CANCELED within %v", rv, took, prompt)
		}
		// C_Finalize ends the background pre-authorization.
		s.want("finalize", "CKR_OK")
		h.closedWithin(t, s, prompt, "C_Finalize with a pre-authorization under way")
		px.holdAuthorize.Store(nil)
		start(s)
		s.signVerified("ECDSA-SHA256", labelEC, cert, []byte("after the pre-authorization"))
		s.want("finalize", "CKR_OK")
	})

	t.Run("timeout", func(t *testing.T) {
		// The configured timeout (2 s) ends a signature whose signHash is
		// never answered: CKR_DEVICE_ERROR (docs/mapping.md: "a timeout"),
		// in about that time.
		e.useConfig(t, serviceTOMLTimeout(tokenLabel, px.server, user, timeout))
		s := open(t)
		cert := s.cert(labelEC)
		px.hold.Store(true)
		defer px.hold.Store(false)
		for i := range 3 { // round 2: the body never ends
			px.holdBody.Store(i == 2)
			rv, _, took := s.signIn("ECDSA-SHA256", labelEC, []byte("timed out"))
			t.Logf("round %d: C_Sign = %s after %v", i, rv, took)
			if rv != "CKR_DEVICE_ERROR" {
				t.Errorf("round %d: C_Sign = %s with signHash unanswered, want CKR_DEVICE_ERROR", i, rv)
			}
			if took < timeout-300*time.Millisecond || took > timeout+1500*time.Millisecond {
				t.Errorf("round %d: C_Sign answered after %v, want about the timeout %v", i, took, timeout)
			}
			select {
			case h := <-px.held:
				h.closedWithin(t, s, prompt, "timeout")
			default:
				t.Errorf("round %d: no signHash request was held", i)
			}
		}
		px.hold.Store(false)
		px.holdBody.Store(false)
		s.signVerified("ECDSA-SHA256", labelEC, cert, []byte("after the timeouts"))
		s.want("finalize", "CKR_OK")
	})
}
