package cscservice

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBrowserHint: the advice names what xdg-open would have used: the
// desktop's https handler in a desktop session ($BROWSER is then not
// used), else $BROWSER, else how to choose one.
func TestBrowserHint(t *testing.T) {
	bin := t.TempDir()
	xdgMime := filepath.Join(bin, "xdg-mime")
	if err := os.WriteFile(xdgMime, []byte("#!/bin/sh\necho firefox-esr.desktop\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "xdg-open"), []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, display, browser string
		want                   []string
	}{
		{"desktop handler", ":0", "/usr/bin/lynx", []string{"firefox-esr.desktop", "xdg-settings set default-web-browser", "$BROWSER is not used"}},
		{"no desktop, $BROWSER", "", "/opt/mybrowser %s", []string{"xdg-open ran $BROWSER (/opt/mybrowser %s)", "set $BROWSER to a working browser"}},
		{"nothing", "", "", []string{"no desktop handler", "set $BROWSER to a browser command"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PATH", bin)
			t.Setenv("DISPLAY", tt.display)
			t.Setenv("WAYLAND_DISPLAY", "")
			t.Setenv("BROWSER", tt.browser)
			got := browserHint()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("hint %q lacks %q", got, w)
				}
			}
		})
	}
}
