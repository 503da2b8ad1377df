package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/csctoken/csctoken/internal/pgtest"
)

// The PostgreSQL tests of the package share one cluster (pgtest.Database),
// started only when one of them runs.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestStoreMigrateFromSQLite: an installation made by rssp init (SQLite)
// with users, a credential and audit rows moves into PostgreSQL with rssp
// admin store migrate-from-sqlite; rssp admin then works on PostgreSQL
// (user list, audit verify, a new user), and a second copy is refused.
func TestStoreMigrateFromSQLite(t *testing.T) {
	dsn := pgtest.Database(t)
	dir := filepath.Join(t.TempDir(), "rssp")
	if _, _, err := runCmd(t, "", "init", "--dir", dir, "--listen", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	admin := func(cfg, stdin string, args ...string) (string, error) {
		t.Helper()
		out, _, err := runCmd(t, stdin, append([]string{"admin", "--config", cfg}, args...)...)
		return out, err
	}
	must := func(cfg, stdin string, args ...string) string {
		t.Helper()
		out, err := admin(cfg, stdin, args...)
		if err != nil {
			t.Fatalf("%s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	sqliteCfg := filepath.Join(dir, "rssp.toml")
	must(sqliteCfg, "a good password\n", "user", "add", "alice", "--password-stdin")
	must(sqliteCfg, "another password\n", "user", "add", "bob", "--password-stdin")
	must(sqliteCfg, "123456\n", "credential", "add", "--user", "alice", "--key", "ec-p256", "--pin-stdin")
	must(sqliteCfg, "", "user", "disable", "bob")
	before := must(sqliteCfg, "", "audit", "verify")

	// The same installation, its [store] on PostgreSQL; the password
	// comes from a file (the test cluster trusts every login).
	b, err := os.ReadFile(sqliteCfg)
	if err != nil {
		t.Fatal(err)
	}
	old := "[store]\ndriver = \"sqlite\"\npath = \"rssp.db\"\n"
	if !strings.Contains(string(b), old) {
		t.Fatalf("rssp.toml has no %q:\n%s", old, b)
	}
	if err := os.WriteFile(filepath.Join(dir, "pgpass"), []byte("unused\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pgCfg := filepath.Join(dir, "rssp-pg.toml")
	pgToml := strings.Replace(string(b), old, "[store]\ndriver = \"postgres\"\ndsn = \""+dsn+"\"\npassword_file = \"pgpass\"\n", 1)
	if err := os.WriteFile(pgCfg, []byte(pgToml), 0o600); err != nil {
		t.Fatal(err)
	}

	if _, err := admin(pgCfg, "", "store", "migrate-from-sqlite"); err == nil || !strings.Contains(err.Error(), "--from") {
		t.Errorf("without --from: %v", err)
	}
	if _, err := admin(sqliteCfg, "", "store", "migrate-from-sqlite", "--from", filepath.Join(dir, "rssp.db")); err == nil ||
		!strings.Contains(err.Error(), "postgres") {
		t.Errorf("into a SQLite store: %v", err)
	}
	out := must(pgCfg, "", "store", "migrate-from-sqlite", "--from", filepath.Join(dir, "rssp.db"))
	if !regexp.MustCompile(`(?m)^users: 2 rows$`).MatchString(out) || !regexp.MustCompile(`(?m)^credentials: 1 rows$`).MatchString(out) ||
		!strings.Contains(out, "audit chain intact") {
		t.Errorf("migrate-from-sqlite:\n%s", out)
	}
	if after := must(pgCfg, "", "audit", "verify"); after != before {
		t.Errorf("audit verify on PostgreSQL = %q, on SQLite %q", after, before)
	}
	list := must(pgCfg, "", "user", "list")
	if !regexp.MustCompile(`(?m)^alice\s+\S+\s+enabled\s+1\s`).MatchString(list) || !regexp.MustCompile(`(?m)^bob\s+\S+\s+disabled\s+0\s`).MatchString(list) {
		t.Errorf("user list on PostgreSQL:\n%s", list)
	}
	must(pgCfg, "a third password\n", "user", "add", "carol", "--password-stdin")
	if out := must(pgCfg, "", "audit", "verify"); !strings.Contains(out, "intact") || out == before {
		t.Errorf("audit verify after a new user: %q", out)
	}
	if _, err := admin(pgCfg, "", "store", "migrate-from-sqlite", "--from", filepath.Join(dir, "rssp.db")); err == nil ||
		!strings.Contains(err.Error(), "not empty") {
		t.Errorf("second copy: %v", err)
	}
}
