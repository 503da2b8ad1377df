package soak

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/testbin"
)

// The C hosts: bench/cbench/p11bench.c (threads signing in a loop) and
// tests/e2e/testdata/session.c (one session driven line by line), compiled
// once per test binary. No Go program loads libcsctoken.so.

var cbuilds sync.Map // name → *cbuild

type cbuild struct {
	sync.Once
	path string
	err  error
}

// compile builds the C host src (relative to the module root) as name.
func compile(t *testing.T, name, src string, libs ...string) string {
	t.Helper()
	testbin.Need(t, "CSCTOKEN_REQUIRE_TOOLS", "gcc", "p11-kit-1")
	v, _ := cbuilds.LoadOrStore(name, &cbuild{})
	b := v.(*cbuild)
	b.Do(func() {
		root := testbin.Root(t)
		b.path = filepath.Join(workDir, name)
		cflags, err := exec.Command("pkg-config", "--cflags", "p11-kit-1").Output()
		if err != nil {
			b.err = fmt.Errorf("pkg-config --cflags p11-kit-1: %v", err)
			return
		}
		args := []string{"-std=c11", "-D_GNU_SOURCE", "-O2"}
		args = append(args, strings.Fields(string(cflags))...)
		args = append(args, "-I", filepath.Join(root, "cgo"), filepath.Join(root, src), "-o", b.path)
		args = append(args, libs...)
		if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// moduleEnv is a user's environment for the module: its config pointing at
// url, logged in with the CLI (token in a 0600 file, no keyring).
type moduleEnv struct {
	dir, lib string
	vars     []string
}

func newModuleEnv(t *testing.T, s *server, url string, timeout time.Duration) *moduleEnv {
	t.Helper()
	e := &moduleEnv{dir: t.TempDir(), lib: testbin.Library(t)}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CSCTOKEN_") && !strings.HasPrefix(kv, "XDG_") && !strings.HasPrefix(kv, "HOME=") &&
			!strings.HasPrefix(kv, "DBUS_SESSION_BUS_ADDRESS=") {
			e.vars = append(e.vars, kv)
		}
	}
	conf := filepath.Join(e.dir, "csctoken.toml")
	text := fmt.Sprintf(`[[service]]
name = "Soak"
url = %q
auth = "basic"
username = %q
credential_auth = "pin"
ca_file = %q
timeout = %q
list_timeout = %q
`, url, user, filepath.Join(s.dir, "tls-ca.pem"), timeout, timeout)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	e.vars = append(e.vars, "HOME="+filepath.Join(e.dir, "home"), "XDG_CONFIG_HOME="+filepath.Join(e.dir, "config"),
		"XDG_CACHE_HOME="+filepath.Join(e.dir, "cache"), "DBUS_SESSION_BUS_ADDRESS=unix:path="+filepath.Join(e.dir, "no-bus"),
		"CSCTOKEN_CONFIG="+conf, "CSCTOKEN_LOG="+filepath.Join(e.dir, "module.log"))
	r := testbin.Run(testbin.Cmd{Name: testbin.CLI(t), Args: []string{"login", "--password-stdin"}, Env: e.vars,
		Stdin: password + "\n", Limit: time.Minute})
	if r.Err != nil {
		t.Fatalf("csctoken login: %v", r)
	}
	return e
}

// moduleLog is the module's log (for failure messages).
func (e *moduleEnv) moduleLog() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "module.log"))
	return string(b)
}
