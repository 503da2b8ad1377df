package soak

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/testbin"
)

// TestSoak runs the phases in order on one server (the bad logins and the
// disk-full phase on servers of their own).
func TestSoak(t *testing.T) {
	s := newServer(t, t.TempDir())
	// On a server of its own: the flood's wrong passwords for the test
	// user throttle its password logins for a while (the trade-off in
	// docs/security.md), which the other phases need.
	t.Run("memory under bad logins", func(t *testing.T) { testBadLogins(t, newServer(t, t.TempDir())) })
	t.Run("load", func(t *testing.T) { testLoad(t, s) })
	t.Run("kill -9 mid-load", func(t *testing.T) { testKill9(t, s) })
	t.Run("network faults", func(t *testing.T) { testNetworkFaults(t, s) })
	t.Run("disk full", testDiskFull)
	t.Run("HSM failure", testHSMFailure)
}

// quantile of sorted durations.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(q*float64(len(d))))]
}

// testBadLogins: N concurrent wrong logins (unknown and known users) keep
// the server's RSS bounded (argon2 is bounded, issue 12 item 1), and the
// owner of a valid token still signs meanwhile.
func testBadLogins(t *testing.T, s *server) {
	n := envInt(t, "CSCTOKEN_SOAK_BAD_LOGINS", 200)
	tok := s.login(t, user, password)
	// The owner has a connection of its own (HTTP/2 would otherwise put
	// its requests on the flood's connection, behind its streams).
	owner := *s
	owner.client = &http.Client{Timeout: s.client.Timeout, Transport: s.client.Transport.(*http.Transport).Clone()}
	if a := owner.call(context.Background(), "info", "", map[string]any{}); a.status != 200 { // connected, as a module keeps its connection
		t.Fatalf("info: %d %v", a.status, a.err)
	}
	base := s.rssKiB()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var peak atomic.Int64
	stopSample := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if r := int64(s.rssKiB()); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-stopSample:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
		start    = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			<-start
			name := user
			if i%2 == 1 {
				name = fmt.Sprintf("nobody%d", i)
			}
			a := s.basicLogin(ctx, name, "wrong password")
			mu.Lock()
			defer mu.Unlock()
			if a.err != nil {
				statuses[-1]++
				return
			}
			statuses[a.status]++
			if (a.status == 503 || a.status == 429) && a.header.Get("Retry-After") == "" {
				t.Errorf("%d without Retry-After", a.status)
			}
		})
	}
	close(start)
	// Meanwhile, the owner signs: authorize (PIN) + signHash.
	time.Sleep(100 * time.Millisecond)
	var lat []time.Duration
	var parts []string
	for i := range 5 {
		t0 := time.Now()
		sad, a := owner.authorize(ctx, tok, 1)
		if sad == "" {
			t.Errorf("authorize during the flood: %d %s %v", a.status, a.body, a.err)
			continue
		}
		t1 := time.Now()
		if a := owner.sign(ctx, tok, sad, digestOf(-1, i)); a.status != 200 {
			t.Errorf("signHash during the flood: %d %s %v", a.status, a.body, a.err)
		}
		lat = append(lat, time.Since(t0))
		parts = append(parts, fmt.Sprintf("authorize %v + signHash %v", t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond)))
	}
	t.Logf("the owner meanwhile: %s", strings.Join(parts, "; "))
	wg.Wait()
	close(stopSample)
	<-sampled
	slices.Sort(lat)
	t.Logf("%d concurrent bad logins: answers %v; RSS %d MiB before, peak %d MiB; the owner's authorize+signHash meanwhile: %v",
		n, statuses, base>>10, peak.Load()>>10, lat)
	fmt.Printf("SOAK bad_logins=%d peak_rss_mib=%d base_rss_mib=%d owner_sign_p50_ms=%d owner_sign_max_ms=%d statuses=%v\n",
		n, peak.Load()>>10, base>>10, quantile(lat, 0.5).Milliseconds(), quantile(lat, 1).Milliseconds(), statuses)
	if statuses[-1] > 0 || statuses[500] > 0 {
		t.Errorf("transport errors or 500s: %v", statuses)
	}
	if peak.Load() > 256<<10 {
		t.Errorf("peak RSS %d MiB, want < 256 MiB", peak.Load()>>10)
	}
	// The median: a shared machine's scheduler adds its own outliers to
	// the maximum, which is printed.
	if len(lat) > 0 && quantile(lat, 0.5) > 2*time.Second {
		t.Errorf("the owner's signatures took %v (median %v), want < 2s", lat, quantile(lat, 0.5))
	}
}

