package firefox

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/testbin"
)

// RequireEnv set to 1 makes a missing Firefox, Xvfb or xdotool a failure
// (CI) instead of a skip.
const RequireEnv = "CSCTOKEN_REQUIRE_FIREFOX"

// firefoxExe is Debian's firefox-esr.
const firefoxExe = "firefox-esr"

func needDesktop(t *testing.T) {
	t.Helper()
	testbin.Need(t, RequireEnv, firefoxExe, "Xvfb", "xdotool", "certutil", "modutil")
}

// artifactsDir is where screenshots and logs of a failed test are kept:
// $CSCTOKEN_ARTIFACTS, else build/test-artifacts in the module root.
func artifactsDir(t *testing.T) string {
	if d := os.Getenv("CSCTOKEN_ARTIFACTS"); d != "" {
		return d
	}
	return filepath.Join(testbin.Root(t), "build", "test-artifacts")
}

// group is a process started in its own process group, killed with it.
type group struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	out  *bytes.Buffer
	mu   sync.Mutex
}

// startGroup starts name in a new process group under a hard limit; the
// whole group is killed at the limit and at t.Cleanup.
func startGroup(t *testing.T, limit time.Duration, env []string, name string, args ...string) *group {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	g := &group{name: filepath.Base(name), cmd: cmd, done: make(chan struct{}), out: &bytes.Buffer{}}
	cmd.Stdout, cmd.Stderr = syncWriter{g}, syncWriter{g}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() {
		g.err = cmd.Wait()
		close(g.done)
	}()
	timer := time.AfterFunc(limit, func() {
		t.Logf("%s: hard limit %v reached, killing its process group", g.name, limit)
		g.kill()
	})
	t.Cleanup(func() {
		timer.Stop()
		g.kill()
		select {
		case <-g.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not end after SIGKILL", g.name)
		}
	})
	return g
}

type syncWriter struct{ g *group }

func (w syncWriter) Write(p []byte) (int, error) {
	w.g.mu.Lock()
	defer w.g.mu.Unlock()
	return w.g.out.Write(p)
}

func (g *group) output() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.out.String()
}

func (g *group) kill() { _ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL) }

func (g *group) exited() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// xvfb starts a virtual X server and returns its DISPLAY.
func xvfb(t *testing.T) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", "1280x1024x24", "-nolisten", "tcp", "-noreset")
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("Xvfb: %v", err)
	}
	w.Close()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- strings.TrimSpace(s)
		r.Close()
	}()
	select {
	case n := <-line:
		if n == "" {
			t.Fatal("Xvfb gave no display number")
		}
		return ":" + n
	case <-time.After(20 * time.Second):
		t.Fatal("Xvfb did not start")
	}
	return ""
}

// desktop is the test user's session: a private HOME, an X display, the
// module's config and log.
type desktop struct {
	t       *testing.T
	dir     string
	home    string
	display string
	env     []string
	log     string
}

// privateVars are left out of the programs' environment: the test gives
// them their own HOME, XDG directories, display and module config, and no
// desktop session (D-Bus, Wayland) of whoever runs the tests.
var privateVars = []string{"CSCTOKEN_", "XDG_", "HOME=", "DBUS_SESSION_BUS_ADDRESS=", "DISPLAY=", "WAYLAND_DISPLAY=",
	"BROWSER=", "MOZ_", "DESKTOP_SESSION=", "GNOME_", "KDE_"}

