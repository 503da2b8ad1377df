package cscclient

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// exchange is what a fake server expects on one path and what it answers.
type exchange struct {
	wantKeys []string // exact top-level keys of the request body (nil: not checked)
	wantAuth string   // "bearer", "basic", "none" or "" (not checked)
	status   int      // 200 when zero
	ctype    string   // Content-Type; application/json when empty
	body     string   // answer
	check    func(t *testing.T, r *http.Request, raw []byte)
}

// recorded is one request seen by a fake server.
type recorded struct {
	path   string
	method string
	auth   string
	body   []byte
}

// fakeServer answers fixed exchanges by path (relative to the base URL).
type fakeServer struct {
	t      *testing.T
	srv    *httptest.Server
	prefix string
	routes map[string]exchange

	mu   sync.Mutex
	reqs []recorded
}

func newFake(t *testing.T, v Version, routes map[string]exchange) *fakeServer {
	t.Helper()
	f := &fakeServer{t: t, prefix: "/csc/" + v.String() + "/", routes: routes}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	path := strings.TrimPrefix(r.URL.Path, f.prefix)
	f.mu.Lock()
	f.reqs = append(f.reqs, recorded{path: path, method: r.Method, auth: r.Header.Get("Authorization"), body: raw})
	f.mu.Unlock()
	ex, ok := f.routes[path]
	if !ok {
		f.t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
		http.Error(w, `{"error":"not_implemented"}`, http.StatusNotImplemented)
		return
	}
	if ex.wantKeys != nil {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			f.t.Errorf("%s: request is not a JSON object: %v", path, err)
		}
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		want := slices.Clone(ex.wantKeys)
		slices.Sort(want)
		if !slices.Equal(keys, want) {
			f.t.Errorf("%s: request keys %v, want %v", path, keys, want)
		}
	}
	if ct := r.Header.Get("Content-Type"); r.Method == http.MethodPost && ct != "application/json" {
		f.t.Errorf("%s: Content-Type %q", path, ct)
	}
	auth := r.Header.Get("Authorization")
	switch ex.wantAuth {
	case "bearer":
		if !strings.HasPrefix(auth, "Bearer ") {
			f.t.Errorf("%s: Authorization %q, want Bearer", path, auth)
		}
	case "basic":
		if !strings.HasPrefix(auth, "Basic ") {
			f.t.Errorf("%s: Authorization %q, want Basic", path, auth)
		}
	case "none":
		if auth != "" {
			f.t.Errorf("%s: Authorization sent: %q", path, auth)
		}
	}
	if ex.check != nil {
		ex.check(f.t, r, raw)
	}
	ct := ex.ctype
	if ct == "" {
		ct = "application/json"
	}
	w.Header().Set("Content-Type", ct)
	st := ex.status
	if st == 0 {
		st = http.StatusOK
	}
	w.WriteHeader(st)
	io.WriteString(w, ex.body)
}

func (f *fakeServer) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

func (f *fakeServer) count(path string) int {
	n := 0
	for _, r := range f.requests() {
		if r.path == path {
			n++
		}
	}
	return n
}

func (f *fakeServer) url(v Version) string { return f.srv.URL + "/csc/" + v.String() }

// fastRetry makes retries immediate and records the waits.
func fastRetry(c *Client) *[]time.Duration {
	var mu sync.Mutex
	waits := &[]time.Duration{}
	c.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		*waits = append(*waits, d)
		mu.Unlock()
		return ctx.Err()
	}
	return waits
}

func mustClient(t *testing.T, url string, opts ...Option) *Client {
	t.Helper()
	c, err := New(url, opts...)
	if err != nil {
		t.Fatalf("New(%q): %v", url, err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
