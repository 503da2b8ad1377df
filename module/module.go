// Package module is the pure-Go heart of libcsctoken.so: slots, tokens,
// sessions, objects, login state and the signing state machine of a
// PKCS#11 token backed by CSC remote signing services. It needs neither cgo
// nor a server: it reaches each service through the small Service
// interface, which the CSC client satisfies and tests fake.
//
// The methods of Module map one to one onto the PKCS#11 functions
// (Initialize ↔ C_Initialize, Sign ↔ C_Sign, ...). Every error they return
// carries a ck.Error, so the C layer returns ck.RV(err). Conventions:
//
//   - An output buffer argument ([]byte) is nil when the C pointer is NULL
//     (a length query) and otherwise is the caller's buffer of the length
//     the caller gave; the returned int is the length to store in the
//     *pulXxxLen argument, also together with CKR_BUFFER_TOO_SMALL.
//   - Fixed-width strings in the info structs are already space-padded
//     byte arrays (ck.PadString).
//   - Nothing here ever does network I/O in GetSlotList, GetTokenInfo,
//     GetSessionInfo or the FindObjects functions; listings refresh in the
//     background, single-flight, with a TTL (the age of the cached listing
//     counts: a fresh cache means no listing at all), and at login when
//     the token has no listing yet.
//
// Concurrency: all methods are safe to call from many threads at once.
// There is no global lock around network calls: sessions sign in parallel.
// Finalize cancels every network call in flight and returns at once, but
// for consent pages still open: it gives them FinalizeWait to tell the
// service they were abandoned.
// A panic inside a method is recovered, logged and returned as
// CKR_GENERAL_ERROR.
//
// Usage (what the C layer and the csctoken CLI do):
//
//	m := module.New(module.Options{NewService: adapter})
//	_ = m.Initialize(module.InitArgs{})
//	slots, _ := m.GetSlotList(true)
//	h, _ := m.OpenSession(slots[0], ck.CKF_SERIAL_SESSION)
//	_ = m.Login(h, ck.CKU_USER, []byte("1234"))
//	_ = m.FindObjectsInit(h, []ck.Attribute{{Type: ck.CKA_CLASS, Value: ck.ULongBytes(ck.CKO_PRIVATE_KEY)}})
//	keys, _ := m.FindObjects(h, 10)
//	_ = m.FindObjectsFinal(h)
//	_ = m.SignInit(h, ck.Mechanism{Type: ck.CKM_SHA256_RSA_PKCS}, keys[0])
//	n, _ := m.Sign(h, data, nil) // length query, no remote call
//	sig := make([]byte, n)
//	n, err := m.Sign(h, data, sig)
package module

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/config"
)

// EnvLog names the environment variable that turns the module log on.
const EnvLog = "CSCTOKEN_LOG"

// Identity of the library.
var (
	LibraryVersion  = ck.Version{Major: 0, Minor: 1}
	ManufacturerID  = "csctoken"
	LibraryDesc     = "csctoken CSC remote signing"
	CryptokiVersion = ck.Version{Major: 2, Minor: 40}
)

// SlotID is a CK_SLOT_ID. Slot IDs are the services' positions in the
// config file (0, 1, ...), stable as long as the file is.
type SlotID uint

// Options configure a Module. The zero value works (no services).
type Options struct {
	// LoadConfig returns the configuration; nil means config.LoadDefault.
	// It is called by every Initialize. A config with problems still
	// yields slots for its valid services; the problems are logged.
	LoadConfig func() (*config.Config, error)
	// NewService builds the Service of one [[service]] table. Nil, or an
	// error from it, leaves the slot without a service: cached objects are
	// shown, network operations answer CKR_DEVICE_ERROR.
	NewService func(svc config.Service, log *slog.Logger) (Service, error)
	// Logger receives the module log. Nil means: a file named by
	// $CSCTOKEN_LOG or the config's `log`, else nothing.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ListingTTL is how old a listing (or the cached one) may get before
	// Initialize, Login or a search triggers a background refresh; 0 means
	// 5 minutes.
	ListingTTL time.Duration
	// PreauthCap caps how many signatures one SCAL1 pre-authorization
	// covers (besides the credential's multisign, which the server
	// enforces, as it does the SAD's lifetime); 0 means 100.
	PreauthCap int
	// InteractiveTimeout bounds browser logins and consent pages; 0 means
	// 5 minutes.
	InteractiveTimeout time.Duration
	// SignWait, when not zero, is how long C_Sign waits for the consent
	// page of a SCAL1 batch (browser mode) before it answers
	// CKR_FUNCTION_CANCELED (ErrConsentPending); the consent goes on in
	// the background until the interactive timeout or C_Finalize, and the
	// credential's next signature takes what the user approved without a
	// second page. For hosts whose connections wait on C_Sign (Firefox:
	// hostapp.Host.SignWait); zero waits for the consent.
	SignWait time.Duration
	// HandshakeLimit, when not zero, is how long the host waits for a TLS
	// handshake (Firefox: 30 s): a consent bound to one hash (SCAL2) is
	// not waited for longer, and a slower one is logged as likely lost.
	HandshakeLimit time.Duration
	// FirstListingWait bounds how long Initialize waits for the listing of
	// a token that has no cached listing yet (the first run after
	// `csctoken login`): without it a program that lists objects right
	// away sees an empty token. Zero: no wait. With a cache, Initialize
	// never waits. The C library sets 3 s.
	FirstListingWait time.Duration
	// NoBackgroundRefresh disables the listing refresh at Initialize and
	// the TTL-driven ones (tests, the CLI); Login then lists every time.
	NoBackgroundRefresh bool
	// RemoteOnCaller runs the remote part of C_Sign on the calling
	// goroutine rather than on a worker goroutine: for services whose
	// client does its I/O on the calling goroutine without hand-offs
	// (cscclient.WithCallerIO), which the C library sets where that works.
	RemoteOnCaller bool
}

