//go:build cgo

package p11

// Tests that need no token: a fake ctxAPI drives Open's failure paths and
// the session pool; the encoders are checked against known values.

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"math/big"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/miekg/pkcs11"
)

const fakeSlot = 7

// fakeCtx implements the session-management part of ctxAPI; any other call
// panics through the nil embedded interface.
type fakeCtx struct {
	ctxAPI

	mu        sync.Mutex
	initErr   error
	tokens    map[uint]pkcs11.TokenInfo
	openErrAt int   // the n-th OpenSession (1-based) fails with openErr
	openErr   error //
	loginErr  error
	state     uint  // what GetSessionInfo reports; 0: CKS_RW_USER_FUNCTIONS
	infoErr   error // GetSessionInfo's error
	next      pkcs11.SessionHandle
	open      map[pkcs11.SessionHandle]bool
	calls     map[string]int
	// A token with EC keys (handle → CKA_ID) that can go away: while
	// away, like SoftHSM2 whose token directory went, it keeps its
	// sessions, finds no object, refuses old object handles, cannot
	// describe itself and cannot be initialised; C_Finalize closes every
	// session.
	keys     map[pkcs11.ObjectHandle][]byte
	away     bool
	signErr  error // what C_Sign returns
	found    []pkcs11.ObjectHandle
	finding  map[pkcs11.SessionHandle]bool
	inFlight int // C_Sign calls running, to catch a C_Finalize among them
	badFinal int // C_Finalize calls made while a C_Sign ran
	signWait chan struct{}
}

func newFake() *fakeCtx {
	return &fakeCtx{
		tokens: map[uint]pkcs11.TokenInfo{
			fakeSlot: {Label: "fake-token" + strings.Repeat(" ", 22), Flags: pkcs11.CKF_TOKEN_INITIALIZED},
			8:        {Label: "", Flags: 0}, // an uninitialised token
		},
		open:    make(map[pkcs11.SessionHandle]bool),
		calls:   make(map[string]int),
		keys:    make(map[pkcs11.ObjectHandle][]byte),
		finding: make(map[pkcs11.SessionHandle]bool),
	}
}

// setAway moves the fake token away or back.
func (f *fakeCtx) setAway(away bool) { f.mu.Lock(); f.away = away; f.mu.Unlock() }

func (f *fakeCtx) FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["FindObjectsInit"]++
	if !f.open[sh] {
		return pkcs11.Error(pkcs11.CKR_SESSION_HANDLE_INVALID)
	}
	f.found = nil
	if f.away {
		return nil
	}
	var id []byte
	for _, a := range temp {
		if a.Type == pkcs11.CKA_ID {
			id = a.Value
		}
	}
	for h, kid := range f.keys {
		if id == nil || bytes.Equal(id, kid) {
			f.found = append(f.found, h)
		}
	}
	return nil
}

func (f *fakeCtx) FindObjects(sh pkcs11.SessionHandle, n int) ([]pkcs11.ObjectHandle, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.found[:min(n, len(f.found))], false, nil
}

func (f *fakeCtx) FindObjectsFinal(pkcs11.SessionHandle) error { return nil }

func (f *fakeCtx) GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.keys[o]
	if !ok || f.away {
		return nil, pkcs11.Error(pkcs11.CKR_OBJECT_HANDLE_INVALID)
	}
	var out []*pkcs11.Attribute
	for _, at := range a {
		switch at.Type {
		case pkcs11.CKA_ID:
			out = append(out, pkcs11.NewAttribute(pkcs11.CKA_ID, id))
		case pkcs11.CKA_KEY_TYPE:
			out = append(out, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC))
		}
	}
	return out, nil
}

func (f *fakeCtx) SignInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.open[sh] {
		return pkcs11.Error(pkcs11.CKR_SESSION_HANDLE_INVALID)
	}
	if _, ok := f.keys[o]; !ok || f.away {
		return pkcs11.Error(pkcs11.CKR_OBJECT_HANDLE_INVALID)
	}
	return nil
}

