package cscclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/csctoken/csctoken/csc"
)

// How a test node behaves.
const (
	nodeOK       = iota // answers the method's body
	nodeDown            // listener closed: connection refused
	nodeReset           // reads the request, then closes the connection without answering
	nodeHang            // reads the request, then waits until the client gives up
	node502             // 502 from a balancer in front of it
	node503             // 503 with a CSC error body
	nodeSADUsed         // 400 invalid_request: the SAD was used up
	nodeWrongPIN        // 400 invalid_request: wrong PIN
	nodeCut             // 200 and part of the body, then the connection closes (the node died mid-answer)
)

// testNode is one node of a service, its behaviour switchable.
type testNode struct {
	srv  *httptest.Server
	mode atomic.Int32
	hits atomic.Int32 // requests received
	auth atomic.Value // last Authorization header
}

var okBodies = map[string]string{
	"info":                          `{"specs":"2.0.0.2","name":"n","logo":"","region":"IT","lang":"en","description":"d","authType":["basic"],"methods":["signatures/signHash"]}`,
	"credentials/list":              `{"credentialIDs":["c1"]}`,
	"credentials/authorize":         `{"SAD":"S-new"}`,
	"signatures/signHash":           `{"signatures":["AQID"]}`,
	"auth/login":                    `{"access_token":"AT","expires_in":3600}`,
	"credentials/extendTransaction": `{"SAD":"S2"}`,
}

func newTestNode(t *testing.T, mode int) *testNode {
	t.Helper()
	n := &testNode{}
	n.mode.Store(int32(mode))
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		n.hits.Add(1)
		n.auth.Store(r.Header.Get("Authorization"))
		method := strings.TrimPrefix(r.URL.Path, "/csc/v2/")
		w.Header().Set("Content-Type", "application/json")
		switch n.mode.Load() {
		case nodeReset:
			hj, ok := w.(http.Hijacker)
			if !ok {
				t.Error("no hijacker")
				return
			}
			c, _, err := hj.Hijack()
			if err == nil {
				c.Close()
			}
		case nodeCut:
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, `{"signa`)
			w.(http.Flusher).Flush()
			hj, ok := w.(http.Hijacker)
			if !ok {
				t.Error("no hijacker")
				return
			}
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
			}
		case nodeHang:
			<-r.Context().Done()
		case node502:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "<html>502 Bad Gateway</html>")
		case node503:
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":"temporarily_unavailable","error_description":"not ready"}`)
		case nodeSADUsed:
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":"invalid_request","error_description":"Invalid SAD: used up"}`)
		case nodeWrongPIN:
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":"invalid_request","error_description":"Wrong PIN: 4 attempts left"}`)
		default:
			io.WriteString(w, okBodies[method])
		}
	}))
	if mode == nodeDown {
		n.srv.Close()
	} else {
		t.Cleanup(n.srv.Close)
	}
	return n
}

func (n *testNode) url() string { return n.srv.URL + "/csc/v2" }

