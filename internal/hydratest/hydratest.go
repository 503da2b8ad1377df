// Package hydratest starts a real ORY Hydra v2 for tests: the binary that
// make hydra (scripts/hydra.sh) builds from tools/hydra into the user's
// cache, on loopback ports, with a SQLite database in a temporary
// directory, killed by t.Cleanup.
package hydratest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/testbin"
)

// RequireEnv, set to 1, makes a missing Hydra binary a failure instead of
// a skip (CI: make test builds it first).
const RequireEnv = "CSCTOKEN_REQUIRE_HYDRA"

// Binary returns the path of the Hydra binary for tools/hydra's go.mod and
// go.sum, as scripts/hydra.sh names it.
func Binary(t testing.TB) string {
	t.Helper()
	root := testbin.Root(t)
	var sum bytes.Buffer
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(root, "tools", "hydra", f))
		if err != nil {
			t.Fatal(err)
		}
		sum.Write(b)
	}
	h := sha256.Sum256(sum.Bytes())
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cache, "csctoken", "hydra-"+hex.EncodeToString(h[:])[:16])
	if _, err := os.Stat(path); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("ORY Hydra is not built at %s: run make hydra (%s=1)", path, RequireEnv)
		}
		t.Skipf("ORY Hydra not built (make hydra builds it into %s; %s=1 makes this a failure)", path, RequireEnv)
	}
	return path
}

// Ports are a public and an admin port, free now, for Start.
type Ports struct{ Public, Admin int }

// FreePorts picks two loopback ports (so that the URLs are known before
// Hydra starts: the rssp's configuration names its issuer).
func FreePorts(t testing.TB) Ports {
	t.Helper()
	var ps [2]int
	for i := range ps {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ps[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	return Ports{Public: ps[0], Admin: ps[1]}
}

// Issuer is the public URL, Hydra's issuer, of p.
func (p Ports) Issuer() string { return fmt.Sprintf("http://127.0.0.1:%d", p.Public) }

// AdminURL is the admin API's URL of p.
func (p Ports) AdminURL() string { return fmt.Sprintf("http://127.0.0.1:%d", p.Admin) }

// Options configure Hydra.
type Options struct {
	Ports                Ports
	LoginURL, ConsentURL string
	// AccessTokenStrategy is "jwt" or "opaque" (the default of clients
	// that do not name theirs).
	AccessTokenStrategy string
}

// Hydra is a running Hydra.
type Hydra struct {
	Issuer, Admin string
	Log           *bytes.Buffer
	client        *http.Client
}

// Start migrates a new SQLite database and serves Hydra (--dev: plain
// HTTP on loopback) until the test ends.
func Start(t testing.TB, o Options) *Hydra {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	env := append(os.Environ(),
		"DSN=sqlite://"+filepath.Join(dir, "hydra.sqlite")+"?_fk=true",
		"SECRETS_SYSTEM=csctoken-tests-only-hydra-system-secret",
		"URLS_SELF_ISSUER="+o.Ports.Issuer(),
		"URLS_LOGIN="+o.LoginURL, "URLS_CONSENT="+o.ConsentURL,
		fmt.Sprintf("SERVE_PUBLIC_PORT=%d", o.Ports.Public), fmt.Sprintf("SERVE_ADMIN_PORT=%d", o.Ports.Admin),
		"SERVE_PUBLIC_HOST=127.0.0.1", "SERVE_ADMIN_HOST=127.0.0.1",
		"STRATEGIES_ACCESS_TOKEN="+o.AccessTokenStrategy,
		"LOG_LEVEL=warn", "LOG_LEAK_SENSITIVE_VALUES=false",
		"SQA_OPT_OUT=true", "HOME="+dir,
	)
	log := &bytes.Buffer{}
	mctx, mcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer mcancel()
	m := exec.CommandContext(mctx, bin, "migrate", "sql", "up", "-e", "--yes")
	m.Env, m.Dir = env, dir
	if out, err := m.CombinedOutput(); err != nil {
		t.Fatalf("hydra migrate: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "serve", "all", "--dev", "--sqa-opt-out")
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if t.Failed() {
			t.Logf("hydra log:\n%s", tail(log.String(), 60))
		}
	})
	h := &Hydra{Issuer: o.Ports.Issuer(), Admin: o.Ports.AdminURL(), Log: log, client: &http.Client{Timeout: 10 * time.Second}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := h.client.Get(h.Admin + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-done:
			t.Fatalf("hydra exited:\n%s", tail(log.String(), 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("hydra not ready within 60s:\n%s", tail(log.String(), 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
	return h
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Do sends a JSON request to base+path and decodes the answer into out
// (when not nil), failing the test unless the status is want.
func (h *Hydra) Do(t testing.TB, method, u string, in any, want int, out any) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s, want %d: %s", method, u, resp.Status, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, u, err, b)
		}
	}
}

// CreateClient registers an OAuth2 client through the admin API (the
// fields of Hydra's client JSON: client_id, client_secret, grant_types,
// scope, audience, redirect_uris, token_endpoint_auth_method,
// access_token_strategy...).
func (h *Hydra) CreateClient(t testing.TB, c map[string]any) {
	t.Helper()
	h.Do(t, http.MethodPost, h.Admin+"/admin/clients", c, http.StatusCreated, nil)
}

// ClientCredentials gets an access token with the client_credentials grant.
func (h *Hydra) ClientCredentials(t testing.TB, id, secret, scope, audience string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	if audience != "" {
		form.Set("audience", audience)
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	h.form(t, h.Issuer+"/oauth2/token", id, secret, form, &out)
	if out.AccessToken == "" {
		t.Fatal("no access_token")
	}
	return out.AccessToken
}

// Revoke revokes a token of a confidential client (RFC 7009).
func (h *Hydra) Revoke(t testing.TB, id, secret, token string) {
	t.Helper()
	h.form(t, h.Issuer+"/oauth2/revoke", id, secret, url.Values{"token": {token}}, nil)
}

func (h *Hydra) form(t testing.TB, u, id, secret string, form url.Values, out any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s: %s", u, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
	}
}
