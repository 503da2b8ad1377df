//go:build unix

package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHostileFiles: a ca_file or config that is a device, a FIFO or huge
// is a config problem reported at once, never a hang; ports outside
// 1-65535 are refused.
func TestHostileFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.pem")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(big, make([]byte, MaxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	svc := func(url, ca string) string {
		return "[[service]]\nname = \"A\"\nurl = \"" + url + "\"\nauth = \"basic\"\nusername = \"u\"\nca_file = \"" + ca + "\"\n"
	}
	good := "https://rssp.example/csc/v2"
	for _, tc := range []struct {
		name, text, want string
	}{
		{"fail urandom", svc(good, "/dev/urandom"), "service[0].ca_file: /dev/urandom: not a regular file (a character device)"},
		{"fail fifo", svc(good, fifo), "not a regular file (a named pipe)"},
		{"fail huge", svc(good, big), "file too large"},
		{"fail directory", svc(good, dir), "not a regular file (a directory)"},
		{"fail port 0", svc("https://rssp.example:0/csc/v2", big), "port 0 is outside 1-65535"},
		{"fail port 65536", svc("https://rssp.example:65536/csc/v2", big), "port 65536 is outside 1-65535"},
		{"fail port 99999999", svc("https://rssp.example:99999999/csc/v2", big), "outside 1-65535"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() { _, err := Parse([]byte(tc.text), filepath.Join(dir, "csctoken.toml")); done <- err }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Parse: %v, want %q", err, tc.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Parse hangs")
			}
		})
	}
	for _, port := range []string{"1", "8443", "65535"} {
		if _, err := Parse([]byte(svc("https://rssp.example:"+port+"/csc/v2", "")), filepath.Join(dir, "ok.toml")); err != nil {
			t.Errorf("port %s: %v", port, err)
		}
	}
	// The config file itself: a FIFO is refused, not waited on.
	done := make(chan error, 1)
	go func() { _, err := Load(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("Load(FIFO): %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Load(FIFO) hangs")
	}
}