// Sign returns a fixed P-256 r||s (or signErr), after waiting for
// signWait when set.
func (f *fakeCtx) Sign(sh pkcs11.SessionHandle, _ []byte) ([]byte, error) {
	f.mu.Lock()
	f.calls["Sign"]++
	f.inFlight++
	wait := f.signWait
	f.mu.Unlock()
	if wait != nil {
		<-wait
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight--
	if f.signErr != nil {
		return nil, f.signErr
	}
	return bytes.Repeat([]byte{1}, 64), nil
}

func (f *fakeCtx) count(name string) { f.mu.Lock(); f.calls[name]++; f.mu.Unlock() }
func (f *fakeCtx) n(name string) int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls[name] }
func (f *fakeCtx) openSessions() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.open) }

func (f *fakeCtx) Initialize(...pkcs11.InitializeOption) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Initialize"]++
	if f.away {
		return pkcs11.Error(pkcs11.CKR_GENERAL_ERROR)
	}
	return f.initErr
}

func (f *fakeCtx) Finalize() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Finalize"]++
	if f.inFlight > 0 {
		f.badFinal++
	}
	clear(f.open)
	return nil
}

func (f *fakeCtx) Destroy()                         { f.count("Destroy") }
func (f *fakeCtx) GetSlotList(bool) ([]uint, error) { return []uint{fakeSlot, 8}, nil }
func (f *fakeCtx) GetTokenInfo(s uint) (pkcs11.TokenInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["GetTokenInfo"]++
	if f.away {
		return pkcs11.TokenInfo{}, pkcs11.Error(pkcs11.CKR_GENERAL_ERROR)
	}
	return f.tokens[s], nil
}

func (f *fakeCtx) OpenSession(slot, flags uint) (pkcs11.SessionHandle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["OpenSession"]++
	if f.calls["OpenSession"] == f.openErrAt {
		return 0, f.openErr
	}
	if slot != fakeSlot || flags&pkcs11.CKF_RW_SESSION == 0 {
		return 0, pkcs11.Error(pkcs11.CKR_ARGUMENTS_BAD)
	}
	f.next++
	f.open[f.next] = true
	return f.next, nil
}

func (f *fakeCtx) CloseSession(sh pkcs11.SessionHandle) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["CloseSession"]++
	if !f.open[sh] {
		return pkcs11.Error(pkcs11.CKR_SESSION_HANDLE_INVALID)
	}
	delete(f.open, sh)
	return nil
}

func (f *fakeCtx) Login(pkcs11.SessionHandle, uint, string) error {
	f.count("Login")
	return f.loginErr
}
func (f *fakeCtx) Logout(pkcs11.SessionHandle) error { f.count("Logout"); return nil }

func (f *fakeCtx) GetSessionInfo(sh pkcs11.SessionHandle) (pkcs11.SessionInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["GetSessionInfo"]++
	if f.infoErr != nil {
		return pkcs11.SessionInfo{}, f.infoErr
	}
	return pkcs11.SessionInfo{SlotID: fakeSlot, State: cmp.Or(f.state, pkcs11.CKS_RW_USER_FUNCTIONS)}, nil
}

// useFake makes Open load f for every module path during the test.
func useFake(t *testing.T, f *fakeCtx) Config {
	saved := loadModule
	loadModule = func(string) (ctxAPI, error) { return f, nil }
	t.Cleanup(func() { loadModule = saved })
	return Config{Module: "/fake/" + t.Name() + ".so", TokenLabel: "fake-token", PIN: "1234"}
}

