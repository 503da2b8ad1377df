package module_test

import (
	"testing"

	"github.com/csctoken/csctoken/module"
	"github.com/csctoken/csctoken/module/ck"
)

// TestOperationLifecycle checks PKCS#11 2.40 §5.2 and §5.10-5.12 on the
// operation state: C_Digest, C_DigestFinal, C_Sign, C_SignFinal, C_Verify
// and C_VerifyFinal end the active operation unless they answer a length
// query or CKR_BUFFER_TOO_SMALL; an error of an Update call ends it; a
// single-part call after an Update, or a multi-part call after a
// single-part one began, is CKR_OPERATION_ACTIVE and ends it. Each row is
// a sequence of calls on one session; after the last one the operation
// must be over (next Final: CKR_OPERATION_NOT_INITIALIZED) or, for the
// rows marked keep, still active.
func TestOperationLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	h := e.open(0, false)
	e.login(h)
	priv := e.key(h, ck.CKO_PRIVATE_KEY, "ec")
	pub := e.key(h, ck.CKO_PUBLIC_KEY, "ec")
	msg := []byte("lifecycle")
	sigBuf := func() []byte { return make([]byte, 64) }
	digestBuf := func() []byte { return make([]byte, 32) }
	var goodSig []byte

	type step struct {
		name string
		call func() error
		want ck.Error
	}
	n := func(_ int, err error) error { return err }
	digestInit := step{"DigestInit", func() error { return e.m.DigestInit(h, ck.Mechanism{Type: ck.CKM_SHA256}) }, 0}
	signInit := step{"SignInit", func() error { return e.m.SignInit(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, priv) }, 0}
	verifyInit := step{"VerifyInit", func() error { return e.m.VerifyInit(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA256}, pub) }, 0}
	digestQuery := step{"Digest(NULL)", func() error { return n(e.m.Digest(h, msg, nil)) }, 0}
	digestSmall := step{"Digest(small)", func() error { return n(e.m.Digest(h, msg, make([]byte, 1))) }, ck.CKR_BUFFER_TOO_SMALL}
	digestUpdate := step{"DigestUpdate", func() error { return e.m.DigestUpdate(h, msg) }, 0}
	signQuery := step{"Sign(NULL)", func() error { return n(e.m.Sign(h, msg, nil)) }, 0}
	signSmall := step{"Sign(small)", func() error { return n(e.m.Sign(h, msg, make([]byte, 1))) }, ck.CKR_BUFFER_TOO_SMALL}
	signUpdate := step{"SignUpdate", func() error { return e.m.SignUpdate(h, msg) }, 0}
	verifyUpdate := step{"VerifyUpdate", func() error { return e.m.VerifyUpdate(h, msg) }, 0}
	active := func(s step) step { s.want = ck.CKR_OPERATION_ACTIVE; return s }
	ok := func(s step) step { s.want = 0; return s }

	digestFinal := func() error { return n(e.m.DigestFinal(h, digestBuf())) }
	signFinal := func() error { return n(e.m.SignFinal(h, sigBuf())) }
	verifyFinal := func() error { return e.m.VerifyFinal(h, goodSig) }

	// A signature to verify.
	e.must(signInit.call())
	sig := sigBuf()
	k, err := e.m.Sign(h, msg, sig)
	e.must(err)
	goodSig = sig[:k]

	tests := []struct {
		name  string
		steps []step
		probe func() error
		keep  bool // the operation is still active after the steps
	}{
		// Single-part after Update.
		{"Digest after DigestUpdate", []step{digestInit, digestUpdate, active(step{"Digest", func() error { return n(e.m.Digest(h, msg, digestBuf())) }, 0})}, digestFinal, false},
		{"Sign after SignUpdate", []step{signInit, signUpdate, active(step{"Sign", func() error { return n(e.m.Sign(h, msg, sigBuf())) }, 0})}, signFinal, false},
		{"Verify after VerifyUpdate", []step{verifyInit, verifyUpdate, active(step{"Verify", func() error { return e.m.Verify(h, msg, goodSig) }, 0})}, verifyFinal, false},
		// Multi-part after a single-part call began the operation.
		{"DigestFinal after Digest length query", []step{digestInit, digestQuery, active(step{"DigestFinal", digestFinal, 0})}, digestFinal, false},
		{"DigestFinal(NULL) after Digest length query", []step{digestInit, digestQuery, active(step{"DigestFinal(NULL)", func() error { return n(e.m.DigestFinal(h, nil)) }, 0})}, digestFinal, false},
		{"DigestUpdate after Digest too small", []step{digestInit, digestSmall, active(digestUpdate)}, digestFinal, false},
		{"DigestKey after Digest length query", []step{digestInit, digestQuery, active(step{"DigestKey", func() error { return e.m.DigestKey(h, priv) }, 0})}, digestFinal, false},
		{"SignFinal after Sign length query", []step{signInit, signQuery, active(step{"SignFinal", signFinal, 0})}, signFinal, false},
		{"SignUpdate after Sign too small", []step{signInit, signSmall, active(signUpdate)}, signFinal, false},
		// Length queries and CKR_BUFFER_TOO_SMALL keep the operation.
		{"Digest length query keeps", []step{digestInit, digestQuery, digestSmall, digestQuery}, func() error { return n(e.m.Digest(h, msg, digestBuf())) }, true},
		{"DigestFinal length query keeps", []step{digestInit, digestUpdate, ok(step{"DigestFinal(NULL)", func() error { return n(e.m.DigestFinal(h, nil)) }, 0}), {"DigestFinal(small)", func() error { return n(e.m.DigestFinal(h, make([]byte, 1))) }, ck.CKR_BUFFER_TOO_SMALL}}, digestFinal, true},
		{"Sign length query keeps", []step{signInit, signQuery, signSmall}, func() error { return n(e.m.Sign(h, msg, sigBuf())) }, true},
		{"SignFinal length query keeps", []step{signInit, signUpdate, ok(step{"SignFinal(NULL)", func() error { return n(e.m.SignFinal(h, nil)) }, 0})}, signFinal, true},
		// Errors end the operation.
		{"Verify with a bad signature", []step{verifyInit, {"Verify(bad)", func() error { return e.m.Verify(h, msg, make([]byte, 64)) }, ck.CKR_SIGNATURE_INVALID}}, verifyFinal, false},
		{"VerifyFinal with a short signature", []step{verifyInit, verifyUpdate, {"VerifyFinal(short)", func() error { return e.m.VerifyFinal(h, make([]byte, 3)) }, ck.CKR_SIGNATURE_LEN_RANGE}}, verifyFinal, false},
		{"DigestKey failure", []step{digestInit, digestUpdate, {"DigestKey", func() error { return e.m.DigestKey(h, priv) }, ck.CKR_KEY_INDIGESTIBLE}}, digestFinal, false},
		{"Sign with CKM_ECDSA and a bad hash length", []step{{"SignInit(ECDSA)", func() error { return e.m.SignInit(h, ck.Mechanism{Type: ck.CKM_ECDSA}, priv) }, 0}, {"Sign(33 bytes)", func() error { return n(e.m.Sign(h, make([]byte, 33), sigBuf())) }, ck.CKR_DATA_LEN_RANGE}}, signFinal, false},
		// The C layer's hook: bad arguments and *Init(NULL) end them.
		{"EndOperation(CKF_DIGEST)", []step{digestInit, digestUpdate, {"EndOperation", func() error { return e.m.EndOperation(h, ck.CKF_DIGEST) }, 0}}, digestFinal, false},
		{"EndOperation(CKF_SIGN)", []step{signInit, signQuery, {"EndOperation", func() error { return e.m.EndOperation(h, ck.CKF_SIGN) }, 0}}, signFinal, false},
		{"EndOperation(CKF_VERIFY)", []step{verifyInit, {"EndOperation", func() error { return e.m.EndOperation(h, ck.CKF_VERIFY) }, 0}}, verifyFinal, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, s := range tt.steps {
				if got := rv(s.call()); got != s.want {
					t.Fatalf("%s: rv = %v, want %v", s.name, got, s.want)
				}
			}
			got := rv(tt.probe())
			switch {
			case tt.keep && got == ck.CKR_OPERATION_NOT_INITIALIZED:
				t.Fatalf("the operation ended (next call: %v)", got)
			case !tt.keep && got != ck.CKR_OPERATION_NOT_INITIALIZED:
				t.Fatalf("the operation is still active (next call: %v)", got)
			}
			// Nothing is left for the next row.
			_ = e.m.EndOperation(h, ck.CKF_SIGN|ck.CKF_VERIFY|ck.CKF_DIGEST)
		})
	}
	e.wantRV(e.m.EndOperation(module.SessionHandle(9999), ck.CKF_SIGN), ck.CKR_SESSION_HANDLE_INVALID)
}

