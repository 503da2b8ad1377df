package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/csctoken/csctoken/rssp/store"
)

// version1Rows fills a database of schema version 1 the way the program of
// that version would have: a user, a credential, a token, a SAD and two
// chained audit rows.
func version1Rows(t *testing.T, pool *pgxpool.Pool) (store.AuditEvent, store.AuditEvent) {
	t.Helper()
	ctx := t.Context()
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)
	e1 := store.AuditEvent{Seq: 1, Time: t0, Event: "login", UserID: "u1", Hashes: []string{"aGFzaA=="}, Result: "ok",
		PrevHash: store.GenesisHash[:]}
	e1.Hash = store.AuditHash(e1.PrevHash, e1)
	e2 := store.AuditEvent{Seq: 2, Time: t0.Add(time.Second), Event: "sign", UserID: "u1", CredentialID: "c1", Result: "ok",
		PrevHash: e1.Hash}
	e2.Hash = store.AuditHash(e2.PrevHash, e2)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO users (id, name, password_hash, disabled, created_at) VALUES ('u1', 'alice', '$argon2id$x', false, $1)`,
			[]any{t0.UnixNano()}},
		{`INSERT INTO credentials (id, user_id, description, key_type, backend, key_ref, public_key, cert_chain, scal,
			multisign, auth_mode, pin_hash, otp_type, otp_sealed, pin_failures, locked, created_at, oob)
			VALUES ('c1', 'u1', 'key', 'ec-p256', 'soft', '\x01', '\x02', ARRAY['\x03'::bytea], 2, 5, 'explicit',
			'$argon2id$pin', 'totp', '\x04', 2, false, $1, false)`, []any{t0.UnixNano()}},
		{`INSERT INTO tokens (hash, kind, user_id, client_id, scope, family, expires_at) VALUES ('\xaa', 'refresh', 'u1', '', 'service', 'f', $1)`,
			[]any{t0.Add(time.Hour).UnixNano()}},
		{`INSERT INTO sads (hash, credential_id, user_id, hash_algo, remaining, expires_at) VALUES ('\xbb', 'c1', 'u1', '', 2, $1)`,
			[]any{t0.Add(time.Hour).UnixNano()}},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	for _, e := range []store.AuditEvent{e1, e2} {
		if _, err := pool.Exec(ctx, `INSERT INTO audit (`+auditCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			e.Seq, e.Time.UnixNano(), e.Event, e.UserID, e.CredentialID, e.ClientAddr, list(e.Hashes), e.Result, e.Detail,
			e.PrevHash, e.Hash); err != nil {
			t.Fatal(err)
		}
	}
	return e1, e2
}

// TestUpgradeFromVersion1: a database made and filled by schema version 1
// opens with this program, which brings it to the current version and
// reads and extends what was there.
func TestUpgradeFromVersion1(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	dsn := openTemp(t).dropSchema(t) // a new database, empty
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := migrateTo(t.Context(), pool, ms[:1]); err != nil {
		t.Fatalf("creating version 1: %v", err)
	}
	version1Rows(t, pool)

	d, err := Open(t.Context(), Config{DSN: dsn})
	if err != nil {
		t.Fatalf("Open of a version 1 database: %v", err)
	}
	defer d.Close()
	if v, err := d.SchemaVersion(t.Context()); err != nil || v != len(ms) {
		t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, len(ms))
	}
	c, err := d.Credential(t.Context(), "c1")
	if err != nil || c.PINFailures != 2 || c.UserID != "u1" || len(c.CertChain) != 1 {
		t.Errorf("Credential = %+v, %v", c, err)
	}
	if err := d.ConsumeSAD(t.Context(), []byte{0xbb}, 1, time.Date(2025, 6, 1, 12, 1, 0, 0, time.UTC),
		&store.AuditEvent{Event: "sign", UserID: "u1", CredentialID: "c1", Result: "ok"}); err != nil {
		t.Errorf("ConsumeSAD: %v", err)
	}
	if err := d.RotateToken(t.Context(), []byte{0xaa}, nil); err != nil {
		t.Errorf("RotateToken: %v", err)
	}
	if n, err := store.VerifyAudit(t.Context(), d); err != nil || n != 3 {
		t.Errorf("VerifyAudit = %d, %v; want 3 rows", n, err)
	}
}

// dropSchema closes d and empties its database; it returns the DSN.
func (d *DB) dropSchema(t *testing.T) string {
	t.Helper()
	dsn := d.pool.Config().ConnString()
	for _, q := range []string{`DROP SCHEMA public CASCADE`, `CREATE SCHEMA public`} {
		if _, err := d.pool.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	d.Close()
	return dsn
}

// TestNewerSchemaRefused: a database migrated by a newer program is not
// touched.
func TestNewerSchemaRefused(t *testing.T) {
	d := openTemp(t)
	dsn := d.pool.Config().ConnString()
	if _, err := d.pool.Exec(t.Context(), `INSERT INTO schema_version (version, applied_at) VALUES (999, 0)`); err != nil {
		t.Fatal(err)
	}
	d.Close()
	_, err := Open(t.Context(), Config{DSN: dsn})
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open = %v, want a refusal of the newer schema", err)
	}
}

// envHelperDSN makes the test binary a process that opens the store once
// (TestHelperOpen) for TestConcurrentMigration.
const envHelperDSN = "CSCTOKEN_TEST_PG_OPEN_DSN"

func TestHelperOpen(t *testing.T) {
	dsn := os.Getenv(envHelperDSN)
	if dsn == "" {
		t.Skip("a helper process of TestConcurrentMigration")
	}
	d, err := Open(context.Background(), Config{DSN: dsn})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	d.Close()
}

// TestConcurrentMigration: processes opening one new database together
// (nodes starting at once) all succeed, and the migrations ran once.
func TestConcurrentMigration(t *testing.T) {
	if os.Getenv(envHelperDSN) != "" {
		t.Skip("helper")
	}
	dsn := openTemp(t).dropSchema(t)
	const procs = 4
	var wg sync.WaitGroup
	errs := make([]error, procs)
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperOpen$", "-test.count=1")
			cmd.Env = append(os.Environ(), envHelperDSN+"="+dsn)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("process %d: %v\n%s", i, err, out)
			}
		}()
	}
	// And goroutines of this process, each with its own pool.
	for range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := Open(t.Context(), Config{DSN: dsn})
			if err != nil {
				t.Errorf("Open: %v", err)
				return
			}
			d.Close()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ms, _ := migrations()
	var rows, max int
	if err := pool.QueryRow(t.Context(), `SELECT count(*), max(version) FROM schema_version`).Scan(&rows, &max); err != nil {
		t.Fatal(err)
	}
	if rows != len(ms) || max != len(ms) {
		t.Errorf("schema_version: %d rows up to %d, want %d (each migration once)", rows, max, len(ms))
	}
}

// TestSecretsNotInErrors: an error opening the store does not show the
// password, from the DSN or from Config.Password.
func TestSecretsNotInErrors(t *testing.T) {
	dsn := pgtest0(t)
	tests := []struct {
		name string
		c    Config
	}{
		{"url", Config{DSN: strings.Replace(dsn, "postgres@", "nobody:s3cretPW@", 1)}},
		{"key value", Config{DSN: "host=127.0.0.1 port=1 user=x password='s3cretPW' dbname=x connect_timeout=2"}},
		{"config", Config{DSN: strings.Replace(dsn, "postgres@", "nobody@", 1), Password: "s3cretPW"}},
		{"bad dsn", Config{DSN: "postgres://x:s3cretPW@[bad/db"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(t.Context(), tt.c)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if strings.Contains(err.Error(), "s3cretPW") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// pgtest0 returns a DSN of a new database.
func pgtest0(t *testing.T) string {
	d := openTemp(t)
	dsn := d.pool.Config().ConnString()
	d.Close()
	return dsn
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:pw@h:5432/db?sslmode=disable": "postgres://u:xxxxx@h:5432/db?sslmode=disable",
		"postgres://u@h/db":                         "postgres://u@h/db",
		"postgresql://h/db?password=pw":             "postgresql://h/db?password=xxxxx",
		"host=h user=u password=pw dbname=d":        "host=h user=u password=xxxxx dbname=d",
		"host=h password = 'p w\\'x' dbname=d":      "host=h password = xxxxx dbname=d",
		"postgres://u:pw@[bad":                      "(unparsable DSN)",
		// sslpassword: the passphrase of the client's TLS key.
		"postgres://u@h/db?sslpassword=pw":   "postgres://u@h/db?sslpassword=xxxxx",
		"host=h sslpassword=pw dbname=d":     "host=h sslpassword=xxxxx dbname=d",
		"host=h password=pw sslpassword=pw2": "host=h password=xxxxx sslpassword=xxxxx",
	} {
		if got := RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
	// A DSN pgx cannot parse: the error says why, and no password.
	for _, dsn := range []string{"postgres://u:s3cret@h:badport/db", "host=h password=s3cret port=abc", "host=h sslpassword=s3cret connect_timeout=x"} {
		_, err := Open(t.Context(), Config{DSN: dsn})
		if err == nil || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "%!") {
			t.Errorf("Open(%q): %v", RedactDSN(dsn), err)
		}
	}
}
