//go:build unix

package app

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/csctoken/csctoken/rssp/ca"
	"github.com/csctoken/csctoken/rssp/tsa"
)

// TestInitModes: rssp init on an existing, open directory makes it 0700;
// the public certificates stay 0644 and the secrets 0600 under a strict
// umask.
func TestInitModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rssp")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0o077)
	_, err := Init(t.Context(), dir, InitOptions{Listen: "127.0.0.1:0"})
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{
		".":              0o700,
		tsa.CertFile:     0o644,
		ca.TLSCACertFile: 0o644,
		"ca-root.pem":    0o644,
		tsa.KeyFile:      0o600,
		"kek":            0o600,
		"rssp.toml":      0o600,
	} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s: mode %#o, want %#o", name, got, want)
		}
	}
}