func newDesktop(t *testing.T, config string) *desktop {
	t.Helper()
	d := &desktop{t: t, dir: t.TempDir()}
	d.home = filepath.Join(d.dir, "home")
	for _, p := range []string{d.home, filepath.Join(d.dir, "run")} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(d.dir, "csctoken.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	d.log = filepath.Join(d.dir, "module.log")
	d.display = xvfb(t)
	for _, kv := range os.Environ() {
		private := false
		for _, p := range privateVars {
			if strings.HasPrefix(kv, p) {
				private = true
			}
		}
		if !private {
			d.env = append(d.env, kv)
		}
	}
	d.env = append(d.env,
		"HOME="+d.home,
		"XDG_RUNTIME_DIR="+filepath.Join(d.dir, "run"),
		"DISPLAY="+d.display,
		"CSCTOKEN_CONFIG="+cfg,
		"CSCTOKEN_LOG="+d.log,
		"BROWSER="+firefoxExe, // Firefox is the user's browser
		"MOZ_CRASHREPORTER_NO_REPORT=1",
	)
	t.Cleanup(func() {
		if t.Failed() {
			d.keep("module.log", d.log)
		}
	})
	return d
}

// run runs a program to its end (at most a minute) and fails the test
// unless it exits 0.
func (d *desktop) run(stdin string, name string, args ...string) string {
	d.t.Helper()
	r := testbin.Run(testbin.Cmd{Name: name, Args: args, Env: d.env, Dir: d.dir, Stdin: stdin, Limit: time.Minute})
	if r.Err != nil {
		d.t.Fatalf("%s %s: %s", name, strings.Join(args, " "), r)
	}
	return r.Stdout + r.Stderr
}

// xdotool runs xdotool on the test's display.
func (d *desktop) xdotool(args ...string) (string, error) {
	r := testbin.Run(testbin.Cmd{Name: "xdotool", Args: args, Env: d.env, Limit: 30 * time.Second})
	return strings.TrimSpace(r.Stdout), r.Err
}

// window waits for a window whose name contains name (and, when class is
// set, of that class) and returns its ID.
func (d *desktop) window(class, name string, limit time.Duration) string {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		args := []string{"search", "--onlyvisible", "--name", name}
		if class != "" {
			args = []string{"search", "--onlyvisible", "--class", class}
		}
		out, _ := d.xdotool(args...)
		for _, id := range strings.Fields(out) {
			title, _ := d.xdotool("getwindowname", id)
			if strings.Contains(title, name) {
				return id
			}
		}
		if time.Now().After(deadline) {
			d.screenshot("no-window")
			d.t.Fatalf("no window %q (class %q) after %v; windows: %s", name, class, limit, d.windows())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// windows lists the visible windows' names, for failure messages.
func (d *desktop) windows() string {
	out, _ := d.xdotool("search", "--onlyvisible", "--name", ".")
	var names []string
	for _, id := range strings.Fields(out) {
		n, _ := d.xdotool("getwindowname", id)
		if n != "" {
			names = append(names, strconv.Quote(n))
		}
	}
	return strings.Join(names, ", ")
}

// typeInto focuses window id and types keys: text, then each key.
func (d *desktop) typeInto(id, text string, keys ...string) {
	d.t.Helper()
	if _, err := d.xdotool("windowactivate", "--sync", id); err != nil {
		_, _ = d.xdotool("windowfocus", "--sync", id)
	}
	if text != "" {
		if _, err := d.xdotool("type", "--delay", "20", "--window", id, text); err != nil {
			d.t.Fatalf("xdotool type: %v", err)
		}
	}
	for _, k := range keys {
		if _, err := d.xdotool("key", "--window", id, k); err != nil {
			d.t.Fatalf("xdotool key %s: %v", k, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshot saves the screen under the artifacts directory and logs
// where.
func (d *desktop) screenshot(what string) {
	if _, err := exec.LookPath("import"); err != nil {
		d.t.Logf("no screenshot (%s): ImageMagick's import not found", what)
		return
	}
	dir := artifactsDir(d.t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		d.t.Logf("screenshot: %v", err)
		return
	}
	file := filepath.Join(dir, safeName(d.t.Name())+"-"+what+".png")
	r := testbin.Run(testbin.Cmd{Name: "import", Args: []string{"-window", "root", file}, Env: d.env, Limit: 20 * time.Second})
	if r.Err != nil {
		d.t.Logf("screenshot: %s", r)
		return
	}
	d.t.Logf("screenshot: %s", file)
}

// keep copies a file of a failed test under the artifacts directory.
func (d *desktop) keep(name, src string) {
	b, err := os.ReadFile(src)
	if err != nil {
		return
	}
	dir := artifactsDir(d.t)
	if os.MkdirAll(dir, 0o755) != nil {
		return
	}
	file := filepath.Join(dir, safeName(d.t.Name())+"-"+name)
	if os.WriteFile(file, b, 0o644) == nil {
		d.t.Logf("kept %s", file)
	}
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || r == ':' {
			return '_'
		}
		return r
	}, s)
}

// clientAuthServer is an HTTPS server that requires a client certificate
// issued by the rssp's CA, and reports each one it received.
type clientAuthServer struct {
	URL   string
	certs chan *x509.Certificate
	// hellos gets a value at each handshake's start (ClientHello).
	hellos chan struct{}
}

// startClientAuthServer serves on 127.0.0.1 with the rssp's TLS
// certificate; host names the URL's host (127.0.0.1 or localhost).
func startClientAuthServer(t *testing.T, rsspDir, host string, clientCAs []*x509.Certificate) *clientAuthServer {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(rsspDir, "tls-cert.pem"), filepath.Join(rsspDir, "tls-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	names := x509.NewCertPool()
	for _, c := range clientCAs {
		names.AddCert(c)
		if bytes.Equal(c.RawIssuer, c.RawSubject) {
			roots.AddCert(c)
		} else {
			inter.AddCert(c)
		}
	}
	s := &clientAuthServer{certs: make(chan *x509.Certificate, 16), hellos: make(chan struct{}, 64)}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAnyClientCert,
		ClientCAs:    names, // the CertificateRequest names the rssp's CA
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			pool := inter.Clone()
			for _, r := range raw[1:] {
				if c, err := x509.ParseCertificate(r); err == nil {
					pool.AddCert(c)
				}
			}
			_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err
		},
		MinVersion: tls.VersionTLS12,
		// Every connection authenticates: no resumption of an earlier
		// one (Firefox keeps TLS session tickets across restarts).
		SessionTicketsDisabled: true,
	}
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		select {
		case s.hellos <- struct{}{}:
		default:
		}
		return nil, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
				http.Error(w, "no client certificate", http.StatusForbidden)
				return
			}
			c := r.TLS.PeerCertificates[0]
			if r.URL.Path == "/" {
				select {
				case s.certs <- c:
				default:
				}
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, "<!doctype html><title>Client OK %s</title><p>Hello %s</p>\n", c.Subject.CommonName, c.Subject.CommonName)
		}),
		TLSConfig:         cfg,
		ReadHeaderTimeout: 3 * time.Minute, // Firefox, not the server, gives up a slow handshake
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	s.URL = "https://" + host + ":" + port + "/"
	return s
}

// drainHellos forgets the handshakes seen so far, so that openSite waits
// for a new one.
func (s *clientAuthServer) drainHellos() {
	for {
		select {
		case <-s.hellos:
		default:
			return
		}
	}
}

// received waits for the next client certificate the server saw.
func (s *clientAuthServer) received(d *desktop, limit time.Duration) *x509.Certificate {
	d.t.Helper()
	select {
	case c := <-s.certs:
		return c
	case <-time.After(limit):
		d.screenshot("no-client-cert")
		d.t.Fatalf("the server at %s got no client certificate within %v; windows: %s", s.URL, limit, d.windows())
	}
	return nil
}

// plainServer counts the requests of a plain HTTP page ("other tabs").
type plainServer struct {
	URL  string
	hits chan string
}

func startPlainServer(t *testing.T) *plainServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &plainServer{URL: "http://" + ln.Addr().String() + "/other", hits: make(chan string, 16)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.hits <- r.URL.Path:
		default:
		}
		fmt.Fprint(w, "<!doctype html><title>Other tab</title><p>other</p>")
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return s
}

