package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

// TestMigrateLiveSADs: a version 8 database (before the trigger
// sads_used_up) holding SADs under way is migrated at Open; those SADs are
// then consumed as before: partly, to the end (then gone: ErrNotFound, as
// a SAD used up always was), and never past what they have left.
func TestMigrateLiveSADs(t *testing.T) {
	ctx := t.Context()
	d := openTemp(t)
	path := d.path
	now := time.Now()
	if err := d.CreateUser(ctx, store.User{ID: "u1", Name: "alice", PasswordHash: "h", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateCredential(ctx, store.Credential{ID: "c1", UserID: "u1", KeyType: "ec-p256", SCAL: 1, Multisign: 2}); err != nil {
		t.Fatal(err)
	}
	sad := func(name string, n int) store.SAD {
		return store.SAD{Hash: []byte(name + "-0123456789abcdef0123456789ab"), CredentialID: "c1", UserID: "u1",
			Hashes: [][]byte{}, Remaining: n, ExpiresAt: now.Add(time.Hour), CreatedAt: now}
	}
	two, one := sad("two", 2), sad("one", 1)
	for _, s := range []store.SAD{two, one} {
		if err := d.CreateSAD(ctx, s, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// Back to version 8: migration 9 only adds the trigger.
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TRIGGER sads_used_up`, `DELETE FROM schema_version WHERE version = 9`} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}

	d, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("Open a version 8 database: %v", err)
	}
	defer d.Close()
	var version, triggers int
	if err := d.db.QueryRowContext(ctx, `SELECT max(version) FROM schema_version`).Scan(&version); err != nil || version != 9 {
		t.Fatalf("schema version %d, %v; want 9", version, err)
	}
	if err := d.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name = 'sads_used_up'`).Scan(&triggers); err != nil || triggers != 1 {
		t.Fatalf("trigger sads_used_up: %d, %v", triggers, err)
	}
	steps := []struct {
		name string
		sad  store.SAD
		n    int
		want error
		left int // -1: gone
	}{
		{"fail more than left", one, 2, store.ErrExhausted, 1},
		{"ok one of two", two, 1, nil, 1},
		{"ok the last", two, 1, nil, -1},
		{"fail used up", two, 1, store.ErrNotFound, -1},
		{"ok the only one", one, 1, nil, -1},
		{"fail used up too", one, 1, store.ErrNotFound, -1},
	}
	for _, st := range steps {
		err := d.ConsumeSAD(ctx, st.sad.Hash, st.n, time.Now(), nil)
		if !errors.Is(err, st.want) || (st.want == nil) != (err == nil) {
			t.Fatalf("%s: ConsumeSAD = %v, want %v", st.name, err, st.want)
		}
		got, err := d.SAD(ctx, st.sad.Hash)
		switch {
		case st.left < 0 && !errors.Is(err, store.ErrNotFound):
			t.Fatalf("%s: SAD after = %+v, %v; want ErrNotFound", st.name, got, err)
		case st.left >= 0 && (err != nil || got.Remaining != st.left):
			t.Fatalf("%s: SAD after = %+v, %v; want %d left", st.name, got, err, st.left)
		}
	}
	var rows int
	if err := d.db.QueryRowContext(context.Background(), `SELECT count(*) FROM sads`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d SAD rows left, %v; want 0", rows, err)
	}
}
