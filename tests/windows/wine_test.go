package windows

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/testbin"
)

// requireEnv makes a missing tool a failure instead of a skip (CI).
const requireEnv = "CSCTOKEN_REQUIRE_WINE"

// enginePath is libp11's OpenSSL engine, which osslsigncode loads.
const enginePath = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so"

const mingw = "x86_64-w64-mingw32-gcc"

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

func need(t *testing.T) {
	t.Helper()
	testbin.Need(t, requireEnv, "wine", "wineserver", mingw, "x86_64-w64-mingw32-objdump", "wixl",
		"osslsigncode", "openssl", "p11-kit-1", "gcc", enginePath)
}

// ---- the build -----------------------------------------------------------------

// build is what installer/windows/build.sh made, once per test binary.
type build struct {
	dll, exe, msi string
	root          string // the throwaway signing CA's root
	session       string // testdata/session.c of tests/e2e, for Windows
	shim          string // the test-only bcryptprimitives.dll
	took          time.Duration
}

var (
	buildOnce sync.Once
	built     build
	buildErr  error
)

const msiVersion = "0.9.0-wine"

func windowsBuild(t *testing.T) build {
	t.Helper()
	need(t)
	lib, cli, rssp := testbin.Library(t), testbin.CLI(t), testbin.Go(t, "rssp", "./cmd/rssp")
	root, work := testbin.Root(t), testbin.WorkDir(t)
	buildOnce.Do(func() {
		// Read what the script and the compilers read, so that go test's
		// cache sees changes to them.
		for _, f := range []string{"installer/windows/build.sh", "installer/windows/csctoken.wxs",
			"tests/e2e/testdata/session.c", "tests/windows/testdata/bcryptprimitives.c"} {
			if _, buildErr = os.ReadFile(filepath.Join(root, f)); buildErr != nil {
				return
			}
		}
		out := filepath.Join(work, "windows")
		start := time.Now()
		r := testbin.Run(testbin.Cmd{
			Name: "bash", Args: []string{"installer/windows/build.sh"}, Dir: root,
			Env: append(os.Environ(), "OUT="+out, "MSIDIR="+work, "VERSION="+msiVersion,
				"RSSP="+rssp, "CSCTOKEN="+cli, "LIBCSCTOKEN="+lib, "CSCTOKEN_SIGN_CONFIG="),
			Limit: 15 * time.Minute,
		})
		if r.Err != nil {
			buildErr = fmt.Errorf("installer/windows/build.sh: %v", r)
			return
		}
		built = build{
			dll: filepath.Join(out, "csctoken.dll"), exe: filepath.Join(out, "csctoken.exe"),
			msi:  filepath.Join(work, "csctoken-"+msiVersion+"-x64.msi"),
			root: filepath.Join(out, "test-signing-root.pem"),
			took: time.Since(start),
		}
		t.Logf("installer/windows/build.sh took %v:\n%s", built.took.Round(time.Second), r.Stdout)

		cflags, err := exec.Command("pkg-config", "--cflags", "p11-kit-1").Output()
		if err != nil {
			buildErr = fmt.Errorf("pkg-config: %w", err)
			return
		}
		built.session = filepath.Join(work, "session.exe")
		args := append([]string{"-std=c11", "-Wall", "-Wextra", "-Werror", "-O1"}, strings.Fields(string(cflags))...)
		args = append(args, "-I", filepath.Join(root, "cgo"), filepath.Join(root, "tests/e2e/testdata/session.c"), "-o", built.session)
		if out, err := exec.Command(mingw, args...).CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("%s %s: %v\n%s", mingw, strings.Join(args, " "), err, out)
			return
		}
		built.shim = filepath.Join(work, "bcryptprimitives.dll")
		if out, err := exec.Command(mingw, "-O2", "-shared", "-o", built.shim,
			filepath.Join(root, "tests/windows/testdata/bcryptprimitives.c"), "-ladvapi32").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("bcryptprimitives.dll: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// ---- the wine prefix -----------------------------------------------------------

// wine runs Windows programs in a prepared prefix.
type wine struct {
	prefix string
	env    []string
	user   string // the Windows user's name (drive_c/users/NAME)
}

// newWine locks the cached prefix (preparing it when missing) for the
// test; at the end wineserver is stopped, and after a failure the prefix
// is deleted so that the next run starts clean.
func newWine(t *testing.T, shim string) *wine {
	t.Helper()
	ver, err := exec.Command("wine", "--version").Output()
	if err != nil {
		t.Fatalf("wine --version: %v", err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	name := "wine-" + regexp.MustCompile(`[^A-Za-z0-9.]+`).ReplaceAllString(strings.TrimSpace(string(ver)), "_")
	dir := filepath.Join(cache, "csctoken", name)
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	w := &wine{prefix: dir, user: u.Username, env: []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "USER=" + u.Username,
		"WINEPREFIX=" + dir, "WINEDEBUG=-all", "WINEDLLOVERRIDES=mscoree,mshtml=", "LANG=C.UTF-8",
	}}
	t.Cleanup(func() {
		testbin.Run(testbin.Cmd{Name: "wineserver", Args: []string{"-k"}, Env: w.env, Limit: 30 * time.Second})
		if t.Failed() {
			os.RemoveAll(dir)
		}
		lock.Close()
	})
	// A persistent wineserver started here, with no pipes of ours: one
	// that a wine command starts inherits that command's stdout and
	// stderr, and outlives it.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := w.serverStart(); err != nil {
		t.Fatalf("wineserver -p: %v", err)
	}
	system32 := filepath.Join(dir, "drive_c", "windows", "system32")
	if _, err := os.Stat(filepath.Join(system32, "bcryptprimitives.dll")); err == nil {
		return w
	}
	testbin.Run(testbin.Cmd{Name: "wineserver", Args: []string{"-k"}, Env: w.env, Limit: 30 * time.Second})
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := w.serverStart(); err != nil {
		t.Fatalf("wineserver -p: %v", err)
	}
	start := time.Now()
	if r := w.run(5*time.Minute, "", "wineboot", "-i"); r.Err != nil {
		t.Fatalf("wineboot: %v", r)
	}
	copyFile(t, shim, filepath.Join(system32, "bcryptprimitives.dll"))
	t.Logf("prepared the wine prefix %s in %v", dir, time.Since(start).Round(time.Second))
	return w
}

// serverStart starts a persistent wineserver for the prefix, detached
// from our stdio.
func (w *wine) serverStart() error {
	cmd := exec.Command("wineserver", "-p")
	cmd.Env = w.env
	return cmd.Run() // it forks into the background
}

// run runs `wine ARGS...` to its end or its time limit. Its output goes
// through files, not pipes: the wine services a first command starts
// (services.exe, winedevice.exe, ...) inherit them and outlive it.
func (w *wine) run(limit time.Duration, stdin string, args ...string) testbin.Result {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var files [2]*os.File
	for i := range files {
		f, err := os.CreateTemp("", "wine-out-")
		if err != nil {
			return testbin.Result{Err: err}
		}
		defer os.Remove(f.Name())
		defer f.Close()
		files[i] = f
	}
	cmd := exec.CommandContext(ctx, "wine", args...)
	cmd.Env = w.env
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = files[0], files[1]
	start := time.Now()
	err := cmd.Run()
	r := testbin.Result{Err: err, Took: time.Since(start)}
	if ctx.Err() != nil {
		r.Err = fmt.Errorf("timed out after %v (hung?): %w", limit, err)
	}
	out, _ := os.ReadFile(files[0].Name())
	errOut, _ := os.ReadFile(files[1].Name())
	r.Stdout, r.Stderr = string(out), string(errOut)
	return r
}

// drive is a path under the prefix's C: drive.
func (w *wine) drive(elem ...string) string {
	return filepath.Join(append([]string{w.prefix, "drive_c"}, elem...)...)
}

// appData is the user's %APPDATA%.
func (w *wine) appData(elem ...string) string {
	return w.drive(append([]string{"users", w.user, "AppData", "Roaming"}, elem...)...)
}

// winPath is a Linux path as wine's Z: drive shows it.
func winPath(p string) string { return `Z:` + strings.ReplaceAll(p, "/", `\`) }

// session runs session.exe on dll with the commands and returns one answer
// line per command.
func (w *wine) session(t *testing.T, exe, dll string, cmds ...string) []string {
	t.Helper()
	r := w.run(2*time.Minute, strings.Join(cmds, "\n")+"\nquit\n", exe, dll)
	if r.Err != nil {
		t.Fatalf("session.exe: %v", r)
	}
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(r.Stdout, "\r\n", "\n")), "\n")
	if len(lines) != len(cmds) {
		t.Fatalf("session.exe answered %d lines to %d commands:\n%s\nstderr:\n%s", len(lines), len(cmds), r.Stdout, r.Stderr)
	}
	t.Logf("session.exe (%v): %d commands", r.Took.Round(time.Millisecond), len(cmds))
	return lines
}

// host is session.exe driven one command at a time.
type host struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

// start runs session.exe on dll; the process is killed at the end of the
// test.
func (w *wine) start(t *testing.T, exe, dll string) *host {
	t.Helper()
	cmd := exec.Command("wine", exe, dll)
	cmd.Env = w.env
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &host{cmd: cmd, in: in, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.lines <- strings.TrimRight(sc.Text(), "\r")
		}
		close(h.lines)
	}()
	t.Cleanup(func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	return h
}

// call sends one command and returns its answer line.
func (h *host) call(t *testing.T, command string) string {
	t.Helper()
	if _, err := io.WriteString(h.in, command+"\n"); err != nil {
		t.Fatalf("%s: %v", command, err)
	}
	select {
	case l, ok := <-h.lines:
		if !ok {
			t.Fatalf("%s: session.exe ended", command)
		}
		return l
	case <-time.After(time.Minute):
		t.Fatalf("%s: no answer within a minute", command)
	}
	return ""
}

// quit ends session.exe and checks that it exits within a minute.
func (h *host) quit(t *testing.T) {
	t.Helper()
	io.WriteString(h.in, "quit\n")
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("session.exe: %v", err)
		}
	case <-time.After(time.Minute):
		t.Errorf("session.exe did not exit after quit")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// ---- a TCP relay that can hold requests ------------------------------------------

// relay forwards TCP connections to target; while held, what clients send
// is not forwarded (a service that stopped answering).
type relay struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	hold  bool
	held  int // requests held
	conns []net.Conn
}

func startRelay(t *testing.T, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target}
	go r.serve()
	t.Cleanup(func() {
		ln.Close()
		r.mu.Lock()
		for _, c := range r.conns {
			c.Close()
		}
		r.mu.Unlock()
	})
	return r
}

func (r *relay) Addr() string { return r.ln.Addr().String() }

func (r *relay) setHold(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hold = on
	if !on { // drop what was held
		for _, c := range r.conns {
			c.Close()
		}
		r.conns = nil
	}
}

func (r *relay) heldCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held
}

func (r *relay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		go r.pipe(c)
	}
}

func (r *relay) pipe(c net.Conn) {
	up, err := net.Dial("tcp", r.target)
	if err != nil {
		c.Close()
		return
	}
	r.mu.Lock()
	r.conns = append(r.conns, c, up)
	r.mu.Unlock()
	go func() { io.Copy(c, up); c.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			r.mu.Lock()
			hold := r.hold
			if hold {
				r.held++
			}
			r.mu.Unlock()
			if hold {
				io.Copy(io.Discard, c) // until setHold(false) or cleanup closes c
				break
			}
			if _, err := up.Write(buf[:n]); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	c.Close()
	up.Close()
}