func TestOpenUndo(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(*fakeCtx, *Config)
		wantErr   string
		wantCKR   pkcs11.Error
		finalize  int // C_Finalize calls, after Close if Open succeeded
		wantLogin int
		wantPool  int // 0: default size
	}{
		{"fail initialize", func(f *fakeCtx, _ *Config) { f.initErr = pkcs11.Error(pkcs11.CKR_GENERAL_ERROR) },
			"C_Initialize", pkcs11.CKR_GENERAL_ERROR, 0, 0, 0},
		// Looked for three more times, each after C_Finalize and C_Initialize.
		{"fail no such token", func(_ *fakeCtx, c *Config) { c.TokenLabel = "other" },
			`no initialised token labelled "other" (tokens present: "fake-token")`, 0, 4, 0, 0},
		{"fail third session", func(f *fakeCtx, _ *Config) {
			f.openErrAt, f.openErr = 3, pkcs11.Error(pkcs11.CKR_DEVICE_ERROR)
		}, "open session", pkcs11.CKR_DEVICE_ERROR, 1, 0, 0},
		{"fail wrong PIN", func(f *fakeCtx, _ *Config) { f.loginErr = pkcs11.Error(pkcs11.CKR_PIN_INCORRECT) },
			"wrong PIN", pkcs11.CKR_PIN_INCORRECT, 1, 1, 0},
		{"fail PIN locked", func(f *fakeCtx, _ *Config) { f.loginErr = pkcs11.Error(pkcs11.CKR_PIN_LOCKED) },
			"PIN is locked", pkcs11.CKR_PIN_LOCKED, 1, 1, 0},
		{"fail cancelled", func(_ *fakeCtx, _ *Config) {}, "context canceled", 0, 0, 0, 0},
		{"ok", func(*fakeCtx, *Config) {}, "", 0, 1, 1, 0},
		{"ok already initialised elsewhere", func(f *fakeCtx, _ *Config) {
			f.initErr = pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)
		}, "", 0, 0, 1, 0},
		{"ok already logged in", func(f *fakeCtx, _ *Config) {
			f.loginErr = pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)
		}, "", 0, 1, 1, 0},
		{"ok token limits sessions", func(f *fakeCtx, _ *Config) {
			f.openErrAt, f.openErr = 3, pkcs11.Error(pkcs11.CKR_SESSION_COUNT)
		}, "", 0, 1, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			cfg := useFake(t, f)
			tt.setup(f, &cfg)
			ctx := context.Background()
			if tt.name == "fail cancelled" {
				c, cancel := context.WithCancel(ctx)
				cancel()
				ctx = c
			}
			b, err := Open(ctx, cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				want := cmp.Or(tt.wantPool, poolSize(0, 0))
				if b.PoolSize() != want {
					t.Errorf("PoolSize = %d, want %d", b.PoolSize(), want)
				}
				if err := b.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				if f.n("Logout") != 1 {
					t.Errorf("Logout calls = %d, want 1", f.n("Logout"))
				}
			} else {
				if err == nil {
					b.Close()
					t.Fatal("Open succeeded")
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %q, want it to contain %q", err, tt.wantErr)
				}
				if tt.wantCKR != 0 && !errors.Is(err, tt.wantCKR) {
					t.Errorf("err = %v, want it to wrap %v", err, tt.wantCKR)
				}
				if f.n("Logout") != 0 {
					t.Errorf("Logout called after a failed Open")
				}
			}
			if n := f.openSessions(); n != 0 {
				t.Errorf("%d sessions left open", n)
			}
			if got := f.n("Finalize"); got != tt.finalize {
				t.Errorf("Finalize calls = %d, want %d", got, tt.finalize)
			}
			if f.n("Initialize") > 0 && f.n("Destroy") != 1 {
				t.Errorf("Destroy calls = %d, want 1", f.n("Destroy"))
			}
			if got := f.n("Login"); got != tt.wantLogin {
				t.Errorf("Login calls = %d, want %d", got, tt.wantLogin)
			}
			modules.mu.Lock()
			_, loaded := modules.m[moduleKey(cfg.Module)]
			modules.mu.Unlock()
			if loaded {
				t.Error("module still registered")
			}
		})
	}
}

// Two Backends on one module: one C_Initialize, one C_Finalize, and the
// token logged out only when the last one closes.
func TestModuleShared(t *testing.T) {
	f := newFake()
	cfg := useFake(t, f)
	ctx := context.Background()
	b1, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if f.n("Initialize") != 1 {
		t.Errorf("Initialize calls = %d, want 1", f.n("Initialize"))
	}
	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}
	if f.n("Finalize") != 0 || f.n("Logout") != 0 {
		t.Errorf("after the first Close: Finalize = %d, Logout = %d, want 0, 0", f.n("Finalize"), f.n("Logout"))
	}
	if f.openSessions() != b2.PoolSize() {
		t.Errorf("open sessions = %d, want b2's %d", f.openSessions(), b2.PoolSize())
	}
	if err := b2.Close(); err != nil {
		t.Fatal(err)
	}
	if f.n("Finalize") != 1 || f.n("Logout") != 1 || f.n("Destroy") != 1 {
		t.Errorf("after the last Close: Finalize = %d, Logout = %d, Destroy = %d, want 1 each",
			f.n("Finalize"), f.n("Logout"), f.n("Destroy"))
	}
}

