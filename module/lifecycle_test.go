package module_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/config"
	"github.com/csctoken/csctoken/module/fakeservice"
)

func TestBeforeInitialize(t *testing.T) {
	m := module.New(module.Options{})
	h := module.SessionHandle(1)
	calls := map[string]func() error{
		"GetInfo":           func() error { _, err := m.GetInfo(); return err },
		"GetSlotList":       func() error { _, err := m.GetSlotList(true); return err },
		"GetSlotInfo":       func() error { _, err := m.GetSlotInfo(0); return err },
		"GetTokenInfo":      func() error { _, err := m.GetTokenInfo(0); return err },
		"GetMechanismList":  func() error { _, err := m.GetMechanismList(0); return err },
		"GetMechanismInfo":  func() error { _, err := m.GetMechanismInfo(0, ck.CKM_ECDSA); return err },
		"InitToken":         func() error { return m.InitToken(0, nil, nil) },
		"OpenSession":       func() error { _, err := m.OpenSession(0, ck.CKF_SERIAL_SESSION); return err },
		"CloseSession":      func() error { return m.CloseSession(h) },
		"CloseAllSessions":  func() error { return m.CloseAllSessions(0) },
		"GetSessionInfo":    func() error { _, err := m.GetSessionInfo(h); return err },
		"Login":             func() error { return m.Login(h, ck.CKU_USER, []byte("1")) },
		"Logout":            func() error { return m.Logout(h) },
		"InitPIN":           func() error { return m.InitPIN(h, nil) },
		"SetPIN":            func() error { return m.SetPIN(h, nil, nil) },
		"CreateObject":      func() error { _, err := m.CreateObject(h, nil); return err },
		"CopyObject":        func() error { _, err := m.CopyObject(h, 1, nil); return err },
		"DestroyObject":     func() error { return m.DestroyObject(h, 1) },
		"GetObjectSize":     func() error { _, err := m.GetObjectSize(h, 1); return err },
		"GetAttributeValue": func() error { return m.GetAttributeValue(h, 1, nil) },
		"SetAttributeValue": func() error { return m.SetAttributeValue(h, 1, nil) },
		"FindObjectsInit":   func() error { return m.FindObjectsInit(h, nil) },
		"FindObjects":       func() error { _, err := m.FindObjects(h, 1); return err },
		"FindObjectsFinal":  func() error { return m.FindObjectsFinal(h) },
		"DigestInit":        func() error { return m.DigestInit(h, ck.Mechanism{Type: ck.CKM_SHA256}) },
		"Digest":            func() error { _, err := m.Digest(h, nil, nil); return err },
		"DigestUpdate":      func() error { return m.DigestUpdate(h, nil) },
		"DigestKey":         func() error { return m.DigestKey(h, 1) },
		"DigestFinal":       func() error { _, err := m.DigestFinal(h, nil); return err },
		"SignInit":          func() error { return m.SignInit(h, ck.Mechanism{Type: ck.CKM_ECDSA}, 1) },
		"Sign":              func() error { _, err := m.Sign(h, nil, nil); return err },
		"SignUpdate":        func() error { return m.SignUpdate(h, nil) },
		"SignFinal":         func() error { _, err := m.SignFinal(h, nil); return err },
		"VerifyInit":        func() error { return m.VerifyInit(h, ck.Mechanism{Type: ck.CKM_ECDSA}, 1) },
		"Verify":            func() error { return m.Verify(h, nil, nil) },
		"VerifyUpdate":      func() error { return m.VerifyUpdate(h, nil) },
		"VerifyFinal":       func() error { return m.VerifyFinal(h, nil) },
		"GenerateKey":       func() error { _, err := m.GenerateKey(h, nil); return err },
		"GenerateRandom":    func() error { return m.GenerateRandom(h, make([]byte, 4)) },
		"SeedRandom":        func() error { return m.SeedRandom(h, nil) },
		"GetFunctionStatus": func() error { return m.GetFunctionStatus(h) },
		"CancelFunction":    func() error { return m.CancelFunction(h) },
		"WaitForSlotEvent":  func() error { _, err := m.WaitForSlotEvent(ck.CKF_DONT_BLOCK); return err },
		"Unsupported":       m.Unsupported,
		"Finalize":          m.Finalize,
		"Refresh":           func() error { return m.Refresh(context.Background(), 0) },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			if got := rv(call()); got != ck.CKR_CRYPTOKI_NOT_INITIALIZED {
				t.Fatalf("rv = %v", got)
			}
		})
	}
}

