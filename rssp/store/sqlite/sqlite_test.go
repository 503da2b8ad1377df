package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
	"github.com/csctoken/csctoken/rssp/store/storetest"
)

// openTemp opens a new database in a temporary directory.
func openTemp(t testing.TB) *DB {
	t.Helper()
	d, err := Open(context.Background(), filepath.Join(t.TempDir(), "rssp.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return d
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

// sideDoor opens the database file of d apart from d, as someone with
// access to the file would.
func sideDoor(t *testing.T, d *DB) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", d.path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatalf("side door: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// sideExec runs a statement on the file behind d's back, dropping the
// append-only triggers first.
func sideExec(t *testing.T, d *DB, query string, args ...any) {
	t.Helper()
	db := sideDoor(t, d)
	for _, q := range []string{`DROP TRIGGER IF EXISTS audit_no_update`, `DROP TRIGGER IF EXISTS audit_no_delete`} {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("side door %q: %v", q, err)
		}
	}
	if _, err := db.ExecContext(t.Context(), query, args...); err != nil {
		t.Fatalf("side door %q: %v", query, err)
	}
}

func TestTamper(t *testing.T) {
	storetest.RunTamper(t, func(t *testing.T) store.Store { return openTemp(t) },
		func(t *testing.T, s store.Store, seq int64) {
			sideExec(t, s.(*DB), `UPDATE audit SET detail = 'nothing to see' WHERE seq = ?`, seq)
		})
}

// TestTamperMore covers edits the generic RunTamper cannot express.
func TestTamperMore(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		wantSeq int64
	}{
		{"fail row deleted", `DELETE FROM audit WHERE seq = 4`, 4},
		{"fail row rehashed", `UPDATE audit SET result = 'ok' WHERE seq = 4`, 0}, // hash fixed below
		{"fail time changed", `UPDATE audit SET time = time + 1 WHERE seq = 2`, 2},
		{"fail hashes changed", `UPDATE audit SET hashes = NULL WHERE seq = 3`, 3},
		{"fail rows swapped", `UPDATE audit SET seq = 100 + 11 - seq WHERE seq IN (5, 6);
			UPDATE audit SET seq = seq - 100 WHERE seq > 100`, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := openTemp(t)
			defer d.Close()
			var rows []store.AuditEvent
			for i := range 8 {
				e, err := d.AppendAudit(t.Context(), store.AuditEvent{Event: "sign", Hashes: []string{"aA==", string(rune('a' + i))},
					Result: "SVC_ERR", Detail: "x"})
				if err != nil {
					t.Fatalf("AppendAudit: %v", err)
				}
				rows = append(rows, e)
			}
			sideExec(t, d, tc.query)
			want := tc.wantSeq
			if tc.name == "fail row rehashed" {
				// Someone who recomputes the edited row's hash breaks the
				// link from the next row instead.
				e := rows[3]
				e.Result = "ok"
				sideExec(t, d, `UPDATE audit SET hash = ? WHERE seq = 4`, store.AuditHash(e.PrevHash, e))
				want = 5
			}
			_, err := store.VerifyAudit(t.Context(), d)
			var be *store.AuditBreakError
			if !errors.As(err, &be) || be.Seq != want {
				t.Fatalf("VerifyAudit = %v, want a break at row %d", err, want)
			}
		})
	}
}

