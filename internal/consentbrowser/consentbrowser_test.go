//go:build linux

package consentbrowser

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpen: the browser starts with its own instance and profile (user.js
// written), a second Open while the kept profile is locked gets a
// throwaway one, and CloseAll ends both at once and removes the throwaway
// profile.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "fakefox")
	argsFile := filepath.Join(dir, "args")
	// Like Firefox: lock the profile (a symlink naming our PID), then run.
	script := "#!/bin/sh\necho \"$@\" >> " + argsFile + "\nprof=$6\n[ -e \"$prof/lock\" ] || ln -s 127.0.0.1:+$$ \"$prof/lock\"\nexec sleep 60\n"
	if err := os.WriteFile(exe, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join(dir, "kept")
	o := Opener{Exe: exe, ProfileDir: kept}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := o.Open(ctx, "https://rssp.example/consent?a=1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !inUse(kept) {
		if time.Now().After(deadline) {
			t.Fatal("the fake browser never locked its profile")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := o.Open(ctx, "https://rssp.example/consent?a=2"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(kept, "user.js")); err != nil || !strings.Contains(string(b), "browser.shell.checkDefaultBrowser") {
		t.Fatalf("user.js: %v %q", err, b)
	}
	var lines []string
	for len(lines) < 2 && time.Now().Before(deadline) {
		b, _ := os.ReadFile(argsFile)
		lines = strings.Split(strings.TrimSpace(string(b)), "\n")
		time.Sleep(20 * time.Millisecond)
	}
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "--no-remote --new-instance --class "+WindowClass+" --profile "+kept+" https://rssp.example/consent?a=1") {
		t.Fatalf("browser arguments: %q", lines)
	}
	tmp := strings.Fields(lines[1])[5]
	if tmp == kept || !strings.Contains(tmp, "csctoken-consent-") {
		t.Fatalf("second consent while the profile is in use: profile %s", tmp)
	}
	mu.Lock()
	n := len(running)
	mu.Unlock()
	if n != 2 {
		t.Fatalf("%d browsers running, want 2", n)
	}
	start := time.Now()
	CloseAll(500 * time.Millisecond)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("CloseAll took %v", d)
	}
	mu.Lock()
	n = len(running)
	mu.Unlock()
	if n != 0 {
		t.Errorf("%d browsers left", n)
	}
	if _, err := os.Stat(tmp); err == nil {
		t.Errorf("throwaway profile %s left", tmp)
	}
}
