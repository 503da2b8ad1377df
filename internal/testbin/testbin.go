// Package testbin is what the tests that drive csctoken's binaries as
// subprocesses share: building libcsctoken.so and the CLI once per test
// binary (a Go test must never load the library itself: two Go runtimes in
// one process are unsupported), skipping or failing when a tool is missing,
// and running a program with a time bound.
//
// Call Cleanup from TestMain after m.Run to remove the built files.
package testbin

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	setup    sync.Once
	root     string // the Go module root
	work     string // built binaries, for the whole test binary
	setupErr error

	mu     sync.Mutex
	builds = map[string]*build{}
)

type build struct {
	sync.Once
	path string
	err  error
}

func ensure() error {
	setup.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			setupErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root = filepath.Dir(strings.TrimSpace(string(out)))
		if work, err = os.MkdirTemp("", "csctoken-bin-"); err != nil {
			setupErr = err
			return
		}
		setupErr = trackSources()
	})
	return setupErr
}

// Root is the Go module root.
func Root(t testing.TB) string {
	t.Helper()
	if err := ensure(); err != nil {
		t.Fatal(err)
	}
	return root
}

// WorkDir is the directory that holds what this test binary built.
func WorkDir(t testing.TB) string {
	t.Helper()
	if err := ensure(); err != nil {
		t.Fatal(err)
	}
	return work
}

// Cleanup removes WorkDir; call it from TestMain after m.Run.
func Cleanup() {
	if work != "" {
		os.RemoveAll(work)
	}
}

// trackSources reads what the binaries are built from, so that go test's
// result cache (which sees only the files the test process opens) is
// invalidated when any of it changes.
func trackSources() error {
	for _, dir := range []string{"cgo", "module", "cscclient", "csc", filepath.Join("cmd", "csctoken")} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			_, err = os.ReadFile(path)
			return err
		})
		if err != nil {
			return err
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if _, err := os.ReadFile(filepath.Join(root, f)); err != nil {
			return err
		}
	}
	return nil
}

// Go runs `go build -trimpath ARGS... -o WorkDir/name PKG` (PKG is the last
// argument) once per name and test binary, and returns the output's path.
// A failed build fails every test that asks for it.
func Go(t testing.TB, name string, args ...string) string {
	t.Helper()
	dir := WorkDir(t)
	mu.Lock()
	b := builds[name]
	if b == nil {
		b = &build{}
		builds[name] = b
	}
	mu.Unlock()
	b.Do(func() {
		b.path = filepath.Join(dir, name)
		start := time.Now()
		cmd := exec.Command("go", append(append([]string{"build", "-trimpath"}, args[:len(args)-1]...), "-o", b.path, args[len(args)-1])...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, out)
			return
		}
		t.Logf("built %s in %v", name, time.Since(start).Round(time.Millisecond))
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Library builds the shipped libcsctoken.so like the Makefile.
func Library(t testing.TB) string {
	t.Helper()
	Need(t, "CSCTOKEN_REQUIRE_TOOLS", "gcc", "p11-kit-1")
	return Go(t, "libcsctoken.so", "-buildmode=c-shared", "./cgo")
}

// CLI builds the csctoken command.
func CLI(t testing.TB) string {
	t.Helper()
	return Go(t, "csctoken", "./cmd/csctoken")
}

// Need skips the test when a tool is missing, or fails it when the
// environment variable env is "1" (CI sets it). A name with a slash is a
// file that must exist; "p11-kit-1" is the pkg-config package of the
// PKCS#11 header.
func Need(t testing.TB, env string, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		var err error
		switch {
		case tool == "p11-kit-1":
			if _, err = exec.LookPath("pkg-config"); err == nil {
				err = exec.Command("pkg-config", "--exists", "p11-kit-1").Run()
			}
		case strings.Contains(tool, "/"):
			_, err = os.Stat(tool)
		default:
			_, err = exec.LookPath(tool)
		}
		if err == nil {
			continue
		}
		if os.Getenv(env) == "1" {
			t.Fatalf("%s is required (%s=1): %v", tool, env, err)
		}
		t.Skipf("%s not available (%v); set %s=1 to make this a failure", tool, err, env)
	}
}

// Result is how a program ended.
type Result struct {
	Stdout, Stderr string
	Err            error
	Took           time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("%v after %v\nstdout:\n%s\nstderr:\n%s", r.Err, r.Took.Round(time.Millisecond), r.Stdout, r.Stderr)
}

// Cmd is a program to run.
type Cmd struct {
	Name  string
	Args  []string
	Dir   string
	Env   []string
	Stdin string
	Limit time.Duration // the program is killed after it (a hang is an error)
}

// Run runs c to its end or its time limit.
func Run(c Cmd) Result {
	ctx, cancel := context.WithTimeout(context.Background(), c.Limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	cmd.Env = c.Env
	cmd.Dir = c.Dir
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdin = strings.NewReader(c.Stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String(), Err: err, Took: time.Since(start)}
	if ctx.Err() != nil {
		r.Err = fmt.Errorf("timed out after %v (hung?): %w", c.Limit, err)
	}
	return r
}

// Dirs returns the module root and WorkDir for TestMain, which has no
// testing.TB.
func Dirs() (moduleRoot, workDir string, err error) {
	if err := ensure(); err != nil {
		return "", "", err
	}
	return root, work, nil
}