// httpLoad runs clients that authorize a SAD of multisign signatures and
// use it whole, until ctx ends; every signature received is recorded (its
// base64 digest), every other answer counted by status (-1: transport).
type loadResult struct {
	mu       sync.Mutex
	received []string
	fails    map[int]int
	lat      []time.Duration
	overuse  int // a SAD that signed more than its count
	done     chan struct{}
	samples  map[int]answer // the first failed answer of each status
}

func httpLoad(ctx context.Context, s *server, tok string, clients int) *loadResult {
	r := &loadResult{fails: map[int]int{}, samples: map[int]answer{}, done: make(chan struct{})}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			seq := 0
			for ctx.Err() == nil {
				sad, a := s.authorize(ctx, tok, multisign)
				if sad == "" {
					if ctx.Err() == nil {
						r.fail(a)
					}
					continue
				}
				// One more than the SAD's count: the last must be refused.
				for i := range multisign + 1 {
					d := digestOf(c, seq)
					seq++
					t0 := time.Now()
					a := s.sign(ctx, tok, sad, d)
					switch {
					case a.err == nil && a.status == 200 && i == multisign:
						r.mu.Lock()
						r.overuse++
						r.mu.Unlock()
					case a.err == nil && a.status == 200:
						r.mu.Lock()
						r.received = append(r.received, base64.StdEncoding.EncodeToString(d))
						r.lat = append(r.lat, time.Since(t0))
						r.mu.Unlock()
					case i == multisign && a.err == nil && a.status == 400:
					default:
						if ctx.Err() == nil {
							r.fail(a)
						}
					}
					if ctx.Err() != nil {
						return
					}
				}
			}
		})
	}
	go func() { wg.Wait(); close(r.done) }()
	return r
}

func (r *loadResult) wait() { <-r.done }

func (r *loadResult) fail(a answer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := a.status
	if a.err != nil {
		st = -1
	}
	r.fails[st]++
	if _, ok := r.samples[st]; !ok {
		r.samples[st] = a
	}
}