func TestPoolSizeRules(t *testing.T) {
	cpu := runtime.NumCPU()
	def := max(4, 2*cpu)
	tests := []struct {
		name       string
		configured int
		tokenMax   uint
		want       int
	}{
		{"ok default, no token limit", 0, pkcs11.CK_EFFECTIVELY_INFINITE, def},
		{"ok default, limit unknown", 0, pkcs11.CK_UNAVAILABLE_INFORMATION, def},
		{"ok default, large limit", 0, 1000, def},
		{"ok default, capped by token", 0, 2, min(def, 2)},
		{"ok configured", cpu + 5, 0, cpu + 5},
		{"ok configured below NumCPU is raised", 1, 0, cpu},
		{"ok token limit wins over NumCPU", 0, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := poolSize(tt.configured, tt.tokenMax); got != tt.want {
				t.Errorf("poolSize(%d, %d) = %d, want %d", tt.configured, tt.tokenMax, got, tt.want)
			}
		})
	}
}

// openOne opens a Backend on a fake token that allows one session.
func openOne(t *testing.T, wait time.Duration) (*Backend, *fakeCtx) {
	f := newFake()
	ti := f.tokens[fakeSlot]
	ti.MaxRwSessionCount = 1
	f.tokens[fakeSlot] = ti
	cfg := useFake(t, f)
	cfg.PoolWait = wait
	b, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if b.PoolSize() != 1 {
		t.Fatalf("PoolSize = %d, want 1", b.PoolSize())
	}
	return b, f
}

// hold borrows the only session until release is closed.
func hold(t *testing.T, b *Backend) (release func(), done <-chan error) {
	held := make(chan struct{})
	rel := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- b.withSession(context.Background(), func(ctxAPI, pkcs11.SessionHandle) error {
			close(held)
			<-rel
			return nil
		})
	}()
	<-held
	return func() { close(rel) }, errc
}

