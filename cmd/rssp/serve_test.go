package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer written by the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeLogs: rssp serve logs its start (version, listen address,
// backend, store), reloads its TLS certificate on SIGHUP, and logs its
// shutdown on SIGTERM (the signal, the requests drained).
func TestServeLogs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rssp")
	if _, _, err := runCmd(t, "", "init", "--dir", dir, "--listen", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	var log lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run([]string{"serve", "--config", filepath.Join(dir, "rssp.toml")}, strings.NewReader(""), &log, &log)
	}()
	waitFor := func(what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(log.String(), what) {
			select {
			case err := <-done:
				t.Fatalf("serve ended: %v\n%s", err, log.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log:\n%s", what, log.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("rssp serving")
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("SIGHUP: TLS certificate reloaded")
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop on SIGTERM")
	}
	out := log.String()
	for _, want := range []string{
		"version=dev", "listen=127.0.0.1:", "backend=soft", "store=sqlite:" + filepath.Join(dir, "rssp.db"),
		`msg="rssp stopping" signal=terminated`, `msg="rssp shutting down" in_flight=0`, `msg="rssp stopped" drained=0`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the log:\n%s", want, out)
		}
	}
}
