package sdnotify

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNotify(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"ok path", func(t *testing.T) string { return filepath.Join(t.TempDir(), "notify") }},
		{"ok abstract", func(t *testing.T) string { return "@csctoken-sdnotify-test-" + strings.ReplaceAll(t.Name(), "/", "-") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := tc.addr(t)
			ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			t.Setenv("NOTIFY_SOCKET", addr)
			if err := Notify(Ready); err != nil {
				t.Fatal(err)
			}
			ln.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 64)
			n, err := ln.Read(buf)
			if err != nil || string(buf[:n]) != "READY=1" {
				t.Fatalf("got %q, %v", buf[:n], err)
			}
		})
	}
	t.Run("ok unset", func(t *testing.T) {
		t.Setenv("NOTIFY_SOCKET", "")
		if err := Notify(Ready); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fail vsock", func(t *testing.T) {
		t.Setenv("NOTIFY_SOCKET", "vsock:2:1234")
		if err := Notify(Ready); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("fail nobody listening", func(t *testing.T) {
		t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "none"))
		if err := Notify(Ready); err == nil {
			t.Fatal("no error")
		}
	})
}