func TestPoolWait(t *testing.T) {
	noop := func(ctxAPI, pkcs11.SessionHandle) error { return nil }

	t.Run("fail pool wait elapses", func(t *testing.T) {
		b, _ := openOne(t, 30*time.Millisecond)
		release, done := hold(t, b)
		defer func() { release(); <-done }()
		start := time.Now()
		err := b.withSession(context.Background(), noop)
		if !errors.Is(err, ErrPoolExhausted) {
			t.Fatalf("err = %v, want ErrPoolExhausted", err)
		}
		if d := time.Since(start); d < 30*time.Millisecond || d > 5*time.Second {
			t.Errorf("waited %v", d)
		}
	})

	t.Run("fail context deadline first", func(t *testing.T) {
		b, _ := openOne(t, time.Minute)
		release, done := hold(t, b)
		defer func() { release(); <-done }()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if err := b.withSession(ctx, noop); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
	})

	t.Run("ok session freed while waiting", func(t *testing.T) {
		b, _ := openOne(t, time.Minute)
		release, done := hold(t, b)
		go func() { time.Sleep(20 * time.Millisecond); release() }()
		if err := b.withSession(context.Background(), noop); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ok close waits for the operation in flight and wakes waiters", func(t *testing.T) {
		b, f := openOne(t, time.Minute)
		release, done := hold(t, b)
		waiter := make(chan error, 1)
		go func() { waiter <- b.withSession(context.Background(), noop) }()
		time.Sleep(20 * time.Millisecond) // let the waiter block in borrow

		closed := make(chan error, 1)
		go func() { closed <- b.Close() }()
		if err := <-waiter; !errors.Is(err, keystore.ErrClosed) {
			t.Errorf("waiter: err = %v, want ErrClosed", err)
		}
		select {
		case <-closed:
			t.Fatal("Close returned while an operation was in flight")
		case <-time.After(20 * time.Millisecond):
		}
		release()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		if f.openSessions() != 0 {
			t.Errorf("%d sessions open after Close", f.openSessions())
		}
		if err := b.withSession(context.Background(), noop); !errors.Is(err, keystore.ErrClosed) {
			t.Errorf("after Close: err = %v, want ErrClosed", err)
		}
	})

	t.Run("fail pool exhausted is keystore.ErrBusy", func(t *testing.T) {
		if !errors.Is(ErrPoolExhausted, keystore.ErrBusy) {
			t.Error("ErrPoolExhausted does not wrap keystore.ErrBusy")
		}
	})
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Module: "/m.so", TokenLabel: "t", PIN: "1"}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"ok", func(*Config) {}, ""},
		{"fail no module", func(c *Config) { c.Module = "" }, "Module"},
		{"fail no label", func(c *Config) { c.TokenLabel = "" }, "TokenLabel"},
		{"fail no PIN", func(c *Config) { c.PIN = "" }, "PIN"},
		{"fail negative pool", func(c *Config) { c.PoolSize = -1 }, "PoolSize"},
		{"fail negative wait", func(c *Config) { c.PoolWait = -time.Second }, "PoolWait"},
		{"fail negative reopen wait", func(c *Config) { c.ReopenMaxWait = -time.Second }, "ReopenMinWait"},
		{"fail negative check TTL", func(c *Config) { c.CheckTTL = -time.Second }, "CheckTTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			err := c.validate()
			if (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("validate() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestDigestInfo(t *testing.T) {
	// Prefixes from RFC 8017 §9.2, note 1.
	tests := []struct {
		hash   crypto.Hash
		prefix string
	}{
		{crypto.SHA1, "3021300906052b0e03021a05000414"},
		{crypto.SHA224, "302d300d06096086480165030402040500041c"},
		{crypto.SHA256, "3031300d060960864801650304020105000420"},
		{crypto.SHA384, "3041300d060960864801650304020205000430"},
		{crypto.SHA512, "3051300d060960864801650304020305000440"},
	}
	for _, tt := range tests {
		t.Run(tt.hash.String(), func(t *testing.T) {
			digest := bytes.Repeat([]byte{0xab}, tt.hash.Size())
			got, err := digestInfo(tt.hash, digest)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := hex.DecodeString(tt.prefix)
			want = append(want, digest...)
			if !bytes.Equal(got, want) {
				t.Errorf("digestInfo = %x\nwant          %x", got, want)
			}
		})
	}
	if _, err := digestInfo(crypto.MD5, make([]byte, 16)); !errors.Is(err, keystore.ErrInvalidDigest) {
		t.Errorf("MD5: err = %v", err)
	}
}

func TestParseECPoint(t *testing.T) {
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		k, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		point, err := k.PublicKey.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		wrapped, _ := asn1.Marshal(point)
		tests := []struct {
			name    string
			in      []byte
			wantErr bool
		}{
			{"ok DER OCTET STRING", wrapped, false},
			{"ok bare point", point, false},
			{"fail trailing data", append(bytes.Clone(wrapped), 0), true},
			{"fail garbage", []byte{1, 2, 3}, true},
			{"fail compressed point", append([]byte{2}, point[1:1+(len(point)-1)/2]...), true},
			{"fail point off the curve", append(bytes.Clone(point[:len(point)-1]), point[len(point)-1]^1), true},
		}
		for _, tt := range tests {
			t.Run(curve.Params().Name+"/"+tt.name, func(t *testing.T) {
				pub, err := parseECPoint(curve, tt.in)
				if tt.wantErr {
					if err == nil {
						t.Fatal("no error")
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !pub.Equal(&k.PublicKey) {
					t.Fatal("wrong key")
				}
			})
		}
	}
}

func TestECDSADER(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	digest := bytes.Repeat([]byte{1}, 32)
	r, s, err := ecdsa.Sign(rand.Reader, k, digest)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 64)
	r.FillBytes(raw[:32])
	s.FillBytes(raw[32:])
	der, err := ecdsaDER(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(&k.PublicKey, digest, der) {
		t.Fatal("converted signature does not verify")
	}
	// Leading zero bytes in r survive as a shorter INTEGER.
	small := make([]byte, 64)
	small[31], small[63] = 5, 6
	der, _ = ecdsaDER(small)
	var sig struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &sig); err != nil || sig.R.Int64() != 5 || sig.S.Int64() != 6 {
		t.Fatalf("round trip: %v %v", sig, err)
	}
	for _, bad := range [][]byte{nil, make([]byte, 63)} {
		if _, err := ecdsaDER(bad); err == nil {
			t.Errorf("ecdsaDER(%d bytes) succeeded", len(bad))
		}
	}
}

func TestPSSSaltLength(t *testing.T) {
	tests := []struct {
		name    string
		salt    int
		hash    crypto.Hash
		bits    int
		want    int
		wantErr bool
	}{
		{"ok equals hash", rsa.PSSSaltLengthEqualsHash, crypto.SHA256, 2048, 32, false},
		{"ok auto is the maximum", rsa.PSSSaltLengthAuto, crypto.SHA256, 2048, 256 - 32 - 2, false},
		{"ok auto, modulus one bit over", rsa.PSSSaltLengthAuto, crypto.SHA512, 2049, 256 - 64 - 2, false}, // emLen = ceil((2049-1)/8)
		{"ok explicit", 20, crypto.SHA384, 3072, 20, false},
		{"ok explicit maximum", 256 - 64 - 2, crypto.SHA512, 2048, 190, false},
		{"fail too long", 256 - 64 - 1, crypto.SHA512, 2048, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pssSaltLength(&rsa.PSSOptions{SaltLength: tt.salt, Hash: tt.hash}, tt.hash, tt.bits)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("pssSaltLength = %d, %v; want %d, err %v", got, err, tt.want, tt.wantErr)
			}
			if err != nil && !errors.Is(err, keystore.ErrInvalidDigest) {
				t.Fatalf("err %v does not wrap ErrInvalidDigest", err)
			}
		})
	}
}

