package module_test

import (
	"crypto/elliptic"
	"log/slog"
	"os"
	"testing"

	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/config"
	"github.com/csctoken/csctoken/module/fakeservice"
)

const goodPIN = "123456"

// env is one module with one fake service per slot.
type env struct {
	t     *testing.T
	m     *module.Module
	fakes []*fakeservice.Fake
	cfg   *config.Config
	opts  module.Options
}

type envOption func(*env)

func withService(s config.Service) envOption {
	return func(e *env) { e.cfg.Services = append(e.cfg.Services, s) }
}

func withOptions(fn func(*module.Options)) envOption { return func(e *env) { fn(&e.opts) } }

func withCacheDir(dir string) envOption { return func(e *env) { e.cfg.CacheDir = dir } }

func pinService(name string) config.Service {
	return config.Service{
		Name: name, URL: "https://rssp.example/" + name + "/csc/v2", Auth: config.AuthBasic,
		Username: "alice", CredentialAuth: config.CredentialAuthPIN,
		Timeout: config.DefaultTimeout, ListTimeout: config.DefaultListTimeout,
	}
}

// defaultCreds: an RSA SCAL1 credential with multisign 5, an EC P-256 SCAL1
// one and an EC P-384 SCAL2 one, all PIN-protected.
func defaultCreds(f *fakeservice.Fake) {
	f.AddRSA("rsa", 2048, 1, 5, module.AuthPIN)
	f.AddEC("ec", elliptic.P256(), 1, 1, module.AuthPIN)
	f.AddEC("ec384", elliptic.P384(), 2, 1, module.AuthPIN)
}

// newEnv builds a module; setup fills the fakes (default: defaultCreds on
// one pin-mode service). The module is initialized.
func newEnv(t *testing.T, setup func(slot int, f *fakeservice.Fake), opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, cfg: &config.Config{CacheDir: t.TempDir()}}
	e.opts = module.Options{NoBackgroundRefresh: true}
	if testing.Verbose() {
		e.opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	for _, o := range opts {
		o(e)
	}
	if len(e.cfg.Services) == 0 {
		e.cfg.Services = []config.Service{pinService("Test")}
	}
	if setup == nil {
		setup = func(_ int, f *fakeservice.Fake) { defaultCreds(f) }
	}
	for i := range e.cfg.Services {
		f := fakeservice.New(goodPIN)
		setup(i, f)
		e.fakes = append(e.fakes, f)
	}
	byName := map[string]*fakeservice.Fake{}
	for i, s := range e.cfg.Services {
		byName[s.Name] = e.fakes[i]
	}
	e.opts.LoadConfig = func() (*config.Config, error) { return e.cfg, nil }
	e.opts.NewService = func(s config.Service, _ *slog.Logger) (module.Service, error) { return byName[s.Name], nil }
	e.m = module.New(e.opts)
	if err := e.m.Initialize(module.InitArgs{}); err != nil {
		t.Fatalf("Initialize: %v", err)
	}
	t.Cleanup(func() { _ = e.m.Finalize() })
	return e
}

func (e *env) fake() *fakeservice.Fake { return e.fakes[0] }

func rv(err error) ck.Error { return ck.Error(ck.RV(err)) }

func (e *env) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) wantRV(err error, want ck.Error) {
	e.t.Helper()
	if got := rv(err); got != want {
		e.t.Fatalf("rv = %v, want %v (err %v)", got, want, err)
	}
}

func (e *env) open(slot module.SlotID, rw bool) module.SessionHandle {
	e.t.Helper()
	flags := uint(ck.CKF_SERIAL_SESSION)
	if rw {
		flags |= ck.CKF_RW_SESSION
	}
	h, err := e.m.OpenSession(slot, flags)
	e.must(err)
	return h
}

func (e *env) login(h module.SessionHandle) {
	e.t.Helper()
	e.must(e.m.Login(h, ck.CKU_USER, []byte(goodPIN)))
	e.m.WaitPreauthorized()
}

func (e *env) find(h module.SessionHandle, tmpl ...ck.Attribute) []module.ObjectHandle {
	e.t.Helper()
	e.must(e.m.FindObjectsInit(h, tmpl))
	var all []module.ObjectHandle
	for {
		got, err := e.m.FindObjects(h, 2)
		e.must(err)
		if len(got) == 0 {
			break
		}
		all = append(all, got...)
	}
	e.must(e.m.FindObjectsFinal(h))
	return all
}

func class(c uint) ck.Attribute { return ck.Attribute{Type: ck.CKA_CLASS, Value: ck.ULongBytes(c)} }

func label(s string) ck.Attribute { return ck.Attribute{Type: ck.CKA_LABEL, Value: []byte(s)} }

// key finds the one object of class c for credential id.
func (e *env) key(h module.SessionHandle, c uint, id string) module.ObjectHandle {
	e.t.Helper()
	got := e.find(h, class(c), label("Key "+id))
	if len(got) != 1 {
		e.t.Fatalf("found %d objects of class %d for %s", len(got), c, id)
	}
	return got[0]
}

func (e *env) attr(h module.SessionHandle, o module.ObjectHandle, typ uint) []byte {
	e.t.Helper()
	q := []module.AttributeRequest{{Type: typ}}
	e.must(e.m.GetAttributeValue(h, o, q))
	q[0].Buf = make([]byte, q[0].Len)
	e.must(e.m.GetAttributeValue(h, o, q))
	return q[0].Buf[:q[0].Len]
}

// sign runs SignInit + size query + Sign.
func (e *env) sign(h module.SessionHandle, mech ck.Mechanism, key module.ObjectHandle, data []byte) ([]byte, error) {
	e.t.Helper()
	if err := e.m.SignInit(h, mech, key); err != nil {
		return nil, err
	}
	n, err := e.m.Sign(h, data, nil)
	if err != nil {
		return nil, err
	}
	sig := make([]byte, n)
	n, err = e.m.Sign(h, data, sig)
	return sig[:n], err
}
