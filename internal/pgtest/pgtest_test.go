package pgtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestStart: the cluster accepts a connection on its DSN, and its
// directory is gone after the cleanup.
func TestStart(t *testing.T) {
	var dir string
	t.Run("cluster", func(t *testing.T) {
		c := Start(t)
		dir = filepath.Dir(c.Dir)
		conn, err := pgx.Connect(t.Context(), c.DSN)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer conn.Close(t.Context())
		var n int
		if err := conn.QueryRow(t.Context(), "SELECT 1 + 1").Scan(&n); err != nil || n != 2 {
			t.Fatalf("SELECT = %d, %v", n, err)
		}
	})
	if dir == "" {
		return // skipped
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", dir, err)
	}
}
