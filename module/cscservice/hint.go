package cscservice

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// browserHint says which browser the system opener tried and how to
// choose another, for the error of a browser flow that could not open
// one. On Linux xdg-open decides: in a desktop session (a display) the
// desktop's handler of https URLs, and $BROWSER only without one or
// without such a handler.
func browserHint() string {
	if runtime.GOOS != "linux" && runtime.GOOS != "freebsd" && runtime.GOOS != "openbsd" && runtime.GOOS != "netbsd" {
		return "make a browser the default one for https links, or open the URL that the module log shows"
	}
	handler := ""
	if os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != "" {
		handler = xdgHandler()
	}
	if handler != "" {
		return "xdg-open hands https URLs to " + handler + " (xdg-mime query default x-scheme-handler/https); choose a working " +
			"browser with: xdg-settings set default-web-browser NAME.desktop ($BROWSER is not used while a desktop handler exists), " +
			"or open the URL that the module log shows"
	}
	if b := os.Getenv("BROWSER"); b != "" {
		return "xdg-open ran $BROWSER (" + b + "); set $BROWSER to a working browser command, or open the URL that the module log shows"
	}
	if _, err := exec.LookPath("xdg-open"); err != nil {
		return "xdg-open is not installed (Debian: xdg-utils); install it, set $BROWSER to a browser command, or open the URL that the module log shows"
	}
	return "xdg-open found no browser (no desktop handler for https URLs, no $BROWSER); set $BROWSER to a browser command, " +
		"or open the URL that the module log shows"
}

// xdgHandler is the desktop's handler of https URLs, or "".
func xdgHandler() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "xdg-mime", "query", "default", "x-scheme-handler/https").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
