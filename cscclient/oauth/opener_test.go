package oauth_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/csctoken/csctoken/cscclient/oauth"
)

// fakeBrowserEnv points $BROWSER at a script that records the URL it is
// given, and clears what would make xdg-open ask a desktop instead. It
// returns the file the script writes.
func fakeBrowserEnv(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" && runtime.GOOS != "freebsd" && runtime.GOOS != "openbsd" && runtime.GOOS != "netbsd" {
		t.Skipf("$BROWSER is honoured through xdg-open, which %s does not use", runtime.GOOS)
	}
	if _, err := exec.LookPath("xdg-open"); err != nil {
		t.Skip("xdg-open not installed: github.com/pkg/browser honours $BROWSER through it (apt-get install xdg-utils)")
	}
	dir := t.TempDir()
	rec := filepath.Join(dir, "opened-url")
	script := filepath.Join(dir, "fake-browser")
	body := "#!/bin/sh\nprintf '%s' \"$1\" > " + rec + ".tmp && mv " + rec + ".tmp " + rec + "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BROWSER", script)
	for _, k := range []string{"DISPLAY", "WAYLAND_DISPLAY", "XDG_CURRENT_DESKTOP", "XDG_SESSION_DESKTOP",
		"DESKTOP_SESSION", "KDE_FULL_SESSION", "GNOME_DESKTOP_SESSION_ID", "MATE_DESKTOP_SESSION_ID",
		"DBUS_SESSION_BUS_ADDRESS"} {
		t.Setenv(k, "")
	}
	return rec
}

// readFileSoon waits for path to appear and returns its content.
func readFileSoon(path string) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			return string(b), nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the fake browser was not started: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBrowserOpenerBROWSER proves that the default opener goes through
// github.com/pkg/browser, whose launcher starts $BROWSER with the URL.
func TestBrowserOpenerBROWSER(t *testing.T) {
	rec := fakeBrowserEnv(t)
	const u = "https://as.example/oauth2/authorize?client_id=c&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Ax"
	if err := (oauth.BrowserOpener{}).Open(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	if got, err := readFileSoon(rec); got != u {
		t.Fatalf("$BROWSER got %q (%v), want %q", got, err, u)
	}
}

// TestBrowserOpenerMissing: no launcher at all is reported at once.
func TestBrowserOpenerMissing(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("launchers are looked up in $PATH on Linux")
	}
	t.Setenv("PATH", t.TempDir())
	start := time.Now()
	err := (oauth.BrowserOpener{Wait: 5 * time.Second}).Open(context.Background(), "https://as.example/")
	if !errors.Is(err, exec.ErrNotFound) || time.Since(start) > 4*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

// TestDefaultOpenerFlow runs a whole login with the default opener: the
// URL reaches $BROWSER, and the "browser" (here the test) follows it.
func TestDefaultOpenerFlow(t *testing.T) {
	rec := fakeBrowserEnv(t)
	as := newFakeAS(t)
	watch := watchListeners(t)
	oc, err := oauth.New(oauth.Config{Issuer: as.issuer(), ClientID: "desktop", Timeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	page := make(chan string, 1)
	go func() {
		u, err := readFileSoon(rec)
		if err != nil {
			page <- err.Error()
			return
		}
		resp, err := http.Get(u) // follows the redirect to the loopback
		if err != nil {
			page <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		page <- string(b)
	}()
	tok, err := oc.Login(context.Background())
	if err != nil || tok.AccessToken != "access-1" {
		t.Fatalf("login: %v %v", tok, err)
	}
	if p := <-page; !strings.Contains(p, "You can close this window") {
		t.Fatalf("page:\n%s", p)
	}
	checkClosed(t, watch.last(t))
}
