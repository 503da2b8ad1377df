package postgres

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/csctoken/csctoken/internal/pgtest"
	"github.com/csctoken/csctoken/rssp/store"
	"github.com/csctoken/csctoken/rssp/store/storetest"
)

// One PostgreSQL cluster serves every test of the package; each test gets
// a database of its own (pgtest.Database).
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// openTemp opens the store on a new database.
func openTemp(t testing.TB) *DB {
	t.Helper()
	d, err := Open(context.Background(), Config{DSN: pgtest.Database(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return d
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

func TestOAuthConformance(t *testing.T) {
	storetest.RunOAuth(t, func(t *testing.T) store.Store { return openTemp(t) })
}

// sideExec runs a statement on the database behind d's back, with the
// append-only triggers off, as someone with access to the database would.
func sideExec(t *testing.T, d *DB, query string, args ...any) {
	t.Helper()
	err := pgx.BeginFunc(t.Context(), d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(t.Context(), `ALTER TABLE audit DISABLE TRIGGER USER`); err != nil {
			return err
		}
		if _, err := tx.Exec(t.Context(), query, args...); err != nil {
			return err
		}
		_, err := tx.Exec(t.Context(), `ALTER TABLE audit ENABLE TRIGGER USER`)
		return err
	})
	if err != nil {
		t.Fatalf("side door %q: %v", query, err)
	}
}

func TestTamper(t *testing.T) {
	storetest.RunTamper(t, func(t *testing.T) store.Store { return openTemp(t) },
		func(t *testing.T, s store.Store, seq int64) {
			sideExec(t, s.(*DB), `UPDATE audit SET detail = 'nothing to see' WHERE seq = $1`, seq)
		})
}

// TestAppendOnlyTriggers: the audit table refuses UPDATE, DELETE and
// TRUNCATE.
func TestAppendOnlyTriggers(t *testing.T) {
	d := openTemp(t)
	defer d.Close()
	if _, err := d.AppendAudit(t.Context(), store.AuditEvent{Event: "login", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`UPDATE audit SET detail = 'x'`, `DELETE FROM audit`, `TRUNCATE audit`} {
		_, err := d.pool.Exec(t.Context(), q)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want the append-only refusal", q, err)
		}
	}
}

func TestPendingConformance(t *testing.T) {
	storetest.RunPending(t, func(t *testing.T) store.Store { return openTemp(t) })
}