// InitArgs is CK_C_INITIALIZE_ARGS as Go values. The zero value stands for
// pInitArgs == NULL.
type InitArgs struct {
	Flags uint
	// MutexFuncs counts the non-NULL mutex callbacks (0 or 4 are legal).
	MutexFuncs int
	// ReservedNonNil is pReserved != NULL.
	ReservedNonNil bool
}

// Module is one instance of the PKCS#11 library.
type Module struct {
	opts Options

	mu sync.RWMutex
	st *state // nil when not initialized
}

// state is everything one Initialize..Finalize cycle owns.
type state struct {
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger
	closer io.Closer
	opts   *Options
	tokens []*token

	objSeq atomic.Uint64 // object handles, unique in the module

	// flows are the consent pages running in the background; Finalize
	// gives them FinalizeWait to tell the service they were abandoned.
	flows sync.WaitGroup

	mu       sync.Mutex // guards sessions and sessSeq
	sessions map[SessionHandle]*session
	sessSeq  SessionHandle
}

// New returns a Module; nothing happens until Initialize.
func New(opts Options) *Module {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ListingTTL == 0 {
		opts.ListingTTL = 5 * time.Minute
	}
	if opts.PreauthCap <= 0 {
		opts.PreauthCap = 100
	}
	if opts.InteractiveTimeout == 0 {
		opts.InteractiveTimeout = 5 * time.Minute
	}
	return &Module{opts: opts}
}

var discard = slog.New(slog.DiscardHandler)

// logger returns the current log or a discarding one.
func (m *Module) logger() *slog.Logger {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.st != nil {
		return m.st.log
	}
	if m.opts.Logger != nil {
		return m.opts.Logger
	}
	return discard
}

