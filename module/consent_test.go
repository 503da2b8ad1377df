package module_test

import (
	"context"
	"crypto/elliptic"
	"testing"
	"time"

	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/ck"
	"github.com/csctoken/csctoken/module/config"
	"github.com/csctoken/csctoken/module/fakeservice"
)

// TestSignWait: for a host that cannot wait for a person (SignWait), a
// SCAL1 signature whose consent is slower answers CKR_FUNCTION_CANCELED
// at once while the consent goes on; the retry after the approval signs
// without a second consent, and the batch serves the next signatures. A
// SCAL2 consent is waited for, bounded by the host's handshake limit.
// C_Finalize ends a pending consent.
func TestSignWait(t *testing.T) {
	svc := pinService("Browser")
	svc.CredentialAuth = config.CredentialAuthBrowser
	approve := make(chan struct{})
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		f.AddEC("ec1", elliptic.P256(), 1, 5, module.AuthPIN)
		f.AddEC("ec2", elliptic.P256(), 2, 1, module.AuthPIN)
		f.Hook = func(ctx context.Context, method string) error {
			if method != fakeservice.MBrowser {
				return nil
			}
			select { // the user, on the consent page
			case <-approve:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}, withService(svc), withOptions(func(o *module.Options) {
		o.SignWait = 100 * time.Millisecond
		o.HandshakeLimit = 300 * time.Millisecond
	}))
	e.must(e.m.Refresh(context.Background(), 0))
	h := e.open(0, false)
	key := e.key(h, ck.CKO_PRIVATE_KEY, "ec1")
	sign := func() error {
		_, err := e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, key, []byte("x"))
		return err
	}
	start := time.Now()
	e.wantRV(sign(), ck.CKR_FUNCTION_CANCELED)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("C_Sign waited %v for the consent", d)
	}
	e.wantRV(sign(), ck.CKR_FUNCTION_CANCELED) // still waiting: the same page
	// csctoken status sees the page waiting.
	notes, err := module.ConsentNotes(e.cfg.CacheDir, svc, time.Now())
	if err != nil || len(notes) != 1 || notes[0].State != "waiting" || notes[0].Credential != "ec1" || notes[0].Signatures != 5 {
		t.Fatalf("consent notes while waiting: %+v, %v", notes, err)
	}
	if n := e.fake().Calls(fakeservice.MBrowser); n != 1 {
		t.Fatalf("consent pages opened: %d, want 1", n)
	}
	close(approve)
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := sign()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the retry after the approval: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if notes, err := module.ConsentNotes(e.cfg.CacheDir, svc, time.Now()); err != nil || len(notes) != 0 {
		t.Fatalf("consent notes after the retry signed: %+v, %v", notes, err)
	}
	for range 3 {
		e.must(sign())
	}
	if n := e.fake().Calls(fakeservice.MBrowser); n != 1 {
		t.Fatalf("consent pages: %d, want 1 for the batch", n)
	}
	if r := e.fake().AuthorizeRequests()[0]; r.NumSignatures != 5 || len(r.Hashes) != 0 {
		t.Fatalf("batch request %+v", r)
	}

	// SCAL2: bound to the hash, waited for (here approved at once).
	_, err = e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, e.key(h, ck.CKO_PRIVATE_KEY, "ec2"), []byte("y"))
	e.must(err)
}

// TestSignWaitFinalize: C_Finalize stops a consent going on in the
// background, and declining answers the retry with CKR_FUNCTION_CANCELED.
func TestSignWaitFinalize(t *testing.T) {
	svc := pinService("Browser")
	svc.CredentialAuth = config.CredentialAuthBrowser
	stopped := make(chan struct{})
	e := newEnv(t, func(_ int, f *fakeservice.Fake) {
		f.AddEC("ec1", elliptic.P256(), 1, 5, module.AuthPIN)
		f.Hook = func(ctx context.Context, method string) error {
			if method != fakeservice.MBrowser {
				return nil
			}
			<-ctx.Done()
			close(stopped)
			return ctx.Err()
		}
	}, withService(svc), withOptions(func(o *module.Options) { o.SignWait = 50 * time.Millisecond }))
	e.must(e.m.Refresh(context.Background(), 0))
	h := e.open(0, false)
	_, err := e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, e.key(h, ck.CKO_PRIVATE_KEY, "ec1"), []byte("x"))
	e.wantRV(err, ck.CKR_FUNCTION_CANCELED)
	e.must(e.m.Finalize())
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("C_Finalize did not stop the consent")
	}
}
