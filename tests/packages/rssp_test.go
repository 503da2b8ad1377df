package packages

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	unitFile   = "/usr/lib/systemd/system/rssp.service"
	rsspConfig = "/etc/rssp/rssp.toml"
	rsspState  = "/var/lib/rssp"
)

// TestRsspDeb installs the rssp .deb, checks its unit with systemd-analyze
// (verify clean, security exposure at most 2.0), sets the service up as
// the documented first run does (rssp init as the user rssp), runs the
// unit's ExecStart as that user with the packaged config (systemd need not
// be PID 1 here: the test plays its part, $NOTIFY_SOCKET included, and
// waits for READY=1), signs over HTTPS with the csctoken CLI and openssl
// verifies; then purges the package.
func TestRsspDeb(t *testing.T) {
	gate(t, "dpkg", "systemd-analyze", "runuser", "openssl")
	deb := dist(t, "rssp_*_amd64.deb")
	if installed("rssp") {
		t.Fatal("rssp is installed on this machine already: the test would replace it (dpkg -P rssp first)")
	}
	if _, err := os.Stat(rsspState); err == nil {
		t.Fatalf("%s exists on this machine: the test would use another service's state", rsspState)
	}
	_, userErr := user.Lookup("rssp")
	t.Cleanup(func() {
		purge(t, "rssp")
		os.RemoveAll(rsspState)
		if userErr != nil { // the test made the user: take it away again
			exec.Command("userdel", "rssp").Run()
			exec.Command("groupdel", "rssp").Run()
		}
	})

	t.Logf("dpkg -i: %s", must(t, "dpkg", "-i", deb))
	files := packageFiles(t, "rssp")
	for _, f := range []string{"/usr/bin/rssp", unitFile, "/usr/lib/sysusers.d/rssp.conf", rsspConfig,
		"/usr/share/man/man8/rssp.8.gz", "/usr/share/doc/rssp/copyright"} {
		if !files[f] {
			t.Errorf("the package has no %s", f)
		}
	}
	stripped(t, "/usr/bin/rssp")
	u, err := user.Lookup("rssp")
	if err != nil {
		t.Fatalf("no user rssp after dpkg -i: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if st, err := os.Stat(rsspState); err != nil || st.Mode().Perm() != 0o700 || int(st.Sys().(*syscall.Stat_t).Uid) != uid {
		t.Errorf("%s: want 0700 owned by rssp: %v", rsspState, err)
	}
	if st, err := os.Stat(rsspConfig); err != nil || st.Mode().Perm() != 0o640 || int(st.Sys().(*syscall.Stat_t).Gid) != gid {
		t.Errorf("%s: want 0640 root:rssp: %v", rsspConfig, err)
	}

	// The unit: verify clean, security exposure in the OK band.
	if r := run(t, time.Minute, nil, "", "systemd-analyze", "verify", unitFile); r.Err != nil || strings.TrimSpace(r.Stdout+r.Stderr) != "" {
		t.Errorf("systemd-analyze verify: %v", r)
	}
	r := run(t, time.Minute, nil, "", "systemd-analyze", "security", "--offline=true", unitFile)
	m := regexp.MustCompile(`Overall exposure level for rssp.service: ([0-9.]+)`).FindStringSubmatch(r.Stdout)
	if m == nil {
		t.Fatalf("systemd-analyze security: %v", r)
	}
	if exposure, _ := strconv.ParseFloat(m[1], 64); exposure > 2.0 {
		t.Errorf("exposure %s > 2.0:\n%s", m[1], r.Stdout)
	}
	t.Logf("systemd-analyze security --offline=true: exposure %s", m[1])

	// First run, as documented: rssp init as the user rssp. The test
	// serves on a free port (an administrator's edit of listen).
	port := freePort(t)
	if r := run(t, 2*time.Minute, nil, "", "runuser", "-u", "rssp", "--", "rssp", "init", "--dir", rsspState, "--listen", "127.0.0.1:"+port); r.Err != nil {
		t.Fatalf("rssp init as rssp: %v", r)
	}
	conf, err := os.ReadFile(rsspConfig)
	if err != nil {
		t.Fatal(err)
	}
	conf = regexp.MustCompile(`(?m)^listen = .*$`).ReplaceAll(conf, []byte(`listen = "127.0.0.1:`+port+`"`))
	if err := os.WriteFile(rsspConfig, conf, 0o640); err != nil {
		t.Fatal(err)
	}
	admin := func(stdin string, args ...string) string {
		t.Helper()
		r := run(t, 2*time.Minute, nil, stdin, "runuser", append([]string{"-u", "rssp", "--", "rssp", "admin", "--config", rsspConfig}, args...)...)
		if r.Err != nil {
			t.Fatalf("rssp admin %s: %v", strings.Join(args, " "), r)
		}
		return r.Stdout
	}
	admin(password+"\n", "user", "add", testUser, "--password-stdin")
	credID := strings.TrimSpace(admin(pin+"\n", "credential", "add", "--user", testUser, "--key", "ec-p256", "--pin-stdin", "--description", keyLabel))
	if credID == "" {
		t.Fatal("rssp admin credential add printed no ID")
	}

	// The unit's ExecStart, as its user, with systemd's notify socket.
	execStart := unitValue(t, "ExecStart")
	notifyDir, err := os.MkdirTemp("", "rssp-notify-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(notifyDir)
	os.Chown(notifyDir, uid, gid)
	notifyPath := filepath.Join(notifyDir, "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	os.Chown(notifyPath, uid, gid)
	argv := strings.Fields(execStart)
	server := exec.Command(argv[0], argv[1:]...)
	server.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "HOME=" + rsspState, "NOTIFY_SOCKET=" + notifyPath}
	server.Dir = rsspState // WorkingDirectory=
	var logs syncBuffer
	server.Stdout, server.Stderr = &logs, &logs
	// User=rssp Group=rssp, no supplementary groups, as systemd runs it.
	server.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		server.Process.Signal(syscall.SIGTERM) // systemctl stop
		done := make(chan error, 1)
		go func() { done <- server.Wait() }()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second): // TimeoutStopSec=
			syscall.Kill(-server.Process.Pid, syscall.SIGKILL)
			return fmt.Errorf("rssp did not stop within 20 s of SIGTERM: %v", <-done)
		}
	}
	defer stop()
	notify.SetReadDeadline(time.Now().Add(60 * time.Second))
	buf := make([]byte, 256)
	n, err := notify.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "READY=1") {
		t.Fatalf("no READY=1 from %s (Type=notify): %q %v\n%s", execStart, buf[:n], err, logs.String())
	}

	// A user signs over HTTPS: csctoken (the packaged binary, not
	// installed here) with the service's TLS root, openssl verifies.
	dir := t.TempDir()
	env := privateEnv(t, dir)
	cfg := filepath.Join(dir, "csctoken.toml")
	writeFile(t, cfg, []byte(fmt.Sprintf("[[service]]\nname = %q\nurl = %q\nauth = \"basic\"\nusername = %q\ncredential_auth = \"pin\"\nca_file = %q\n",
		label, "https://127.0.0.1:"+port+"/csc/v2", testUser, filepath.Join(rsspState, "tls-ca.pem"))), 0o644)
	env = append(env, "CSCTOKEN_CONFIG="+cfg)
	cli := filepath.Join(rootDir, "build", "pkg", "csctoken")
	if r := run(t, time.Minute, env, password+"\n", cli, "login", "--password-stdin"); r.Err != nil {
		t.Fatalf("csctoken login: %v\nserver:\n%s", r, logs.String())
	}
	doc := filepath.Join(dir, "doc.txt")
	writeFile(t, doc, []byte("signed by the packaged rssp\n"), 0o644)
	sig := filepath.Join(dir, "doc.sig")
	if r := run(t, time.Minute, env, pin+"\n", cli, "sign", "--service", label, "--credential", credID, "--mechanism", "ecdsa",
		"--in", doc, "--out", sig, "--pin-stdin"); r.Err != nil {
		t.Fatalf("csctoken sign: %v\nserver:\n%s", r, logs.String())
	}
	r = run(t, time.Minute, env, "", cli, "list", "--pem")
	if r.Err != nil {
		t.Fatalf("csctoken list --pem: %v", r)
	}
	verify(t, dir, firstCert(t, r.Stdout), doc, sig)

	// ExecReload= (systemctl reload rssp): SIGHUP reloads the TLS certificate.
	if reload := unitValue(t, "ExecReload"); reload != "/bin/kill -HUP $MAINPID" {
		t.Errorf("ExecReload=%s", reload)
	}
	server.Process.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), "TLS certificate reloaded"); {
		if time.Now().After(deadline) {
			t.Fatalf("no reload after SIGHUP:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Errorf("rssp after SIGTERM: %v\n%s", err, logs.String())
	}

	// Purge: the package's files go; the state stays (by design, said).
	r = run(t, 3*time.Minute, nil, "", "dpkg", "-P", "rssp")
	if r.Err != nil {
		t.Fatalf("dpkg -P rssp: %v", r)
	}
	if !strings.Contains(r.Stderr, rsspState) {
		t.Errorf("dpkg -P does not say that %s is kept:\n%s", rsspState, r.Stderr)
	}
	for f := range files {
		if _, err := os.Lstat(f); err == nil && !isSharedDir(f) {
			t.Errorf("left after dpkg -P: %s", f)
		}
	}
	if _, err := os.Stat("/etc/rssp"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("/etc/rssp left after dpkg -P: %v", err)
	}
	if _, err := os.Stat(filepath.Join(rsspState, "kek")); err != nil {
		t.Errorf("the state was not kept: %v", err)
	}
}

// unitValue returns the value of key in the installed rssp.service.
func unitValue(t *testing.T, key string) string {
	t.Helper()
	f, err := os.Open(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+"="); ok {
			return v
		}
	}
	t.Fatalf("%s has no %s=", unitFile, key)
	return ""
}

// freePort returns a TCP port free on 127.0.0.1 now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// syncBuffer is a buffer a process writes to while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