func TestInitializeArgs(t *testing.T) {
	tests := []struct {
		name string
		args module.InitArgs
		want ck.Error
	}{
		{"ok NULL args", module.InitArgs{}, ck.CKR_OK},
		{"ok OS locking", module.InitArgs{Flags: ck.CKF_OS_LOCKING_OK}, ck.CKR_OK},
		{"ok mutex callbacks only", module.InitArgs{MutexFuncs: 4}, ck.CKR_OK},
		{"ok callbacks and OS locking", module.InitArgs{MutexFuncs: 4, Flags: ck.CKF_OS_LOCKING_OK}, ck.CKR_OK},
		{"fail some callbacks", module.InitArgs{MutexFuncs: 2}, ck.CKR_ARGUMENTS_BAD},
		{"fail reserved", module.InitArgs{ReservedNonNil: true}, ck.CKR_ARGUMENTS_BAD},
		{"ok cannot create threads (GnuTLS passes it; ignored)", module.InitArgs{Flags: ck.CKF_LIBRARY_CANT_CREATE_OS_THREADS | ck.CKF_OS_LOCKING_OK}, ck.CKR_OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := module.New(module.Options{LoadConfig: func() (*config.Config, error) { return &config.Config{}, nil }})
			if got := rv(m.Initialize(tt.args)); got != tt.want {
				t.Fatalf("rv = %v, want %v", got, tt.want)
			}
			if tt.want == ck.CKR_OK {
				if got := rv(m.Initialize(tt.args)); got != ck.CKR_CRYPTOKI_ALREADY_INITIALIZED {
					t.Fatalf("second Initialize = %v", got)
				}
				if err := m.Finalize(); err != nil {
					t.Fatal(err)
				}
				if got := rv(m.Finalize()); got != ck.CKR_CRYPTOKI_NOT_INITIALIZED {
					t.Fatalf("second Finalize = %v", got)
				}
			}
		})
	}
}

func TestConfigProblemsAndMissingConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.toml")
	text := "bogus = 1\n[[service]]\nname=\"Good\"\nurl=\"https://a/csc/v2\"\nauth=\"basic\"\nusername=\"u\"\n[[service]]\nname=\"Bad\"\n"
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	m := module.New(module.Options{LoadConfig: func() (*config.Config, error) { return config.Load(p) }})
	if err := m.Initialize(module.InitArgs{}); err != nil {
		t.Fatalf("Initialize with config problems: %v", err)
	}
	slots, err := m.GetSlotList(false)
	if err != nil || len(slots) != 1 {
		t.Fatalf("slots = %v, %v", slots, err)
	}
	_ = m.Finalize()

	m = module.New(module.Options{LoadConfig: func() (*config.Config, error) { return config.Load(filepath.Join(dir, "none.toml")) }})
	if err := m.Initialize(module.InitArgs{}); err != nil {
		t.Fatal(err)
	}
	slots, err = m.GetSlotList(true)
	if err != nil || len(slots) != 0 {
		t.Fatalf("slots = %v, %v", slots, err)
	}
	_ = m.Finalize()
}