// TestCheck: the readiness check passes on a logged-in session, logs in
// again once when the token forgot the login, and fails when the token
// stays logged out, errs, or the backend is closed; PoolStats counts the
// sessions.
func TestCheck(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(*fakeCtx)
		wantErr   error
		wantLogin int // Login calls after Open's
	}{
		{"ok logged in", func(*fakeCtx) {}, nil, 0},
		{"ok read-only user session", func(f *fakeCtx) { f.state = pkcs11.CKS_RO_USER_FUNCTIONS }, nil, 0},
		{"fail logged out and login does not stick", func(f *fakeCtx) { f.state = pkcs11.CKS_RW_PUBLIC_SESSION },
			pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN), 1},
		{"fail token gone", func(f *fakeCtx) { f.infoErr = pkcs11.Error(pkcs11.CKR_DEVICE_REMOVED) },
			pkcs11.Error(pkcs11.CKR_DEVICE_REMOVED), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			cfg := useFake(t, f)
			b, err := Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			logins := f.n("Login")
			tt.setup(f)
			err = b.Check(context.Background())
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Check = %v, want %v", err, tt.wantErr)
			}
			if got := f.n("Login") - logins; got != tt.wantLogin {
				t.Errorf("Login calls during Check = %d, want %d", got, tt.wantLogin)
			}
			st := b.PoolStats()
			if st.Size != b.PoolSize() || st.InUse != 0 || st.Waits != 0 || st.Timeouts != 0 {
				t.Errorf("PoolStats = %+v, want %d sessions, none in use, no waits", st, b.PoolSize())
			}
		})
	}
	t.Run("fail closed", func(t *testing.T) {
		b, err := Open(context.Background(), useFake(t, newFake()))
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
		if err := b.Check(context.Background()); !errors.Is(err, keystore.ErrClosed) {
			t.Errorf("Check after Close = %v, want ErrClosed", err)
		}
	})
}