// TestLoginSO: the token has no security officer; C_Login(CKU_SO)
// answers as PKCS#11 says for an SO login first, then "no SO"
// (CKR_PIN_LOCKED).
func TestLoginSO(t *testing.T) {
	tests := []struct {
		name     string
		ro       bool // a read-only session is open too
		loggedIn bool
		want     ck.Error
	}{
		{"fail read-only session open", true, false, ck.CKR_SESSION_READ_ONLY_EXISTS},
		{"fail read-only session open, user logged in", true, true, ck.CKR_SESSION_READ_ONLY_EXISTS},
		{"fail user logged in", false, true, ck.CKR_USER_ANOTHER_ALREADY_LOGGED_IN},
		{"fail no SO", false, false, ck.CKR_PIN_LOCKED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			h := e.open(0, true)
			if tt.ro {
				e.open(0, false)
			}
			if tt.loggedIn {
				e.login(h)
			}
			e.wantRV(e.m.Login(h, ck.CKU_SO, []byte("so-pin")), tt.want)
			if tt.loggedIn {
				info, err := e.m.GetSessionInfo(h)
				e.must(err)
				if info.State != ck.CKS_RW_USER_FUNCTIONS {
					t.Fatalf("session state %d after a refused SO login", info.State)
				}
			}
		})
	}
}

