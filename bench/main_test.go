package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/testbin"
)

var (
	workDir string // built library and C host, for the whole run
	rootDir string // the Go module root
)

func TestMain(m *testing.M) {
	var err error
	if rootDir, err = filepath.Abs(".."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if workDir, err = os.MkdirTemp("", "csctoken-bench-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(workDir)
	os.Exit(code)
}

// need skips the benchmark when a tool is missing, or fails it under
// CSCTOKEN_REQUIRE_TOOLS=1. "p11-kit-1" is the pkg-config package (the
// pkcs11.h the C code is built against).
func need(b *testing.B, tools ...string) {
	b.Helper()
	testbin.Need(b, "CSCTOKEN_REQUIRE_TOOLS", tools...)
}

func skip(b *testing.B, why string) {
	b.Helper()
	if os.Getenv("CSCTOKEN_REQUIRE_TOOLS") == "1" {
		b.Fatalf("%s; required by CSCTOKEN_REQUIRE_TOOLS=1", why)
	}
	b.Skipf("%s; set CSCTOKEN_REQUIRE_TOOLS=1 to make this a failure", why)
}

type built struct {
	sync.Once
	path string
	err  error
}

var libBuild, hostBuild, directBuild built

// directHost builds directhost/, the direct CSC client as a process.
func directHost(b *testing.B) string {
	b.Helper()
	directBuild.Do(func() {
		directBuild.path = filepath.Join(workDir, "directhost")
		cmd := exec.Command("go", "build", "-trimpath", "-o", directBuild.path, "./bench/directhost")
		cmd.Dir = rootDir
		if out, err := cmd.CombinedOutput(); err != nil {
			directBuild.err = fmt.Errorf("go build ./bench/directhost: %v\n%s", err, out)
		}
	})
	if directBuild.err != nil {
		b.Fatal(directBuild.err)
	}
	return directBuild.path
}

// library builds libcsctoken.so as the Makefile does (or takes
// $CSCTOKEN_BENCH_LIB).
func library(b *testing.B) string {
	b.Helper()
	need(b, "gcc", "p11-kit-1")
	libBuild.Do(func() {
		if p := os.Getenv("CSCTOKEN_BENCH_LIB"); p != "" {
			libBuild.path = p
			return
		}
		libBuild.path = filepath.Join(workDir, "libcsctoken.so")
		start := time.Now()
		cmd := exec.Command("go", "build", "-trimpath", "-buildmode=c-shared", "-o", libBuild.path, "./cgo")
		cmd.Dir = rootDir
		if out, err := cmd.CombinedOutput(); err != nil {
			libBuild.err = fmt.Errorf("go build ./cgo: %v\n%s", err, out)
			return
		}
		b.Logf("built libcsctoken.so in %v", time.Since(start).Round(time.Millisecond))
	})
	if libBuild.err != nil {
		b.Fatal(libBuild.err)
	}
	return libBuild.path
}

// cbench compiles cbench/p11bench.c.
func cbench(b *testing.B) string {
	b.Helper()
	need(b, "gcc", "p11-kit-1")
	hostBuild.Do(func() {
		hostBuild.path = filepath.Join(workDir, "p11bench")
		cflags, err := exec.Command("pkg-config", "--cflags", "p11-kit-1").Output()
		if err != nil {
			hostBuild.err = fmt.Errorf("pkg-config --cflags p11-kit-1: %v", err)
			return
		}
		args := []string{"-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-O2"}
		args = append(args, strings.Fields(string(cflags))...)
		args = append(args, filepath.Join("cbench", "p11bench.c"), "-o", hostBuild.path, "-ldl", "-lpthread")
		if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
			hostBuild.err = fmt.Errorf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if hostBuild.err != nil {
		b.Fatal(hostBuild.err)
	}
	return hostBuild.path
}

// p11kitClient returns the path of p11-kit-client.so, or skips.
func p11kitClient(b *testing.B) string {
	b.Helper()
	need(b, "p11-kit", "p11-kit-1")
	out, err := exec.Command("pkg-config", "--variable=p11_module_path", "p11-kit-1").Output()
	if err != nil {
		skip(b, fmt.Sprintf("pkg-config p11_module_path: %v", err))
	}
	client := filepath.Join(strings.TrimSpace(string(out)), "p11-kit-client.so")
	if _, err := os.Stat(client); err != nil {
		skip(b, fmt.Sprintf("no p11-kit-client.so (apt-get install p11-kit-modules): %v", err))
	}
	return client
}

// host is a running C host (p11bench) speaking its line protocol.
type host struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *bufio.Scanner
	stderr bytes.Buffer
	out    []string
}

func startHost(b *testing.B, env []string, args ...string) *host {
	b.Helper()
	return startProgram(b, cbench(b), env, args...)
}

// startProgram starts a host program speaking p11bench's protocol.
func startProgram(b *testing.B, name string, env []string, args ...string) *host {
	b.Helper()
	if w := strings.Fields(os.Getenv("CSCTOKEN_BENCH_WRAP")); len(w) > 0 {
		// Profiling: e.g. CSCTOKEN_BENCH_WRAP="perf record -g -o /tmp/p.data --".
		args, name = append(append(w[1:], name), args...), w[0]
	}
	h := &host{cmd: exec.Command(name, args...)}
	h.cmd.Env = env
	h.cmd.Stderr = &h.stderr
	h.cmd.WaitDelay = 5 * time.Second
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		b.Fatal(err)
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	h.lines = bufio.NewScanner(stdout)
	if err := h.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return h
}

// expect reads lines up to one that starts with word and returns its
// key=value fields.
func (h *host) expect(b *testing.B, word string) fields {
	b.Helper()
	for h.lines.Scan() {
		line := h.lines.Text()
		h.out = append(h.out, line)
		if f := strings.Fields(line); len(f) > 0 && f[0] == word {
			return parseFields(f[1:])
		}
	}
	_ = h.cmd.Wait()
	b.Fatalf("%s: no %s line; output:\n%s\nstderr:\n%s", strings.Join(h.cmd.Args, " "), word,
		strings.Join(h.out, "\n"), h.stderr.String())
	return nil
}

func (h *host) send(b *testing.B) {
	b.Helper()
	if _, err := io.WriteString(h.stdin, "go\n"); err != nil {
		b.Fatal(err)
	}
}

func (h *host) wait(b *testing.B) {
	b.Helper()
	h.stdin.Close()
	for h.lines.Scan() {
		h.out = append(h.out, h.lines.Text())
	}
	if err := h.cmd.Wait(); err != nil {
		b.Fatalf("%s: %v\noutput:\n%s\nstderr:\n%s", strings.Join(h.cmd.Args, " "), err,
			strings.Join(h.out, "\n"), h.stderr.String())
	}
}

// runHost runs a C host to completion and returns its output lines.
func runHost(b *testing.B, env []string, args ...string) []string {
	b.Helper()
	h := startHost(b, env, args...)
	h.wait(b)
	return h.out
}

type fields map[string]string

func parseFields(kv []string) fields {
	f := fields{}
	for _, s := range kv {
		if k, v, ok := strings.Cut(s, "="); ok {
			f[k] = v
		}
	}
	return f
}

func (f fields) int(b *testing.B, k string) int64 {
	b.Helper()
	v, err := strconv.ParseInt(f[k], 10, 64)
	if err != nil {
		b.Fatalf("field %s=%q: %v", k, f[k], err)
	}
	return v
}

// lineFields finds the first output line starting with word.
func lineFields(out []string, word string) (fields, bool) {
	for _, line := range out {
		if f := strings.Fields(line); len(f) > 0 && f[0] == word {
			return parseFields(f[1:]), true
		}
	}
	return nil, false
}

// cpuTime is this process's user+system time (the in-process server and
// Go clients).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// childCPU is the user+system time of the waited-for children.
func childCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(v []time.Duration) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func sortDurations(v []time.Duration) { sort.Slice(v, func(i, j int) bool { return v[i] < v[j] }) }

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)) * p / 100)
	return sorted[min(i, len(sorted)-1)]
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// loadavg is /proc/loadavg's first three fields, for the record.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
