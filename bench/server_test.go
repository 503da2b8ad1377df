package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/csctoken/csctoken/cscclient"
	"github.com/csctoken/csctoken/cscclient/tokenstore"
	"github.com/csctoken/csctoken/internal/softhsmtest"
	"github.com/csctoken/csctoken/rssp/app"
	"github.com/csctoken/csctoken/rssp/config"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
)

// The enrolled user and its credentials' PIN. The PIN equals the SoftHSM
// token's user PIN (softhsmtest.DefaultPIN), so that a command line that
// signs with SoftHSM directly and one that signs through the module differ
// only in --module.
const (
	user     = "bench"
	password = "bench password 8c1f"
	pin      = softhsmtest.DefaultPIN
	svcName  = "csctoken bench"
)

// server is an RSSP for the benchmarks, assembled like `rssp serve` (app.Init
// and app.Open in a temporary directory, TLS on 127.0.0.1), with a handler
// in front that counts requests and answers /bench/echo (the bare HTTPS
// round trip). rssptest.Start is not used because it logs at debug level
// into memory and cannot wrap the handler.
type server struct {
	app    *app.App
	dir    string // the rssp setup
	url    string // base URL, ending in /csc/v2
	caFile string
	hsm    *softhsmtest.Token // PKCS#11 backend only

	total    atomic.Int64
	inflight atomic.Int64
	mu       sync.Mutex
	byPath   map[string]int64
	// handled holds how long the rssp's handler took for each request
	// (the first million of a run; see handledSince).
	handled []time.Duration
}

type serverOptions struct {
	pkcs11 bool // keys in a SoftHSM2 token (else the software keystore)
	// prodArgon2 keeps the production argon2id cost for PINs (19 MiB, 2
	// passes); otherwise 1 pass over 64 KiB, as in rssptest.
	prodArgon2 bool
}

// startServer starts a server and registers its shutdown with b.Cleanup.
func startServer(b *testing.B, o serverOptions) *server {
	b.Helper()
	dir := b.TempDir()
	init := app.InitOptions{Listen: "127.0.0.1:0", Name: "csctoken bench RSSP"}
	s := &server{dir: filepath.Join(dir, "rssp"), byPath: map[string]int64{}}
	if o.pkcs11 {
		s.hsm = softhsmtest.New(b)
		pinFile := filepath.Join(dir, "hsm-pin")
		if err := os.WriteFile(pinFile, []byte(s.hsm.PIN+"\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		init.PKCS11Module, init.PKCS11Token, init.PKCS11PINFile = s.hsm.ModulePath, s.hsm.Label, pinFile
	}
	res, err := app.Init(context.Background(), s.dir, init)
	if err != nil {
		b.Fatalf("rssp init: %v", err)
	}
	s.caFile = res.TLSCA
	cfg, err := config.Load(res.Config)
	if err != nil {
		b.Fatalf("rssp config: %v", err)
	}
	if !o.prodArgon2 {
		cfg.Security.Argon2Time, cfg.Security.Argon2Memory = 1, 64
	}
	// One authorization may cover a whole run of the direct client; SADs
	// outlive the run.
	cfg.Security.MaxMultisign = 1 << 30
	cfg.Security.SADTTL.Duration = time.Hour
	// The production log level (info: one line per request), into a
	// buffer that keeps the tail for error messages.
	log := slog.New(slog.NewTextHandler(&tail{}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := app.Open(context.Background(), cfg, log)
	if err != nil {
		b.Fatalf("rssp open: %v", err)
	}
	s.app = a
	inner := a.Handler
	a.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bench/echo" {
			echo(w, r)
			return
		}
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
		s.total.Add(1)
		s.mu.Lock()
		s.byPath[strings.TrimPrefix(r.URL.Path, "/csc/v2/")]++
		s.mu.Unlock()
		t0 := time.Now()
		inner.ServeHTTP(w, r)
		d := time.Since(t0)
		s.mu.Lock()
		if len(s.handled) < 1<<20 {
			s.handled = append(s.handled, d)
		}
		s.mu.Unlock()
	})
	ln, err := a.Listen()
	if err != nil {
		a.Close()
		b.Fatalf("listen: %v", err)
	}
	s.url = "https://" + ln.Addr().String() + "/csc/v2"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	b.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				b.Errorf("serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			b.Errorf("server did not stop")
		}
		a.Close()
	})
	if _, err := a.Service.AddUser(context.Background(), user, password); err != nil {
		b.Fatalf("add user: %v", err)
	}
	return s
}

// echo is the bare round trip: it reads the body and answers with as many
// bytes as the query's n asks for, as JSON.
func echo(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	n := 0
	fmt.Sscan(r.URL.Query().Get("n"), &n)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	body := make([]byte, max(n, 16))
	copy(body, `{"signatures":["`)
	for i := 16; i < len(body)-3; i++ {
		body[i] = 'A'
	}
	copy(body[max(len(body)-3, 16):], `"]}`)
	_, _ = w.Write(body)
}

// addCredential enrols a SCAL1 credential with the PIN, no description (so
// the module's CKA_LABEL is the credential ID, as the SoftHSM key's is).
func (s *server) addCredential(b *testing.B, kt keystore.KeyType, multisign int) string {
	b.Helper()
	c, _, err := s.app.Service.AddCredential(context.Background(), service.CredentialSpec{
		User: user, KeyType: kt, PIN: pin, Multisign: multisign,
	})
	if err != nil {
		b.Fatalf("add credential: %v", err)
	}
	return c.ID
}