func TestAppendOnlyTriggers(t *testing.T) {
	d := openTemp(t)
	defer d.Close()
	if _, err := d.AppendAudit(t.Context(), store.AuditEvent{Event: "login", Result: "ok"}); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	for _, q := range []string{`UPDATE audit SET detail = 'x'`, `DELETE FROM audit`} {
		if _, err := d.db.ExecContext(t.Context(), q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want append-only refusal", q, err)
		}
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	// A path that needs escaping in a file: URI.
	path := filepath.Join(dir, "a dir?#%", "rssp.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	d, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	u := store.User{ID: "u1", Name: "alice", PasswordHash: "h", CreatedAt: time.Unix(0, 1234567890123456789)}
	c := store.Credential{ID: "c1", UserID: "u1", KeyType: "ec-p256", CertChain: [][]byte{{1}, {2, 3}}, SCAL: 1, Multisign: 1}
	if err := d.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateCredential(ctx, c); err != nil {
		t.Fatal(err)
	}
	last, err := d.AppendAudit(ctx, store.AuditEvent{Event: "admin", Result: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file: %v", err)
	}

	d, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer d.Close()
	gotU, err := d.UserByName(ctx, "alice")
	if err != nil || !gotU.CreatedAt.Equal(u.CreatedAt) {
		t.Errorf("user after reopen = %+v, %v", gotU, err)
	}
	gotC, err := d.Credential(ctx, "c1")
	if err != nil || len(gotC.CertChain) != 2 || !bytes.Equal(gotC.CertChain[1], []byte{2, 3}) {
		t.Errorf("credential after reopen = %+v, %v", gotC, err)
	}
	next, err := d.AppendAudit(ctx, store.AuditEvent{Event: "admin", Result: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	if next.Seq != last.Seq+1 || !bytes.Equal(next.PrevHash, last.Hash) {
		t.Errorf("audit after reopen: seq %d prev %x; want seq %d prev %x", next.Seq, next.PrevHash, last.Seq+1, last.Hash)
	}
	if n, err := store.VerifyAudit(ctx, d); n != 2 || err != nil {
		t.Errorf("VerifyAudit = %d, %v", n, err)
	}
	var versions int
	ms, _ := migrations()
	if err := d.db.QueryRowContext(ctx, `SELECT count(*) FROM schema_version`).Scan(&versions); err != nil || versions != len(ms) {
		t.Errorf("schema_version rows = %d, %v; want %d (migrations applied once)", versions, err, len(ms))
	}
}

func TestFileMode(t *testing.T) {
	d := openTemp(t)
	defer d.Close()
	// Write something so the -wal and -shm files exist too.
	if _, err := d.AppendAudit(t.Context(), store.AuditEvent{Event: "login", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{d.path, d.path + "-wal", d.path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("stat: %v", err)
			continue
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s: mode %o, want 600", filepath.Base(p), got)
		}
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{"ok new file", filepath.Join(dir, "new.db"), ""},
		{"fail empty", "", "want a file path"},
		{"fail memory", ":memory:", "want a file path"},
		{"fail uri", "file:x.db?mode=memory", "want a file path"},
		{"fail missing dir", filepath.Join(dir, "no", "such", "x.db"), "no such file"},
		{"fail not a database", writeFile(t, filepath.Join(dir, "junk.db"), strings.Repeat("junk", 1000)), "not a database"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Open(t.Context(), tc.path)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if err := d.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				return
			}
			if err == nil {
				d.Close()
				t.Fatalf("Open succeeded, want error containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestNewerSchemaRefused(t *testing.T) {
	d := openTemp(t)
	path := d.path
	if _, err := d.db.ExecContext(t.Context(), `INSERT INTO schema_version (version, applied_at) VALUES (999, 0)`); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d, err := Open(t.Context(), path)
	if err == nil {
		d.Close()
		t.Fatal("Open succeeded on a newer schema")
	}
	if !strings.Contains(err.Error(), "newer than this program") {
		t.Errorf("err = %v", err)
	}
}

func TestTwoHandlesOneFile(t *testing.T) {
	// Two *DB on one file stand for two processes (rssp serve and rssp
	// admin): BEGIN IMMEDIATE and busy_timeout keep the audit chain whole.
	a := openTemp(t)
	defer a.Close()
	b, err := Open(t.Context(), a.path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	errc := make(chan error, 2)
	for _, d := range []*DB{a, b} {
		go func() {
			for range 50 {
				if _, err := d.AppendAudit(t.Context(), store.AuditEvent{Event: "sign", Result: "ok"}); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
	}
	if n, err := store.VerifyAudit(t.Context(), a); n != 100 || err != nil {
		t.Errorf("VerifyAudit = %d, %v; want 100, nil", n, err)
	}
}

func TestList(t *testing.T) {
	tests := []struct {
		name string
		in   [][]byte
	}{
		{"ok nil", nil},
		{"ok one", [][]byte{{1, 2, 3}}},
		{"ok empty element", [][]byte{{}, {0}}},
		{"ok large", [][]byte{bytes.Repeat([]byte{7}, 70000), {}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeList[[]byte](encodeList(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.in) {
				t.Fatalf("len %d, want %d", len(got), len(tc.in))
			}
			for i := range got {
				if !bytes.Equal(got[i], tc.in[i]) {
					t.Errorf("element %d differs", i)
				}
			}
		})
	}
	bad := []struct {
		name string
		b    []byte
	}{
		{"fail format", []byte{2, 1, 0}},
		{"fail zero count", []byte{1, 0}},
		{"fail truncated", []byte{1, 1, 5, 1, 2}},
		{"fail trailing", []byte{1, 1, 1, 9, 9}},
		{"fail huge count", []byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeList[[]byte](tc.b); !errors.Is(err, errBadList) {
				t.Errorf("err = %v, want errBadList", err)
			}
		})
	}
}

func TestTimeRange(t *testing.T) {
	d := openTemp(t)
	defer d.Close()
	err := d.CreateUser(t.Context(), store.User{ID: "u", Name: "u", CreatedAt: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)})
	if !errors.Is(err, errTimeRange) {
		t.Errorf("CreateUser far future: %v, want errTimeRange", err)
	}
}

func TestOpenFailureRemovesNewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if d, err := Open(ctx, path); err == nil {
		d.Close()
		t.Fatal("Open with a cancelled context succeeded")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file left behind after a failed Open: %v", err)
	}
}

// TestReleaseAllFactorLocks: a lease left by a killed process is dropped
// at the next start; a credential without one is untouched.
func TestReleaseAllFactorLocks(t *testing.T) {
	ctx := t.Context()
	d := openTemp(t)
	if err := d.CreateUser(ctx, store.User{ID: "u1", Name: "alice", PasswordHash: "h", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c1", "c2"} {
		c := store.Credential{ID: id, UserID: "u1", KeyType: "ec-p256", CertChain: [][]byte{{1}}, SCAL: 1, Multisign: 1}
		if err := d.CreateCredential(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	if _, err := d.TryFactorLock(ctx, "c1", "dead process", now, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.TryFactorLock(ctx, "c1", "next process", now, now.Add(time.Hour)); !errors.Is(err, store.ErrBusy) {
		t.Fatalf("lease held: %v, want ErrBusy", err)
	}
	n, err := d.ReleaseAllFactorLocks(ctx)
	if err != nil || n != 1 {
		t.Fatalf("ReleaseAllFactorLocks: %d, %v; want 1 released", n, err)
	}
	if _, err := d.TryFactorLock(ctx, "c1", "next process", now, now.Add(time.Minute)); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// TestSynchronous: OpenOptions' durability is in effect on every pooled
// connection (the writer's and the readers'), together with the other
// per-connection settings; anything but "full" and "normal" is refused.
func TestSynchronous(t *testing.T) {
	tests := []struct {
		name    string
		sync    string
		want    int // PRAGMA synchronous: 1 NORMAL, 2 FULL
		wantErr string
	}{
		{"ok default", "", 2, ""},
		{"ok full", "full", 2, ""},
		{"ok normal", "normal", 1, ""},
		{"fail off", "off", 0, `synchronous "off"`},
		{"fail upper case", "NORMAL", 0, `synchronous "NORMAL"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "rssp.db")
			d, err := OpenOptions(ctx, path, Options{Synchronous: tt.sync})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("OpenOptions = %v, want an error with %q", err, tt.wantErr)
				}
				if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("refused options left a file: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenOptions: %v", err)
			}
			defer d.Close()
			// A write first, so the writer's connection has been used.
			if err := d.CreateUser(ctx, store.User{ID: "u1", Name: "alice", PasswordHash: "h"}); err != nil {
				t.Fatal(err)
			}
			// Hold every connection the pool may open at once: each is a
			// distinct connection; the writer holds one of them.
			n := d.db.Stats().MaxOpenConnections
			conns := make([]*sql.Conn, 0, n)
			defer func() {
				for _, c := range conns[1:] {
					_ = c.Close()
				}
			}()
			for i := range n {
				c := d.wconn.conn
				if i > 0 {
					if c, err = d.db.Conn(ctx); err != nil {
						t.Fatalf("connection %d: %v", i, err)
					}
				}
				conns = append(conns, c)
				var sync, fk, busy int
				var mode string
				for _, p := range []struct {
					pragma string
					dest   any
				}{{"synchronous", &sync}, {"foreign_keys", &fk}, {"busy_timeout", &busy}, {"journal_mode", &mode}} {
					if err := c.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(p.dest); err != nil {
						t.Fatalf("connection %d: PRAGMA %s: %v", i, p.pragma, err)
					}
				}
				if sync != tt.want || fk != 1 || busy != int(busyTimeout.Milliseconds()) || mode != "wal" {
					t.Errorf("connection %d: synchronous=%d foreign_keys=%d busy_timeout=%d journal_mode=%s; want synchronous=%d foreign_keys=1 busy_timeout=%d journal_mode=wal",
						i, sync, fk, busy, mode, tt.want, busyTimeout.Milliseconds())
				}
			}
			if got := d.db.Stats().OpenConnections; got != n {
				t.Errorf("%d connections open, want %d", got, n)
			}
		})
	}
}

// TestStaleAuditHead: the writer's remembered last audit row (DB.head) may
// be wrong (another process appended, a transaction was rolled back); the
// append after it must then find the real last row, never break the chain.
func TestStaleAuditHead(t *testing.T) {
	tests := []struct {
		name string
		head func(rows []store.AuditEvent) auditHead
	}{
		{"ok current", func(rows []store.AuditEvent) auditHead {
			last := rows[len(rows)-1]
			return auditHead{seq: last.Seq, hash: last.Hash, ok: true}
		}},
		{"ok not the last row", func(rows []store.AuditEvent) auditHead {
			return auditHead{seq: rows[0].Seq, hash: rows[0].Hash, ok: true}
		}},
		{"ok a row rolled back", func(rows []store.AuditEvent) auditHead {
			return auditHead{seq: rows[len(rows)-1].Seq + 1, hash: make([]byte, 32), ok: true}
		}},
		{"ok the last seq with another hash", func(rows []store.AuditEvent) auditHead {
			return auditHead{seq: rows[len(rows)-1].Seq, hash: rows[0].Hash, ok: true}
		}},
		{"ok unknown", func([]store.AuditEvent) auditHead { return auditHead{} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := openTemp(t)
			defer d.Close()
			for range 3 {
				if _, err := d.AppendAudit(t.Context(), store.AuditEvent{Event: "login", Result: "ok"}); err != nil {
					t.Fatal(err)
				}
			}
			rows, err := d.AuditEvents(t.Context(), 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			d.head = tc.head(rows)
			e, err := d.AppendAudit(t.Context(), store.AuditEvent{Event: "sign", Result: "ok"})
			if err != nil {
				t.Fatal(err)
			}
			if e.Seq != 4 || !bytes.Equal(e.PrevHash, rows[2].Hash) {
				t.Errorf("appended row %d after %x, want 4 after %x", e.Seq, e.PrevHash, rows[2].Hash)
			}
			if n, err := store.VerifyAudit(t.Context(), d); n != 4 || err != nil {
				t.Errorf("VerifyAudit = %d, %v; want 4, nil", n, err)
			}
			if !d.head.ok || d.head.seq != 4 || !bytes.Equal(d.head.hash, e.Hash) {
				t.Errorf("head = %+v, want row 4", d.head)
			}
		})
	}
}