func TestInfoSlotsTokens(t *testing.T) {
	browser := pinService("Browser")
	browser.CredentialAuth = config.CredentialAuthBrowser
	e := newEnv(t, nil, withService(pinService("Pin")), withService(browser))

	info, err := e.m.GetInfo()
	e.must(err)
	if info.CryptokiVersion.Major != 2 || !strings.HasPrefix(string(info.ManufacturerID[:]), "csctoken ") {
		t.Errorf("info = %+v", info)
	}
	slots, err := e.m.GetSlotList(true)
	e.must(err)
	if len(slots) != 2 || slots[0] != 0 || slots[1] != 1 {
		t.Fatalf("slots = %v", slots)
	}
	si, err := e.m.GetSlotInfo(1)
	e.must(err)
	if si.Flags != ck.CKF_TOKEN_PRESENT || !strings.HasPrefix(string(si.SlotDescription[:]), "Browser (rssp.example)") {
		t.Errorf("slot info = %+v", si)
	}
	_, err = e.m.GetSlotInfo(2)
	e.wantRV(err, ck.CKR_SLOT_ID_INVALID)
	_, err = e.m.GetTokenInfo(7)
	e.wantRV(err, ck.CKR_SLOT_ID_INVALID)

	base := uint(ck.CKF_TOKEN_INITIALIZED | ck.CKF_USER_PIN_INITIALIZED | ck.CKF_WRITE_PROTECTED | ck.CKF_RNG)
	tests := []struct {
		slot  module.SlotID
		label string
		flags uint
	}{
		{0, "Pin", base | ck.CKF_LOGIN_REQUIRED},
		{1, "Browser", base | ck.CKF_PROTECTED_AUTHENTICATION_PATH},
	}
	for _, tt := range tests {
		ti, err := e.m.GetTokenInfo(tt.slot)
		e.must(err)
		if got := string(ti.Label[:]); got != tt.label+strings.Repeat(" ", 32-len(tt.label)) {
			t.Errorf("label = %q", got)
		}
		if ti.Flags != tt.flags {
			t.Errorf("slot %d flags = %#x, want %#x", tt.slot, ti.Flags, tt.flags)
		}
		serial := string(ti.SerialNumber[:])
		if len(strings.Trim(serial, "0123456789abcdef")) != 0 {
			t.Errorf("serial %q is not 16 hex digits", serial)
		}
		if ti.TotalPublicMemory != ck.UnavailableInformation || ti.MaxSessionCount != ck.EffectivelyInfinite {
			t.Errorf("token info = %+v", ti)
		}
	}
	// The serial is stable: same URL and user, same serial, in a new module.
	ti0, _ := e.m.GetTokenInfo(0)
	e2 := newEnv(t, nil, withService(pinService("Pin")))
	ti1, _ := e2.m.GetTokenInfo(0)
	if ti0.SerialNumber != ti1.SerialNumber {
		t.Error("serial not stable")
	}

	// Session counts.
	h := e.open(0, true)
	e.open(0, false)
	ti, _ := e.m.GetTokenInfo(0)
	if ti.SessionCount != 2 || ti.RwSessionCount != 1 {
		t.Errorf("session counts %d/%d", ti.SessionCount, ti.RwSessionCount)
	}
	e.must(e.m.CloseSession(h))
	_, err = e.m.WaitForSlotEvent(ck.CKF_DONT_BLOCK)
	e.wantRV(err, ck.CKR_NO_EVENT)
	e.wantRV(e.m.Unsupported(), ck.CKR_FUNCTION_NOT_SUPPORTED)
}

