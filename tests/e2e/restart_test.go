package e2e

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/internal/rssptest"
	"github.com/csctoken/csctoken/internal/softhsmtest"
	"github.com/csctoken/csctoken/rssp/app"
	rsspconfig "github.com/csctoken/csctoken/rssp/config"
)

// restartable is an RSSP that can be stopped and started again on the
// same address, data directory and keystore (rssptest's servers live as
// long as their test). It is rssptest.Start made of rssp/app directly.
type restartable struct {
	*server
	t    *testing.T
	cfg  rsspconfig.Config
	addr string
	logs *lockedBuffer

	app    *app.App
	cancel context.CancelFunc
	done   chan error
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startRestartable(t *testing.T, backend rssptest.Backend) *restartable {
	t.Helper()
	dir := t.TempDir()
	init := app.InitOptions{Listen: "127.0.0.1:0", Name: "csctoken e2e RSSP"}
	if backend == rssptest.PKCS11 {
		tok := softhsmtest.New(t)
		pinFile := filepath.Join(dir, "hsm-pin")
		if err := os.WriteFile(pinFile, []byte(tok.PIN+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		init.PKCS11Module, init.PKCS11Token, init.PKCS11PINFile = tok.ModulePath, tok.Label, pinFile
	}
	res, err := app.Init(context.Background(), filepath.Join(dir, "rssp"), init)
	if err != nil {
		t.Fatalf("rssp init: %v", err)
	}
	cfg, err := rsspconfig.Load(res.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Security.Argon2Time, cfg.Security.Argon2Memory = 1, 64
	r := &restartable{t: t, cfg: cfg, logs: &lockedBuffer{}}
	r.start()
	r.server = &server{URL: "https://" + r.addr + "/csc/v2", CAFile: res.TLSCA,
		DB: cfg.Path(cfg.Store.Path), Svc: r.app.Service}
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", r.logs.String())
		}
	})
	return r
}

// start opens the app and serves; after the first start, on the same
// address.
func (r *restartable) start() {
	r.t.Helper()
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.Open(context.Background(), r.cfg, log)
	if err != nil {
		r.t.Fatalf("rssp open: %v", err)
	}
	var ln net.Listener
	for range 100 { // the port may linger for a moment
		if ln, err = a.Listen(); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		a.Close()
		r.t.Fatalf("rssp listen: %v", err)
	}
	if r.addr == "" {
		r.cfg = a.Config // with the public URL of the port it got
		r.addr = ln.Addr().String()
		r.cfg.Listen = r.addr
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.app, r.cancel, r.done = a, cancel, make(chan error, 1)
	go func() { r.done <- a.Serve(ctx, ln) }()
}

// stop shuts the server down and closes its database and keystore.
func (r *restartable) stop() {
	r.t.Helper()
	if r.app == nil {
		return
	}
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		r.t.Errorf("the server did not stop")
	}
	if err := r.app.Close(); err != nil {
		r.t.Errorf("close: %v", err)
	}
	r.app = nil
}

// blackhole listens on addr and accepts connections without ever
// answering, like a server that hangs; close releases the address.
type blackhole struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func listenBlackhole(t *testing.T, addr string) *blackhole {
	t.Helper()
	b := &blackhole{}
	var err error
	for range 100 {
		if b.ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := b.ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(b.close)
	return b
}

func (b *blackhole) close() {
	b.ln.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		c.Close()
	}
	b.conns = nil
}