// requests returns how many CSC requests the server has answered.
func (s *server) requests() int64 { return s.total.Load() }

// handledMark starts a new record of handler times; handledPct is the
// median and the 99th percentile of those recorded since.
func (s *server) handledMark() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handled = s.handled[:0]
}

func (s *server) handledPct() (p50, p99 time.Duration) {
	s.mu.Lock()
	v := slices.Clone(s.handled)
	s.mu.Unlock()
	if len(v) == 0 {
		return 0, 0
	}
	slices.Sort(v)
	return v[len(v)/2], v[len(v)*99/100]
}

// countsByPath returns a copy of the per-method counts.
func (s *server) countsByPath() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.byPath))
	for k, v := range s.byPath {
		out[k] = v
	}
	return out
}

// quiet waits until no request has been in flight or arrived for d.
func (s *server) quiet(d, limit time.Duration) {
	deadline := time.Now().Add(limit)
	last, since := s.requests(), time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(d / 5)
		if n := s.requests(); n != last || s.inflight.Load() != 0 {
			last, since = n, time.Now()
			continue
		}
		if time.Since(since) >= d {
			return
		}
	}
}

// login runs auth/login (rememberMe) and stores the service token in
// dir/csctoken/tokens, where the module's token store finds it with
// XDG_CONFIG_HOME=dir and no keyring (what `csctoken login` writes).
func (s *server) login(b *testing.B, configHome string) *tokenstore.Store {
	b.Helper()
	store, err := tokenstore.New(tokenstore.Options{Dir: filepath.Join(configHome, "csctoken", "tokens"), NoKeyring: true})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	cl, err := cscclient.New(s.url, cscclient.WithCAFile(s.caFile))
	if err != nil {
		b.Fatal(err)
	}
	tok, err := cl.LoginToken(ctx, user, password, true)
	if err != nil {
		b.Fatalf("auth/login: %v", err)
	}
	if err := cl.NewBasicSession(user, store, nil).Set(ctx, tok); err != nil {
		b.Fatal(err)
	}
	return store
}

// moduleConfig writes a module config for this server into dir.
func (s *server) moduleConfig(b *testing.B, dir string) string {
	b.Helper()
	path := filepath.Join(dir, "csctoken.toml")
	text := fmt.Sprintf(`cache_dir = %q

[[service]]
name = %q
url = %q
auth = "basic"
username = %q
ca_file = %q
timeout = "30s"
list_timeout = "60s"
`, filepath.Join(dir, "cache"), svcName, s.url, user, s.caFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// hostEnv is the environment of a C host using the module against s: a
// private HOME, config and cache, the stored service token, no D-Bus (so
// the token store uses its file), no module log.
func (s *server) hostEnv(b *testing.B) []string {
	b.Helper()
	env, _ := s.hostEnvDir(b)
	return env
}

// hostEnvDir is hostEnv and the module's cache directory (cache_dir).
func (s *server) hostEnvDir(b *testing.B) ([]string, string) {
	b.Helper()
	dir := b.TempDir()
	home, cfgHome, cacheHome, run := filepath.Join(dir, "home"), filepath.Join(dir, "config"), filepath.Join(dir, "cache"), filepath.Join(dir, "run")
	for _, d := range []string{home, cfgHome, cacheHome, run} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			b.Fatal(err)
		}
	}
	s.login(b, cfgHome)
	conf := s.moduleConfig(b, filepath.Join(dir, "module"))
	env := baseEnv()
	if d := os.Getenv("CSCTOKEN_BENCH_LOG"); d != "" {
		// Debugging: the module log of every C host, in that directory.
		env = append(env, "CSCTOKEN_LOG="+filepath.Join(d, "module.log"))
	}
	return append(env, "HOME="+home, "XDG_CONFIG_HOME="+cfgHome, "XDG_CACHE_HOME="+cacheHome,
		"XDG_RUNTIME_DIR="+run, "CSCTOKEN_CONFIG="+conf), filepath.Join(dir, "module", "cache")
}

// cacheWritten returns the newest modification time of the module's
// listing cache files (zero when there is none): the module writes the
// cache when a listing has completed.
func cacheWritten(dir string) time.Time {
	var t time.Time
	files, _ := filepath.Glob(filepath.Join(dir, "*.cache"))
	old, _ := filepath.Glob(filepath.Join(dir, "*.json")) // libraries before cache format 2 (CSCTOKEN_BENCH_LIB)
	for _, f := range append(files, old...) {
		if fi, err := os.Stat(f); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime()
		}
	}
	return t
}

// awaitCacheWrite waits until the cache is written after since (the
// listing C_Initialize started in the background is over), at most limit.
func awaitCacheWrite(dir string, since time.Time, limit time.Duration) bool {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cacheWritten(dir).After(since) {
			return true
		}
	}
	return false
}

// baseEnv is the test's environment without what would point a C host at
// another config, keyring or token.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "CSCTOKEN_"), strings.HasPrefix(k, "XDG_"), k == "HOME",
			k == "DBUS_SESSION_BUS_ADDRESS", k == "SOFTHSM2_CONF", k == "P11_KIT_SERVER_ADDRESS":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// tail keeps the last 64 KiB written to it.
type tail struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.buf.Len() > 64<<10 {
		t.buf.Next(t.buf.Len() - 32<<10)
	}
	return t.buf.Write(p)
}