func TestSessions(t *testing.T) {
	e := newEnv(t, nil)
	_, err := e.m.OpenSession(0, ck.CKF_RW_SESSION)
	e.wantRV(err, ck.CKR_SESSION_PARALLEL_NOT_SUPPORTED)
	_, err = e.m.OpenSession(3, ck.CKF_SERIAL_SESSION)
	e.wantRV(err, ck.CKR_SLOT_ID_INVALID)

	ro, rw := e.open(0, false), e.open(0, true)
	state := func(h module.SessionHandle) uint {
		si, err := e.m.GetSessionInfo(h)
		e.must(err)
		return si.State
	}
	if state(ro) != ck.CKS_RO_PUBLIC_SESSION || state(rw) != ck.CKS_RW_PUBLIC_SESSION {
		t.Fatal("public states")
	}
	e.login(ro)
	// Login state is per token, shared by all sessions.
	if state(ro) != ck.CKS_RO_USER_FUNCTIONS || state(rw) != ck.CKS_RW_USER_FUNCTIONS {
		t.Fatal("user states")
	}
	si, _ := e.m.GetSessionInfo(rw)
	if si.Flags != ck.CKF_SERIAL_SESSION|ck.CKF_RW_SESSION || si.SlotID != 0 {
		t.Errorf("session info %+v", si)
	}
	e.wantRV(e.m.Login(rw, ck.CKU_USER, []byte(goodPIN)), ck.CKR_USER_ALREADY_LOGGED_IN)
	e.must(e.m.Logout(rw))
	if state(ro) != ck.CKS_RO_PUBLIC_SESSION {
		t.Fatal("logout not shared")
	}
	e.wantRV(e.m.Logout(rw), ck.CKR_USER_NOT_LOGGED_IN)

	// Closing the last session logs the token out.
	e.login(ro)
	e.must(e.m.CloseSession(ro))
	e.wantRV(e.m.CloseSession(ro), ck.CKR_SESSION_HANDLE_INVALID)
	if state(rw) != ck.CKS_RW_USER_FUNCTIONS {
		t.Fatal("still one session: must stay logged in")
	}
	e.must(e.m.CloseAllSessions(0))
	_, err = e.m.GetSessionInfo(rw)
	e.wantRV(err, ck.CKR_SESSION_HANDLE_INVALID)
	h := e.open(0, false)
	if state(h) != ck.CKS_RO_PUBLIC_SESSION {
		t.Fatal("CloseAllSessions must log out")
	}
	_, err = e.m.GetSessionInfo(0)
	e.wantRV(err, ck.CKR_SESSION_HANDLE_INVALID)

	// Random numbers.
	buf := make([]byte, 32)
	e.must(e.m.GenerateRandom(h, buf))
	if bytes.Equal(buf, make([]byte, 32)) {
		t.Error("no randomness")
	}
	e.wantRV(e.m.SeedRandom(h, []byte{1}), ck.CKR_RANDOM_SEED_NOT_SUPPORTED)
	e.wantRV(e.m.GetFunctionStatus(h), ck.CKR_FUNCTION_NOT_PARALLEL)
}