// TestPINWiped: the token keeps the PIN in a byte slice of its own, wiped
// at C_Logout and at C_Finalize (the PIN the caller passed is the
// caller's: cgo wipes it after C_Login).
func TestPINWiped(t *testing.T) {
	for _, end := range []string{"Logout", "Finalize"} {
		t.Run(end, func(t *testing.T) {
			e := newEnv(t, nil)
			h := e.open(0, false)
			pin := []byte(goodPIN)
			e.must(e.m.Login(h, ck.CKU_USER, pin))
			e.m.WaitPreauthorized()
			clear(pin) // what cgo does after C_Login
			kept := e.m.TokenPIN(0)
			if string(kept) != goodPIN {
				t.Fatalf("the token's PIN is %q after the caller wiped its own", kept)
			}
			// A signature still authorizes with it.
			if _, err := e.sign(h, ck.Mechanism{Type: ck.CKM_ECDSA_SHA384}, e.key(h, ck.CKO_PRIVATE_KEY, "ec384"), []byte("x")); err != nil {
				t.Fatal(err)
			}
			if end == "Logout" {
				e.must(e.m.Logout(h))
			} else {
				e.must(e.m.Finalize())
			}
			for _, b := range kept {
				if b != 0 {
					t.Fatalf("the PIN is not wiped after %s: %q", end, kept)
				}
			}
		})
	}
}

// TestAuthorizeRequestCarriesCredential: the module sends what it knows
// of the credential (the PIN's authentication object, the key's label),
// so the adapter needs no state of its own.
func TestAuthorizeRequestCarriesCredential(t *testing.T) {
	e := newEnv(t, nil)
	h := e.open(0, false)
	e.login(h)
	for _, r := range e.fake().AuthorizeRequests() {
		c := e.fake().Cred(r.CredentialID)
		if r.PINID != c.PINID || r.KeyLabel != c.Description || string(r.PIN) != goodPIN {
			t.Errorf("request for %s: PINID %q KeyLabel %q, want %q %q", r.CredentialID, r.PINID, r.KeyLabel, c.PINID, c.Description)
		}
	}
}