// nodeClient is a Client over the nodes, in order, with a clock the test
// moves and retries that do not wait.
func nodeClient(t *testing.T, nodes ...*testNode) (*Client, *clock) {
	t.Helper()
	var more []string
	for _, n := range nodes[1:] {
		more = append(more, n.url())
	}
	c := mustClient(t, nodes[0].url(), WithFailoverURLs(more...), WithTokenSource(StaticToken("AT")),
		WithFailoverPolicy(FailoverPolicy{MinBackoff: 10 * time.Second, MaxBackoff: 40 * time.Second}))
	clk := &clock{t: time.Unix(1e9, 0)}
	c.now = clk.now
	fastRetry(c)
	return c, clk
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func signHashCall(ctx context.Context, c *Client) error {
	_, err := c.SignHash(ctx, &csc.SignHashRequest{CredentialID: "c1", SAD: "S1", Hashes: []csc.Bytes{testHash},
		HashAlgorithmOID: csc.OIDSHA256, SignAlgo: csc.OIDRSA})
	return err
}

func authorizeCall(ctx context.Context, c *Client) error {
	_, err := c.Authorize(ctx, &csc.AuthorizeRequest{CredentialID: "c1", NumSignatures: 1, AuthData: []csc.AuthData{{ID: "PIN", Value: "123456"}}})
	return err
}

func listCall(ctx context.Context, c *Client) error {
	_, err := c.ListCredentials(ctx, &csc.CredentialsListRequest{})
	return err
}

func loginCall(ctx context.Context, c *Client) error {
	_, err := c.Login(ctx, "alice", "pw", nil)
	return err
}

func TestFailover(t *testing.T) {
	type call func(context.Context, *Client) error
	tests := []struct {
		name     string
		call     call
		a, b     int   // modes of the first and second node
		wantErr  error // nil: success
		notErr   error // the error must not be this
		wantHits [2]int32
	}{
		{name: "ok signHash: first node down (nothing sent), second signs", call: signHashCall, a: nodeDown, b: nodeOK, wantHits: [2]int32{0, 1}},
		{name: "ok authorize: first node down (nothing sent), second authorizes", call: authorizeCall, a: nodeDown, b: nodeOK, wantHits: [2]int32{0, 1}},
		{name: "ok login: first node down", call: loginCall, a: nodeDown, b: nodeOK, wantHits: [2]int32{0, 1}},
		{name: "ok list: 503 on the first", call: listCall, a: node503, b: nodeOK, wantHits: [2]int32{1, 1}},
		{name: "ok list: reset on the first", call: listCall, a: nodeReset, b: nodeOK, wantHits: [2]int32{1, 1}},
		{name: "ok list: 502 from the balancer of the first", call: listCall, a: node502, b: nodeOK, wantHits: [2]int32{1, 1}},
		{name: "ok signHash: reset after the first received it, the second signs with the same SAD", call: signHashCall, a: nodeReset, b: nodeOK, wantHits: [2]int32{1, 1}},
		{name: "ok signHash: the first died mid-answer (200, body cut), the second signs with the same SAD", call: signHashCall, a: nodeCut, b: nodeOK, wantHits: [2]int32{1, 1}},
		{name: "ok list: the first died mid-answer", call: listCall, a: nodeCut, b: nodeOK, wantHits: [2]int32{1, 1}},
		{name: "ok signHash: 504 on the first", call: signHashCall, a: node502, b: nodeOK, wantHits: [2]int32{1, 1}},
		{name: "fail signHash: the first may have consumed the SAD, the second refuses it", call: signHashCall, a: nodeReset, b: nodeSADUsed,
			wantErr: ErrOutcomeUnknown, wantHits: [2]int32{1, 1}},
		{name: "fail authorize: reset after sending is not repeated (a wrong PIN would count twice)", call: authorizeCall, a: nodeReset, b: nodeOK,
			wantErr: ErrTransport, notErr: ErrOutcomeUnknown, wantHits: [2]int32{1, 0}},
		{name: "fail login: 503 after sending is not repeated", call: loginCall, a: node503, b: nodeOK,
			wantErr: ErrUnavailable, wantHits: [2]int32{1, 0}},
		{name: "fail authorize: a wrong PIN is an answer, not a node failure", call: authorizeCall, a: nodeWrongPIN, b: nodeOK,
			wantErr: ErrWrongPIN, notErr: ErrOutcomeUnknown, wantHits: [2]int32{1, 0}},
		{name: "fail signHash: a refused SAD on the first is not sent to the second", call: signHashCall, a: nodeSADUsed, b: nodeOK,
			wantErr: ErrInvalidSAD, notErr: ErrOutcomeUnknown, wantHits: [2]int32{1, 0}},
		{name: "fail signHash: both down", call: signHashCall, a: nodeDown, b: nodeDown,
			wantErr: ErrTransport, notErr: ErrOutcomeUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newTestNode(t, tc.a), newTestNode(t, tc.b)
			c, _ := nodeClient(t, a, b)
			err := tc.call(testCtx(t), c)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("err = %v", err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			case tc.notErr != nil && errors.Is(err, tc.notErr):
				t.Fatalf("err = %v, must not be %v", err, tc.notErr)
			}
			if tc.wantErr == ErrOutcomeUnknown && !errors.Is(err, ErrInvalidSAD) {
				t.Errorf("err = %v, want the second node's answer (invalid SAD) too", err)
			}
			if got := [2]int32{a.hits.Load(), b.hits.Load()}; got != tc.wantHits {
				t.Errorf("hits = %v, want %v", got, tc.wantHits)
			}
		})
	}
}