// readPEMCerts reads every certificate of PEM files.
func readPEMCerts(t *testing.T, files ...string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for {
			var blk *pem.Block
			blk, b = pem.Decode(b)
			if blk == nil {
				break
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, c)
		}
	}
	return out
}

// processAlive reports whether pid runs (and is no zombie).
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, ok := bytes.Cut(b, []byte(") "))
	return ok && len(rest) > 0 && rest[0] != 'Z'
}

// processesWith lists the PIDs whose command line contains s.
func processesWith(s string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(s)) && processAlive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// countLines counts the lines of the module log containing s.
func (d *desktop) countLog(s string) int {
	b, err := os.ReadFile(d.log)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte(s))
}

// waitLog waits until the module log has a line with s.
func (d *desktop) waitLog(s string, limit time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for d.countLog(s) == 0 {
		if time.Now().After(deadline) {
			d.screenshot("log")
			b, _ := os.ReadFile(d.log)
			d.t.Fatalf("no %q in the module log after %v:\n%s", s, limit, tailText(string(b), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tailText(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var errNoProfile = errors.New("no profile")

// profileDir finds the directory of the profile named name in Firefox's
// profiles.ini (XDG location first).
func (d *desktop) profileDir(name string) (string, error) {
	for _, root := range []string{filepath.Join(d.home, ".config", "mozilla", "firefox"), filepath.Join(d.home, ".mozilla", "firefox")} {
		f, err := os.Open(filepath.Join(root, "profiles.ini"))
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(f)
		f.Close()
		var cur, path string
		rel := true
		for _, line := range strings.Split(string(b)+"\n[", "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "[") {
				if cur == name && path != "" {
					if rel {
						path = filepath.Join(root, path)
					}
					return path, nil
				}
				cur, path, rel = "", "", true
				continue
			}
			k, v, _ := strings.Cut(line, "=")
			switch k {
			case "Name":
				cur = v
			case "Path":
				path = v
			case "IsRelative":
				rel = v != "0"
			}
		}
	}
	return "", errNoProfile
}