func TestWriteProtected(t *testing.T) {
	e := newEnv(t, nil)
	e.must(e.m.Refresh(context.Background(), 0))
	ro, rw := e.open(0, false), e.open(0, true)
	cert := e.find(rw, class(ck.CKO_CERTIFICATE))[0]
	tokenTrue := []ck.Attribute{{Type: ck.CKA_TOKEN, Value: ck.Bool(true)}}
	tests := []struct {
		name string
		call func() error
		want ck.Error
	}{
		{"CreateObject rw", func() error { _, err := e.m.CreateObject(rw, tokenTrue); return err }, ck.CKR_TOKEN_WRITE_PROTECTED},
		{"CreateObject ro token", func() error { _, err := e.m.CreateObject(ro, tokenTrue); return err }, ck.CKR_SESSION_READ_ONLY},
		{"CreateObject ro session object", func() error { _, err := e.m.CreateObject(ro, nil); return err }, ck.CKR_TOKEN_WRITE_PROTECTED},
		{"CopyObject", func() error { _, err := e.m.CopyObject(rw, cert, nil); return err }, ck.CKR_TOKEN_WRITE_PROTECTED},
		{"DestroyObject", func() error { return e.m.DestroyObject(rw, cert) }, ck.CKR_TOKEN_WRITE_PROTECTED},
		{"DestroyObject bad handle", func() error { return e.m.DestroyObject(rw, 999999) }, ck.CKR_OBJECT_HANDLE_INVALID},
		{"SetAttributeValue", func() error { return e.m.SetAttributeValue(rw, cert, []ck.Attribute{label("x")}) }, ck.CKR_TOKEN_WRITE_PROTECTED},
		{"GenerateKey", func() error { _, err := e.m.GenerateKey(rw, nil); return err }, ck.CKR_TOKEN_WRITE_PROTECTED},
		{"InitToken", func() error { return e.m.InitToken(0, []byte("so"), []byte("l")) }, ck.CKR_TOKEN_WRITE_PROTECTED},
		{"SetPIN rw", func() error { return e.m.SetPIN(rw, []byte("a"), []byte("b")) }, ck.CKR_TOKEN_WRITE_PROTECTED},
		{"SetPIN ro", func() error { return e.m.SetPIN(ro, []byte("a"), []byte("b")) }, ck.CKR_SESSION_READ_ONLY},
		{"InitPIN", func() error { return e.m.InitPIN(rw, []byte("a")) }, ck.CKR_USER_NOT_LOGGED_IN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rv(tt.call()); got != tt.want {
				t.Fatalf("rv = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDiskCacheBeforeLogin(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, nil, withCacheDir(dir))
	h := e.open(0, false)
	if n := len(e.find(h)); n != 1 {
		t.Fatalf("before any listing: %d objects, want only the profile", n)
	}
	e.must(e.m.Refresh(context.Background(), 0))
	files, _ := filepath.Glob(filepath.Join(dir, "*.cache"))
	if len(files) != 1 {
		t.Fatalf("cache files %v", files)
	}
	st, err := os.Stat(files[0])
	e.must(err)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("cache mode %v", st.Mode())
	}
	data, _ := os.ReadFile(files[0])
	if bytes.Contains(data, []byte(goodPIN)) {
		t.Error("PIN in the cache")
	}

	// A new module, with the service unreachable, shows the cached public
	// objects before login and never touches the network for it.
	fails := func(f *fakeservice.Fake) {
		f.Hook = func(context.Context, string) error { return module.ErrUnreachable }
	}
	e3 := newEnv(t, func(_ int, f *fakeservice.Fake) { defaultCreds(f); fails(f) }, withCacheDir(dir))
	h3 := e3.open(0, false)
	certs := e3.find(h3, class(ck.CKO_CERTIFICATE))
	pubs := e3.find(h3, class(ck.CKO_PUBLIC_KEY))
	privs := e3.find(h3, class(ck.CKO_PRIVATE_KEY))
	if len(certs) != 4 || len(pubs) != 3 || len(privs) != 0 {
		t.Fatalf("cached objects: %d certs, %d public keys, %d private keys", len(certs), len(pubs), len(privs))
	}
	if n := e3.fake().Calls(fakeservice.MList); n != 0 {
		t.Fatalf("%d listings without background refresh", n)
	}
}

func TestBackgroundRefreshSingleFlight(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		defaultCreds(f)
		f.Hook = func(ctx context.Context, m string) error {
			if m == fakeservice.MList {
				started <- struct{}{}
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}
	}, withOptions(func(o *module.Options) { o.NoBackgroundRefresh = false }))
	<-started
	// Searches while the listing hangs return at once, from memory.
	h := e.open(0, false)
	for range 5 {
		e.find(h)
		_, err := e.m.GetTokenInfo(0)
		e.must(err)
	}
	done := make(chan error)
	go func() { done <- e.m.Refresh(context.Background(), 0) }()
	close(release)
	e.must(<-done)
	if n := e.fake().Calls(fakeservice.MList); n > 2 {
		t.Fatalf("%d listings; want single-flight", n)
	}
	if n := len(e.find(h, class(ck.CKO_CERTIFICATE))); n != 4 {
		t.Fatalf("%d certificates after refresh", n)
	}
}

// idleCounting is a service that keeps connections between calls.
type idleCounting struct {
	*fakeservice.Fake
	closed atomic.Int32
}

func (s *idleCounting) CloseIdleConnections() { s.closed.Add(1) }

// TestFinalizeClosesIdleConnections: C_Finalize closes the services'
// kept-alive connections, which a host that initializes again would
// otherwise leave open until their idle timeout.
func TestFinalizeClosesIdleConnections(t *testing.T) {
	f := fakeservice.New(goodPIN)
	defaultCreds(f)
	svc := &idleCounting{Fake: f}
	cfg := &config.Config{CacheDir: t.TempDir(), Services: []config.Service{pinService("Test")}}
	m := module.New(module.Options{
		NoBackgroundRefresh: true,
		LoadConfig:          func() (*config.Config, error) { return cfg, nil },
		NewService:          func(config.Service, *slog.Logger) (module.Service, error) { return svc, nil },
	})
	if err := m.Initialize(module.InitArgs{}); err != nil {
		t.Fatalf("Initialize: %v", err)
	}
	if n := svc.closed.Load(); n != 0 {
		t.Fatalf("CloseIdleConnections called %d times before Finalize", n)
	}
	if err := m.Finalize(); err != nil {
		t.Fatalf("Finalize: %v", err)
	}
	if n := svc.closed.Load(); n != 1 {
		t.Fatalf("CloseIdleConnections called %d times at Finalize, want 1", n)
	}
}