// state returns the initialized state or CKR_CRYPTOKI_NOT_INITIALIZED.
func (m *Module) state() (*state, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.st == nil {
		return nil, ck.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	return m.st, nil
}

// finish is deferred by every exported method: it recovers panics and
// turns the error into one that carries a ck.Error.
func (m *Module) finish(op string, errp *error) {
	if r := recover(); r != nil {
		m.logger().Error("panic recovered", "op", op, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*errp = wrapRV(ck.CKR_GENERAL_ERROR, fmt.Errorf("panic in %s", op))
		return
	}
	err := *errp
	if err == nil {
		return
	}
	var ce *ckErr
	if !errors.As(err, &ce) {
		rv := toCK(err)
		if _, bare := err.(ck.Error); !bare {
			err = wrapRV(rv, err)
		}
		*errp = err
	}
	rv := toCK(err)
	lvl := slog.LevelDebug
	switch rv {
	case ck.CKR_FUNCTION_FAILED, ck.CKR_DEVICE_ERROR, ck.CKR_GENERAL_ERROR:
		lvl = slog.LevelWarn
	}
	m.logger().Log(context.Background(), lvl, "call failed", "op", op, "rv", rv.Name(), "err", err.Error())
}

// Initialize is C_Initialize. It loads the config and the on-disk caches
// and starts background listings of the tokens whose cached listing is
// missing or older than the TTL; it never waits on the network (but for
// FirstListingWait, for tokens without a cached listing).
func (m *Module) Initialize(args InitArgs) (err error) {
	defer m.finish("Initialize", &err)
	if args.ReservedNonNil {
		return ck.CKR_ARGUMENTS_BAD
	}
	if args.MutexFuncs != 0 && args.MutexFuncs != 4 {
		return ck.CKR_ARGUMENTS_BAD
	}
	// CKF_LIBRARY_CANT_CREATE_OS_THREADS is accepted and ignored. The Go
	// runtime has its threads from the moment the library is loaded, so
	// refusing here would protect nothing; and GnuTLS (p11tool and every
	// GnuTLS program, through p11-kit) always passes the flag, so refusing
	// it (CKR_NEED_TO_CREATE_THREADS) locks those programs out. Hosts that
	// truly forbid threads use the out-of-process route (p11-kit server).
	// With or without CKF_OS_LOCKING_OK, and with or without application
	// mutex callbacks, the module uses Go's own locks, which are correct
	// under any native threading.

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st != nil {
		return ck.CKR_CRYPTOKI_ALREADY_INITIALIZED
	}

	load := m.opts.LoadConfig
	if load == nil {
		load = config.LoadDefault
	}
	cfg, cfgErr := load()
	if cfg == nil {
		cfg = &config.Config{}
	}
	log, closer := m.openLog(cfg)
	if cfgErr != nil {
		log.Error("configuration problems; invalid services have no slot", "config", cfg.Path, "err", cfgErr.Error())
	}

	ctx, cancel := context.WithCancel(context.Background())
	st := &state{
		ctx: ctx, cancel: cancel, log: log, closer: closer, opts: &m.opts,
		sessions: map[SessionHandle]*session{},
	}
	cacheDir := cfg.CacheDir
	if cacheDir == "" {
		if d, err := os.UserCacheDir(); err == nil {
			cacheDir = filepath.Join(d, "csctoken")
		}
	}
	for i, sc := range cfg.Services {
		t := newToken(st, SlotID(i), sc, cacheDir)
		if m.opts.NewService != nil {
			svc, err := m.opts.NewService(sc, log.With("service", sc.Name))
			if err != nil {
				log.Error("service unusable", "service", sc.Name, "err", err.Error())
			} else {
				t.svc = svc
			}
		}
		t.loadCache()
		st.tokens = append(st.tokens, t)
	}
	m.st = st
	log.Info("initialized", "config", cfg.Path, "slots", len(st.tokens))
	if !m.opts.NoBackgroundRefresh {
		// A token lists in the background unless its cached listing is
		// younger than the TTL: the cache is shared by every process of
		// the user, so most programs start with a fresh one and spend no
		// request (nor CPU) on a listing before their first signature.
		for _, t := range st.tokens {
			t.maybeRefresh()
		}
		if m.opts.FirstListingWait > 0 {
			st.awaitFirstListings(m.opts.FirstListingWait)
		}
	}
	return nil
}

// awaitFirstListings waits, in parallel and at most wait (or a token's
// list_timeout if shorter), for the tokens never listed before.
func (st *state) awaitFirstListings(wait time.Duration) {
	var wg sync.WaitGroup
	for _, t := range st.tokens {
		t.mu.Lock()
		never := t.listedAt.IsZero() && t.svc != nil
		t.mu.Unlock()
		if !never {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(st.ctx, min(wait, t.cfg.ListTimeout))
			defer cancel()
			_ = t.refresh(ctx) // joins the background listing (single-flight)
		}()
	}
	wg.Wait()
}

// openLog picks the module log: Options.Logger, else $CSCTOKEN_LOG, else
// the config's `log`; off by default. Never logs PINs, tokens or SADs.
func (m *Module) openLog(cfg *config.Config) (*slog.Logger, io.Closer) {
	if m.opts.Logger != nil {
		return m.opts.Logger, nil
	}
	path := os.Getenv(EnvLog)
	if path == "" {
		path = cfg.Log
	}
	if path == "" {
		return discard, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return discard, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return discard, nil
	}
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})).
		With("pid", os.Getpid()), f
}

// FinalizeWait bounds how long Finalize waits for the consent pages in
// flight to report themselves abandoned to the service.
const FinalizeWait = 2 * time.Second

// idleCloser is a Service that keeps connections open between calls.
type idleCloser interface{ CloseIdleConnections() }

// Finalize is C_Finalize: cancels every call in flight, closes every
// session and returns without waiting on the network.
func (m *Module) Finalize() (err error) {
	defer m.finish("Finalize", &err)
	m.mu.Lock()
	st := m.st
	m.st = nil
	m.mu.Unlock()
	if st == nil {
		return ck.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	st.cancel()
	// A consent page still waiting for the user is told to say the
	// request was abandoned (a call bounded by the OAuth client): the host
	// may exit as soon as C_Finalize returns.
	flows := make(chan struct{})
	go func() { st.flows.Wait(); close(flows) }()
	select {
	case <-flows:
	case <-time.After(FinalizeWait):
		st.log.Info("finalize: a consent page flow did not end in time", "waited", FinalizeWait.String())
	}
	for _, t := range st.tokens {
		t.logout() // wipes the PIN
		t.removeConsentNote()
		// The service's kept-alive connections close now, not when their
		// idle timeout ends: a host that initializes the library again gets
		// new services, and these would sit open until then.
		if c, ok := t.svc.(idleCloser); ok {
			c.CloseIdleConnections()
		}
	}
	st.log.Info("finalized")
	if st.closer != nil {
		_ = st.closer.Close()
	}
	return nil
}

// Initialized reports whether Initialize has run without Finalize.
func (m *Module) Initialized() bool {
	_, err := m.state()
	return err == nil
}