// A failed node is avoided until its backoff ends, then tried again; an
// answer makes it healthy.
func TestFailoverBackoff(t *testing.T) {
	a, b := newTestNode(t, node503), newTestNode(t, nodeOK)
	c, clk := nodeClient(t, a, b)
	ctx := testCtx(t)
	hits := func() [2]int32 { return [2]int32{a.hits.Load(), b.hits.Load()} }

	if err := listCall(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got := hits(); got != [2]int32{1, 1} {
		t.Fatalf("first call: hits %v", got)
	}
	// Avoided for 10s: the next calls go straight to b.
	clk.add(9 * time.Second)
	for range 3 {
		if err := listCall(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if got := hits(); got != [2]int32{1, 4} {
		t.Fatalf("within the backoff: hits %v, want a avoided", got)
	}
	// Backoff over, still failing: tried once, avoided twice as long.
	clk.add(2 * time.Second)
	if err := listCall(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got := hits(); got != [2]int32{2, 5} {
		t.Fatalf("after the backoff: hits %v", got)
	}
	clk.add(15 * time.Second)
	if err := listCall(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got := hits(); got != [2]int32{2, 6} {
		t.Fatalf("second backoff (20s) not respected: hits %v", got)
	}
	// a recovers: after its backoff it serves again, as the first node.
	a.mode.Store(nodeOK)
	clk.add(6 * time.Second)
	for range 2 {
		if err := listCall(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if got := hits(); got != [2]int32{4, 6} {
		t.Fatalf("recovered: hits %v, want a to serve again", got)
	}

	// Every node backing off: the one back soonest is tried, and the call
	// still succeeds when it answers.
	a.mode.Store(node503)
	b.mode.Store(node503)
	if err := listCall(ctx, c); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("both 503: err = %v", err)
	}
	b.mode.Store(nodeOK)
	before := hits()
	if err := listCall(ctx, c); err != nil {
		t.Fatalf("both backing off, b answering: %v", err)
	}
	if got := hits(); got[1] == before[1] {
		t.Fatalf("b not tried while every node backs off: %v -> %v", before, got)
	}
}

// A node that takes the request and never answers leaves time for the
// next; the call never takes longer than its context, even when every node
// hangs.
func TestFailoverTimeout(t *testing.T) {
	tests := []struct {
		name    string
		a, b    int
		call    func(context.Context, *Client) error
		wantErr error
		minTook time.Duration
	}{
		{name: "ok list: first hangs", a: nodeHang, b: nodeOK, call: listCall},
		{name: "ok signHash: first hangs, second signs", a: nodeHang, b: nodeOK, call: signHashCall},
		{name: "fail list: both hang", a: nodeHang, b: nodeHang, call: listCall, wantErr: ErrTimeout},
		{name: "fail signHash: both hang", a: nodeHang, b: nodeHang, call: signHashCall, wantErr: ErrTimeout},
		{name: "fail authorize: first hangs, not repeated (and not cut short)", a: nodeHang, b: nodeOK, call: authorizeCall, wantErr: ErrTimeout, minTook: 1400 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newTestNode(t, tc.a), newTestNode(t, tc.b)
			c, _ := nodeClient(t, a, b)
			const budget = 1500 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), budget)
			defer cancel()
			start := time.Now()
			err := tc.call(ctx, c)
			took := time.Since(start)
			if tc.wantErr == nil && err != nil {
				t.Fatalf("err = %v", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if took > budget+300*time.Millisecond || took < tc.minTook {
				t.Fatalf("took %v, budget %v", took, budget)
			}
		})
	}
}

// The service token goes to every node of the service, and nowhere else;
// a failover URL must speak the same version.
func TestFailoverURLs(t *testing.T) {
	a, b := newTestNode(t, nodeDown), newTestNode(t, nodeOK)
	c, _ := nodeClient(t, a, b)
	if err := listCall(testCtx(t), c); err != nil {
		t.Fatal(err)
	}
	if got := b.auth.Load(); got != "Bearer AT" {
		t.Errorf("second node got Authorization %q", got)
	}
	if got := c.BaseURLs(); len(got) != 2 || got[0] != a.url() || got[1] != b.url() || c.BaseURL() != a.url() {
		t.Errorf("BaseURLs = %v, BaseURL = %s", got, c.BaseURL())
	}
	for _, tc := range []struct{ name, base, more string }{
		{"fail other version", "https://a.example/csc/v2", "https://b.example/csc/v1"},
		{"fail twice the same", "https://a.example/csc/v2", "https://a.example/csc/v2/"},
		{"fail http off the loopback", "https://a.example/csc/v2", "http://b.example/csc/v2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.base, WithFailoverURLs(tc.more)); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("err = %v", err)
			}
		})
	}
	// A URL without the version gets the base's.
	cl, err := New("https://a.example/csc/v1", WithFailoverURLs("https://b.example/x"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cl.BaseURLs()[1]; got != "https://b.example/x/csc/v1" {
		t.Errorf("failover URL = %s", got)
	}
}