// testLoad: 64 HTTPS clients and 16 threads through the module at once,
// for the soak time: no error; p50/p99 printed.
func testLoad(t *testing.T, s *server) {
	d := soakTime(t)
	tok := s.login(t, user, password)
	bench := compile(t, "p11bench", "bench/cbench/p11bench.c", "-ldl", "-lpthread")
	env := newModuleEnv(t, s, s.url("")[:len(s.url(""))-1], 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	r := httpLoad(ctx, s, tok, 64)
	// The C host: 16 threads, one session each, signing until about the
	// same time (ops sized from the soak time).
	ops := max(32, int(d.Seconds()*40))
	res := testbin.Run(testbin.Cmd{Name: bench, Args: []string{"sign", "--lib", env.lib, "--key", label, "--mech", "ec",
		"--pin", pin, "--threads", "16", "--warmup", "16", "--ops", fmt.Sprint(ops)}, Env: env.vars, Limit: d + 2*time.Minute})
	r.wait()
	if res.Err != nil {
		t.Errorf("p11bench (16 threads through libcsctoken.so): %v\nmodule log:\n%s", res, tail(env.moduleLog(), 40))
	}
	for _, l := range strings.Split(res.Stdout, "\n") {
		if strings.HasPrefix(l, "RESULT") {
			t.Logf("module, 16 threads: %s", l)
			fmt.Println("SOAK module " + l)
		}
	}
	slices.Sort(r.lat)
	t.Logf("HTTPS, 64 clients, %v: %d signatures, p50 %v, p99 %v, failures %v", d, len(r.received),
		quantile(r.lat, 0.5), quantile(r.lat, 0.99), r.fails)
	fmt.Printf("SOAK https clients=64 time=%v signatures=%d p50_ms=%.1f p99_ms=%.1f failures=%v\n", d, len(r.received),
		float64(quantile(r.lat, 0.5).Microseconds())/1000, float64(quantile(r.lat, 0.99).Microseconds())/1000, r.fails)
	if len(r.fails) > 0 || r.overuse > 0 {
		t.Errorf("HTTPS load: failures %v, SADs used over their count %d", r.fails, r.overuse)
	}
	if len(r.received) == 0 {
		t.Error("no signature under load")
	}
	checkAudited(t, s, r.received)
}

// checkAudited: the audit chain verifies, the database is intact, and every
// signature a client received has its audit row.
func checkAudited(t *testing.T, s *server, received []string) {
	t.Helper()
	signed := s.checkState(t)
	missing := 0
	for _, d := range received {
		if !signed[d] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d signatures received have no audit row", missing, len(received))
	}
}

// testKill9: three times, kill -9 the server under load from 16 HTTPS
// clients, restart it: every signature received has its audit row, the
// chain verifies, integrity_check is ok, no SAD signed over its count.
func testKill9(t *testing.T, s *server) {
	var all []string
	for round := range 3 {
		tok := s.login(t, user, password)
		ctx, cancel := context.WithCancel(context.Background())
		r := httpLoad(ctx, s, tok, 16)
		time.Sleep(time.Duration(500+rand.IntN(1000)) * time.Millisecond)
		s.kill9(t)
		cancel()
		r.wait()
		if r.overuse > 0 {
			t.Errorf("round %d: %d SADs signed over their count", round, r.overuse)
		}
		all = append(all, r.received...)
		checkAudited(t, s, all)
		s.start(t)
		t.Logf("round %d: killed after %d signatures received", round, len(r.received))
	}
	// The restarted server serves.
	tok := s.login(t, user, password)
	sad, a := s.authorize(context.Background(), tok, 1)
	if sad == "" {
		t.Fatalf("authorize after the restarts: %d %s", a.status, a.body)
	}
}

// proxy is a loopback TCP proxy to target whose mode changes on demand:
// pass, stall (accept, read, never answer) or reset (accept, then RST).
type proxy struct {
	ln     net.Listener
	target string
	mode   atomic.Value // string
	mu     sync.Mutex
	conns  []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.mode.Store("pass")
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	return p
}

func (p *proxy) setMode(m string) {
	p.mode.Store(m)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns { // connections of the old mode end
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(c)
		switch p.mode.Load().(string) {
		case "stall":
			go func() { _, _ = io.Copy(io.Discard, c) }()
		case "reset":
			go func() {
				buf := make([]byte, 512)
				_, _ = c.Read(buf) // mid-request
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
				c.Close()
			}()
		default:
			go func() {
				u, err := net.Dial("tcp", p.target)
				if err != nil {
					c.Close()
					return
				}
				p.track(u)
				go func() { _, _ = io.Copy(u, c); u.Close() }()
				_, _ = io.Copy(c, u)
				c.Close()
			}()
		}
	}
}

// sessionHost is tests/e2e's line-driven C host.
type sessionHost struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

func startSession(t *testing.T, env *moduleEnv) *sessionHost {
	t.Helper()
	bin := compile(t, "session", "tests/e2e/testdata/session.c", "-ldl")
	h := &sessionHost{cmd: exec.Command(bin, env.lib), lines: make(chan string, 16)}
	h.cmd.Env, h.cmd.Dir = env.vars, env.dir
	var err error
	if h.in, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	t.Cleanup(func() {
		_, _ = io.WriteString(h.in, "quit\n")
		done := make(chan struct{})
		go func() { _ = h.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = h.cmd.Process.Kill()
		}
	})
	return h
}

// do sends one command and waits at most limit for its line: the CK_RV
// name, the time taken.
func (h *sessionHost) do(t *testing.T, cmd string, limit time.Duration) (string, time.Duration) {
	t.Helper()
	t0 := time.Now()
	if _, err := io.WriteString(h.in, cmd+"\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case l, ok := <-h.lines:
		if !ok {
			t.Fatalf("%s: the host exited", cmd)
		}
		return strings.Fields(l + " ")[0], time.Since(t0)
	case <-time.After(limit):
		t.Fatalf("%s: no answer within %v: the host hangs", strings.Fields(cmd)[0], limit)
	}
	return "", 0
}

// testNetworkFaults: a proxy between the module and the server stalls,
// then resets mid-request: the host gets CKR_DEVICE_ERROR within the
// configured timeout (never a hang), and the next signature works.
func testNetworkFaults(t *testing.T, s *server) {
	const timeout = 2 * time.Second
	p := newProxy(t, s.addr)
	env := newModuleEnv(t, s, "https://"+p.ln.Addr().String()+"/csc/v2", timeout)
	h := startSession(t, env)
	for _, c := range []string{"init", "open 0", "login " + pin} {
		if rv, _ := h.do(t, c, time.Minute); rv != "CKR_OK" {
			t.Fatalf("%s: %s\nmodule log:\n%s", strings.Fields(c)[0], rv, tail(env.moduleLog(), 30))
		}
	}
	sign := func(i int) (string, time.Duration) {
		return h.do(t, fmt.Sprintf("sign ECDSA %s %s", hex.EncodeToString(digestOf(99, i)), label), 4*timeout+10*time.Second)
	}
	if rv, _ := sign(0); rv != "CKR_OK" {
		t.Fatalf("sign through the proxy: %s\n%s", rv, tail(env.moduleLog(), 30))
	}
	for i, mode := range []string{"stall", "reset"} {
		p.setMode(mode)
		rv, took := sign(10 + i)
		t.Logf("%s: %s after %v", mode, rv, took.Round(time.Millisecond))
		if rv != "CKR_DEVICE_ERROR" {
			t.Errorf("%s: %s, want CKR_DEVICE_ERROR", mode, rv)
		}
		if took > 2*timeout+5*time.Second {
			t.Errorf("%s: answered after %v, configured timeout %v", mode, took, timeout)
		}
		p.setMode("pass")
		if rv, _ := sign(20 + i); rv != "CKR_OK" {
			t.Errorf("the signature after %s: %s\n%s", mode, rv, tail(env.moduleLog(), 30))
		}
	}
}

// testDiskFull: a server whose state lives on a small tmpfs (root only:
// it mounts one); the disk filled up under it answers 503 with Retry-After
// (no 500, no corruption); freed, it serves again without a restart.
func testDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("the disk-full phase needs root (it mounts a tmpfs)")
		}
		t.Skip("the disk-full phase needs root (it mounts a tmpfs)")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out) // a container without CAP_SYS_ADMIN
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
		}
	})
	s := newServer(t, filepath.Join(mnt, "rssp"))
	tok := s.login(t, user, password)
	ctx := context.Background()
	sad, a := s.authorize(ctx, tok, multisign)
	if sad == "" {
		t.Fatalf("authorize: %d %s", a.status, a.body)
	}
	// Fill the file system.
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	small := make([]byte, 4096)
	for {
		if _, err := f.Write(small); err != nil {
			break
		}
	}
	f.Close()
	var got []string
	var unavailable int
	var received []string
	for i := range 20 {
		d := digestOf(7, i)
		a := s.sign(ctx, tok, sad, d)
		if a.err != nil {
			t.Fatalf("signHash on a full disk: %v", a.err)
		}
		got = append(got, fmt.Sprint(a.status))
		switch a.status {
		case 200:
			received = append(received, base64.StdEncoding.EncodeToString(d))
		case 503:
			unavailable++
			if a.header.Get("Retry-After") == "" || a.code() != "temporarily_unavailable" {
				t.Errorf("503 without Retry-After or temporarily_unavailable: %s %v", a.body, a.header)
			}
		case 400: // the SAD used up
		default:
			t.Errorf("signHash on a full disk: %d %s", a.status, a.body)
		}
	}
	t.Logf("signHash on a full disk: %v", got)
	if unavailable == 0 {
		t.Errorf("no 503 on a full disk: %v", got)
	}
	// Freed: the same process serves again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	tok = s.login(t, user, password)
	sad, a = s.authorize(ctx, tok, 1)
	if sad == "" {
		t.Fatalf("authorize after freeing the disk: %d %s", a.status, a.body)
	}
	d := digestOf(8, 0)
	if a := s.sign(ctx, tok, sad, d); a.status != http.StatusOK {
		t.Fatalf("signHash after freeing the disk: %d %s", a.status, a.body)
	}
	received = append(received, base64.StdEncoding.EncodeToString(d))
	checkAudited(t, s, received)
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
