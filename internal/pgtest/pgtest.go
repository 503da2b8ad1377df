// Package pgtest starts throwaway PostgreSQL clusters for tests: initdb in
// a temporary directory, the server on a free 127.0.0.1 port with its
// socket in that directory, stopped (immediate mode) and removed after the
// test (Start) or after the test package (Main and Database: one cluster
// per package, a new database per test). As root, the cluster runs as the
// unprivileged "postgres" user (initdb refuses root).
//
// When PostgreSQL's server programs are missing the test is skipped,
// unless CSCTOKEN_REQUIRE_POSTGRES=1 (set in CI), in which case it fails.
//
// Environment:
//
//	CSCTOKEN_PG_BINDIR          directory of initdb and pg_ctl (default: the newest /usr/lib/postgresql/*/bin)
//	CSCTOKEN_REQUIRE_POSTGRES=1 fail instead of skipping when PostgreSQL is missing
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables read by Start.
const (
	EnvBinDir  = "CSCTOKEN_PG_BINDIR"
	EnvRequire = "CSCTOKEN_REQUIRE_POSTGRES"
)

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	Dir  string // data directory (and socket directory)
	Port int
	// DSN connects as the superuser "postgres" to the database "postgres"
	// over TCP on 127.0.0.1 (trust authentication, no TLS).
	DSN string
}

// BinDir finds the directory of initdb and pg_ctl.
func BinDir() (string, error) {
	if d := os.Getenv(EnvBinDir); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var ok []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			ok = append(ok, d)
		}
	}
	if len(ok) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", errors.New("pgtest: no initdb (install Debian's postgresql, or set " + EnvBinDir + ")")
	}
	sort.Slice(ok, func(i, j int) bool { return version(ok[i]) < version(ok[j]) })
	return ok[len(ok)-1], nil
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start starts a cluster for t, stopped and removed by t.Cleanup.
func Start(t testing.TB) *Cluster {
	t.Helper()
	c, stop, err := start()
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return c
}

// errMissing is the error of start when PostgreSQL is not installed.
var errMissing = errors.New("pgtest: PostgreSQL is not installed")

// skipOrFail ends t for start's error err: a skip when PostgreSQL is
// missing and not required.
func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, errMissing) && os.Getenv(EnvRequire) != "1" {
		t.Skipf("%v", err)
	}
	if errors.Is(err, errMissing) {
		t.Fatalf("%v (%s=1)", err, EnvRequire)
	}
	t.Fatalf("%v", err)
}

// The cluster of Main.
var (
	shared    *Cluster
	sharedErr error
	dbSeq     atomic.Int64
)

// Main runs a test package's tests (m.Run) with one cluster for them all,
// which Database hands a fresh database of per test, and removes it
// afterwards; use it as the package's TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// A cluster start costs about two seconds; a database, a few milliseconds.
// The cluster starts before the first test, only if some test of the run
// asks for a database.
func Main(m *testing.M) int {
	code := m.Run()
	if sharedStop != nil {
		if err := sharedStop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

var (
	sharedOnce sync.Once
	sharedStop func() error
)

// Database creates a new, empty database in the cluster of Main (started
// on first use) and returns a DSN for it as the superuser; the database is
// dropped at t's cleanup. Without PostgreSQL the test is skipped, or fails
// when CSCTOKEN_REQUIRE_POSTGRES=1.
func Database(t testing.TB) string {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedStop, sharedErr = start() })
	if sharedErr != nil {
		skipOrFail(t, sharedErr)
	}
	return shared.NewDatabase(t)
}

// NewDatabase creates a new, empty database in c and returns a DSN for it
// as the superuser; the database is dropped at t's cleanup.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.DSN)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.DSN)
		if err != nil {
			t.Errorf("pgtest: connect: %v", err)
			return
		}
		defer func() { _ = conn.Close(context.Background()) }()
		if _, err := conn.Exec(ctx, `DROP DATABASE `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, name)
}

// start starts a cluster; stop stops it and removes its directory.
func start() (c *Cluster, stop func() error, err error) {
	bin, err := BinDir()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errMissing, err)
	}
	// Not t.TempDir: its parents are private to root, and the server
	// runs as postgres.
	dir, err := os.MkdirTemp("", "csctoken-pgtest-")
	if err != nil {
		return nil, nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return nil, nil, err
	}
	run := func(name string, args ...string) *exec.Cmd {
		return exec.Command(filepath.Join(bin, name), args...)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, nil, fmt.Errorf("pgtest: running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{dir, data} {
			if err := os.Chown(p, uid, gid); err != nil {
				return nil, nil, err
			}
		}
		run = func(name string, args ...string) *exec.Cmd {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(bin, name)}, args...)...)
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := withCtx(ctx, run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")).CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", port, dir)
	if out, err := withCtx(ctx, run("pg_ctl", "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "start")).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		return nil, nil, fmt.Errorf("pgtest: pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	ok = true
	stop = func() error {
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := withCtx(ctx, run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")).CombinedOutput(); err != nil {
			return fmt.Errorf("pgtest: pg_ctl stop: %v\n%s", err, out)
		}
		return nil
	}
	return &Cluster{Dir: data, Port: port,
		DSN: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)}, stop, nil
}

// withCtx makes cmd killable by ctx.
func withCtx(ctx context.Context, cmd *exec.Cmd) *exec.Cmd {
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	c.Env = cmd.Env
	return c
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
