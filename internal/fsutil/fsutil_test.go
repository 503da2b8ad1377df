package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	hasFIFO := mkfifo(t, fifo)
	for _, tc := range []struct {
		name    string
		path    string
		max     int64
		want    string
		wantErr error
	}{
		{"ok small", small, 5, "hello", nil},
		{"fail too large", small, 4, "", ErrTooLarge},
		{"fail missing", filepath.Join(dir, "nope"), 10, "", fs.ErrNotExist},
		{"fail directory", dir, 10, "", ErrNotRegular},
		{"fail endless device", "/dev/urandom", 1 << 20, "", ErrNotRegular},
		{"fail fifo", fifo, 1 << 20, "", ErrNotRegular},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if (tc.path == fifo && !hasFIFO) || (tc.path == "/dev/urandom" && runtime.GOOS == "windows") {
				t.Skip("no FIFOs")
			}
			done := make(chan struct{})
			var (
				got []byte
				err error
			)
			go func() { defer close(done); got, err = ReadFile(tc.path, tc.max) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("ReadFile hangs")
			}
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && string(got) != tc.want) {
				t.Fatalf("ReadFile = %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
			if cerr := Check(tc.path, tc.max); !errors.Is(cerr, tc.wantErr) {
				t.Errorf("Check = %v, want %v", cerr, tc.wantErr)
			}
		})
	}
}
