package nodes

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/csctoken/csctoken/internal/testbin"
)

// compileBench builds bench/cbench/p11bench.c, the C host that signs
// through libcsctoken.so with one session per thread.
func compileBench(t *testing.T) string {
	t.Helper()
	testbin.Need(t, "CSCTOKEN_REQUIRE_TOOLS", "gcc", "p11-kit-1")
	root := testbin.Root(t)
	out := filepath.Join(t.TempDir(), "p11bench")
	cflags, err := exec.Command("pkg-config", "--cflags", "p11-kit-1").Output()
	if err != nil {
		t.Fatalf("pkg-config: %v", err)
	}
	args := append([]string{"-std=c11", "-D_GNU_SOURCE", "-O2"}, strings.Fields(string(cflags))...)
	args = append(args, filepath.Join(root, "bench/cbench/p11bench.c"), "-o", out, "-ldl", "-lpthread")
	if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	return out
}

// TestModuleFailover: libcsctoken.so configured with both nodes (url = A,
// failover_urls = [B]) signs with 8 threads in a C host; A is killed with
// kill -9 while they sign; every signature of the run succeeds, those after
// the kill on B, each within the service's timeout.
func TestModuleFailover(t *testing.T) {
	c := newCluster(t)
	const label = "module EC"
	// A SAD for many signatures: the signature under way on A when it dies
	// goes to B with the same SAD, which B honours while it has signatures
	// left (with a SAD used up there, C_Sign would answer CKR_DEVICE_ERROR:
	// docs/mapping.md, "Several nodes").
	cred := c.credential(t, c.a, 1000, label)
	lib := testbin.Library(t)
	bench := compileBench(t)

	dir := t.TempDir()
	conf := filepath.Join(dir, "csctoken.toml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`[[service]]
name = "Two nodes"
url = %q
failover_urls = [%q]
auth = "basic"
username = %q
ca_file = %q
timeout = "10s"
list_timeout = "10s"
`, "https://"+c.a.addr+"/csc/v2", "https://"+c.b.addr+"/csc/v2", user, filepath.Join(c.a.dir, "tls-ca.pem"))), 0o600); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CSCTOKEN_") && !strings.HasPrefix(kv, "XDG_") && !strings.HasPrefix(kv, "HOME=") &&
			!strings.HasPrefix(kv, "DBUS_SESSION_BUS_ADDRESS=") {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+filepath.Join(dir, "home"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"XDG_CACHE_HOME="+filepath.Join(dir, "cache"), "DBUS_SESSION_BUS_ADDRESS=unix:path="+filepath.Join(dir, "no-bus"),
		"CSCTOKEN_CONFIG="+conf, "CSCTOKEN_LOG="+filepath.Join(dir, "module.log"))
	moduleLog := func() string { b, _ := os.ReadFile(filepath.Join(dir, "module.log")); return tail(string(b), 40) }
	if r := testbin.Run(testbin.Cmd{Name: testbin.CLI(t), Args: []string{"login", "--password-stdin"}, Env: env,
		Stdin: password + "\n", Limit: time.Minute}); r.Err != nil {
		t.Fatalf("csctoken login: %v", r)
	}

	const threads, ops = 8, 1000
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bench, "sign", "--lib", lib, "--key", label, "--mech", "ec", "--pin", pin,
		"--threads", fmt.Sprint(threads), "--warmup", "8", "--ops", fmt.Sprint(ops), "--sync")
	cmd.Env = env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuf
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	waitLine := func(prefix string) string {
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					_ = cmd.Wait()
					t.Fatalf("p11bench ended before %s: %s\nmodule log:\n%s", prefix, stderr.String(), moduleLog())
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-ctx.Done():
				t.Fatalf("p11bench: no %s: %s", prefix, stderr.String())
			}
		}
	}
	waitLine("READY") // logged in, keys found, warmed up: on A
	db, err := pgx.Connect(ctx, c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	signs := func() int {
		var n int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM audit WHERE event = 'sign' AND credential_id = $1`, cred).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := signs()
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	// Kill A once a tenth of the run is signed, whatever the machine's speed.
	for signs() < before+ops/10 {
		time.Sleep(10 * time.Millisecond)
	}
	c.a.kill9()
	t.Logf("A killed after %d of the run's %d signatures", signs()-before, ops)
	res := waitLine("RESULT")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("p11bench through libcsctoken.so with A killed: %v\n%s\nmodule log:\n%s", err, stderr.String(), moduleLog())
	}
	t.Logf("p11bench, %d threads, %d signatures, A killed during the run: %s", threads, ops, res)
	if n := signs(); n < before+ops {
		t.Errorf("%d signatures of the run audited, want at least %d", n-before, ops)
	}
	c.auditVerify(t, c.b)
	full, _ := os.ReadFile(filepath.Join(dir, "module.log"))
	failed, moved := strings.Count(string(full), `msg="csc node failed"`), strings.Count(string(full), `msg="csc failover"`)
	t.Logf("module log: %d node failures, %d calls moved to the next node", failed, moved)
	if failed == 0 || moved == 0 {
		t.Errorf("the module never moved to B: was A killed after the run?\n%s", moduleLog())
	}
	// No C_Sign took longer than the service's timeout.
	for _, f := range strings.Fields(res) {
		if v, ok := strings.CutPrefix(f, "max_ns="); ok {
			if ns, err := strconv.ParseInt(v, 10, 64); err != nil || time.Duration(ns) > 10*time.Second {
				t.Errorf("slowest signature %s ns, the timeout is 10s", v)
			}
		}
	}
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
