package authserver_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/authserver"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/service/servicetest"
	"github.com/csctoken/csctoken/rssp/store"
)

const (
	rpOrigin = "https://localhost:8443"
	rpID     = "localhost"
)

// softKey is a software FIDO2 authenticator holding one ES256 credential:
// it answers navigator.credentials.create and get as a browser would
// hand the answer to the page (the JSON the pages post).
type softKey struct {
	t       *testing.T
	priv    *ecdsa.PrivateKey
	id      []byte
	counter uint32
	uv      bool   // sets the user verified flag
	origin  string // of clientDataJSON
	rpID    string
}

func newSoftKey(t *testing.T) *softKey {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 32)
	_, _ = rand.Read(id)
	return &softKey{t: t, priv: priv, id: id, uv: true, origin: rpOrigin, rpID: rpID}
}

var b64u = base64.RawURLEncoding

func (k *softKey) clientData(typ string, options []byte) []byte {
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(options, &o); err != nil {
		k.t.Fatalf("options: %v", err)
	}
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": o.PublicKey.Challenge, "origin": k.origin, "crossOrigin": false})
	return b
}

func (k *softKey) authData(attested []byte) []byte {
	h := sha256.Sum256([]byte(k.rpID))
	flags := byte(0x01) // user present
	if k.uv {
		flags |= 0x04
	}
	if attested != nil {
		flags |= 0x40
	}
	out := append(h[:], flags, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(out[33:], k.counter)
	return append(out, attested...)
}

// create answers a registration.
func (k *softKey) create(options []byte) []byte {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		k.t.Fatal(err)
	}
	point, err := k.priv.PublicKey.Bytes() // 04 || X || Y
	if err != nil {
		k.t.Fatal(err)
	}
	cose, err := em.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: point[1:33], -3: point[33:65]})
	if err != nil {
		k.t.Fatal(err)
	}
	attested := append(make([]byte, 16), byte(len(k.id)>>8), byte(len(k.id)))
	attested = append(append(attested, k.id...), cose...)
	att, err := em.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": k.authData(attested)})
	if err != nil {
		k.t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"id": b64u.EncodeToString(k.id), "rawId": b64u.EncodeToString(k.id),
		"type": "public-key", "clientExtensionResults": map[string]any{},
		"response": map[string]any{"clientDataJSON": b64u.EncodeToString(k.clientData("webauthn.create", options)),
			"attestationObject": b64u.EncodeToString(att), "transports": []string{"usb"}}})
	return b
}

// get answers an assertion, the counter advanced first.
func (k *softKey) get(options []byte) []byte {
	k.counter++
	cd := k.clientData("webauthn.get", options)
	ad := k.authData(nil)
	h := sha256.Sum256(cd)
	signed := sha256.Sum256(append(append([]byte{}, ad...), h[:]...)) // ES256: ECDSA over SHA-256
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, signed[:])
	if err != nil {
		k.t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"id": b64u.EncodeToString(k.id), "rawId": b64u.EncodeToString(k.id),
		"type": "public-key", "clientExtensionResults": map[string]any{},
		"response": map[string]any{"clientDataJSON": b64u.EncodeToString(cd), "authenticatorData": b64u.EncodeToString(ad),
			"signature": b64u.EncodeToString(sig)}})
	return b
}

// register registers k for the user on a logged-in session.
func (f *fixture) register(t *testing.T, userID, name string, k *softKey) {
	t.Helper()
	session, _, err := f.as.NewSession(t.Context(), userID)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := f.as.BeginRegistration(t.Context(), session, userID, name)
	if err != nil {
		t.Fatalf("BeginRegistration: %v", err)
	}
	if _, err := f.as.FinishRegistration(t.Context(), session, userID, k.create(opts)); err != nil {
		t.Fatalf("FinishRegistration: %v", err)
	}
}

func lastAudit(t *testing.T, f *fixture, event string) store.AuditEvent {
	t.Helper()
	evs, err := f.Store.AuditEvents(t.Context(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Event == event {
			return evs[i]
		}
	}
	t.Fatalf("no audit row %q", event)
	return store.AuditEvent{}
}

// TestSecurityKeyLogin: a user with a security key logs in with password
// and key; the protocol's refusals each leave the session logged out.
func TestSecurityKeyLogin(t *testing.T) {
	f := newFixture(t)
	if err := f.as.SetRelyingParty("", "test", rpOrigin); err != nil {
		t.Fatal(err)
	}
	alices, bobs := newSoftKey(t), newSoftKey(t)
	f.register(t, f.alice.ID, "alice's key", alices)
	f.register(t, f.bob.ID, "bob's key", bobs)

	t.Run("fail the same name twice", func(t *testing.T) {
		session, _, _ := f.as.NewSession(t.Context(), f.alice.ID)
		_, err := f.as.BeginRegistration(t.Context(), session, f.alice.ID, "alice's key")
		want(t, err, service.ErrInvalidRequest, "already")
	})

	login := func(t *testing.T) authserver.LoginStep {
		t.Helper()
		step, err := f.as.Login(t.Context(), "", "alice", password)
		if err != nil || step.KeyOptions == nil {
			t.Fatalf("Login: %v, options %s", err, step.KeyOptions)
		}
		return step
	}
	t.Run("ok password and key", func(t *testing.T) {
		step := login(t)
		if bs, _ := f.as.Session(t.Context(), step.Session); bs.UserID != "" {
			t.Fatal("logged in before the key")
		}
		v, _, k, err := f.as.FinishKeyLogin(t.Context(), step.Session, alices.get(step.KeyOptions))
		if err != nil || k.Name != "alice's key" {
			t.Fatalf("FinishKeyLogin: %v (key %q)", err, k.Name)
		}
		if bs, err := f.as.Session(t.Context(), v); err != nil || bs.UserID != f.alice.ID {
			t.Fatalf("session %+v, %v", bs, err)
		}
		if a := lastAudit(t, f, "fido login"); a.Result != "ok" || !strings.Contains(a.Detail, `"alice's key"`) {
			t.Errorf("audit %+v", a)
		}
	})

	for _, tc := range []struct {
		name   string
		answer func(opts []byte) []byte
		desc   string
		result string // audit result; "" when no assertion was checked
	}{
		{"fail key of another user", bobs.get, "not one of yours", "access_denied"},
		{"fail another origin", func(o []byte) []byte {
			alices.origin = "https://evil.example"
			defer func() { alices.origin = rpOrigin }()
			return alices.get(o)
		}, "not accepted", "access_denied"},
		{"fail another relying party", func(o []byte) []byte {
			alices.rpID = "example.com"
			defer func() { alices.rpID = rpID }()
			return alices.get(o)
		}, "not accepted", "access_denied"},
		{"fail another challenge", func([]byte) []byte {
			return alices.get([]byte(`{"publicKey":{"challenge":"` + b64u.EncodeToString(make([]byte, 32)) + `"}}`))
		}, "not accepted", "access_denied"},
		{"fail bad signature", func(o []byte) []byte {
			other := newSoftKey(t)
			other.id, other.counter = alices.id, alices.counter
			alices.counter++
			return other.get(o)
		}, "not accepted", "access_denied"},
		{"fail counter goes back", func(o []byte) []byte {
			alices.counter = 0 // the stored counter is 1 (one login)
			return alices.get(o)
		}, "cloned", "cloned_authenticator"},
		{"fail garbage", func([]byte) []byte { return []byte(`{"id":"x"}`) }, "not valid", "access_denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			step := login(t)
			_, _, _, err := f.as.FinishKeyLogin(t.Context(), step.Session, tc.answer(step.KeyOptions))
			want(t, err, service.ErrAccessDenied, tc.desc)
			if bs, _ := f.as.Session(t.Context(), step.Session); bs.UserID != "" {
				t.Error("a refused key logged the session in")
			}
			if a := lastAudit(t, f, "fido login"); a.Result != tc.result {
				t.Errorf("audit result %q, want %q", a.Result, tc.result)
			}
		})
	}
	alices.counter += 10 // past the clone's counter

	t.Run("fail replayed answer", func(t *testing.T) {
		step := login(t)
		answer := alices.get(step.KeyOptions)
		if _, _, _, err := f.as.FinishKeyLogin(t.Context(), step.Session, answer); err != nil {
			t.Fatal(err)
		}
		_, _, _, err := f.as.FinishKeyLogin(t.Context(), step.Session, answer)
		want(t, err, service.ErrAccessDenied, "")
	})

	t.Run("fail required key not registered", func(t *testing.T) {
		if err := f.Store.SetUserRequireFIDO(t.Context(), f.bob.ID, true); err != nil {
			t.Fatal(err)
		}
		keys, _ := f.as.SecurityKeys(t.Context(), f.bob.ID)
		if err := f.as.RemoveSecurityKey(t.Context(), f.alice.ID, hex.EncodeToString(keys[0].ID)); err == nil {
			t.Fatal("alice removed bob's key")
		}
		err := f.as.RemoveSecurityKey(t.Context(), f.bob.ID, hex.EncodeToString(keys[0].ID))
		want(t, err, service.ErrInvalidRequest, "requires a security key") // the last one
		if err := f.Store.SetUserRequireFIDO(t.Context(), f.bob.ID, false); err != nil {
			t.Fatal(err)
		}
		if err := f.as.RemoveSecurityKey(t.Context(), f.bob.ID, hex.EncodeToString(keys[0].ID)); err != nil {
			t.Fatal(err)
		}
		if err := f.Store.SetUserRequireFIDO(t.Context(), f.bob.ID, true); err != nil {
			t.Fatal(err)
		}
		_, err = f.as.Login(t.Context(), "", "bob", password)
		want(t, err, service.ErrAccessDenied, "security key is required")
	})
}

// TestSecurityKeyConsent: a credential enrolled with --auth fido is
// approved only with the owner's key, with user verification for SCAL 2,
// and the consent's audit row names the key.
func TestSecurityKeyConsent(t *testing.T) {
	f := newFixture(t)
	if err := f.as.SetRelyingParty("", "test", rpOrigin); err != nil {
		t.Fatal(err)
	}
	key := newSoftKey(t)
	f.register(t, f.alice.ID, "desk", key)
	c, _ := f.AddCredential(t, service.CredentialSpec{User: "alice", KeyType: keystore.ECP256, PIN: pin, SCAL: 2,
		AuthMode: service.AuthFIDO})
	if !c.FIDO || c.AuthMode != csc.AuthModeOAuth2Code {
		t.Fatalf("credential %+v", c)
	}
	session, _, _ := f.as.NewSession(t.Context(), f.alice.ID)
	start := func(t *testing.T) (authserver.Authorization, []byte) {
		t.Helper()
		r, _ := request(digest("doc"))
		r.CredentialID = c.ID
		a, err := f.as.StartAuthorization(t.Context(), r, "")
		if err != nil {
			t.Fatal(err)
		}
		cc, err := f.as.ConsentCredential(t.Context(), f.alice.ID, a)
		if err != nil || !cc.NeedKey {
			t.Fatalf("consent credential %+v, %v", cc, err)
		}
		opts, err := f.as.ConsentKeyOptions(t.Context(), session, f.alice.ID, a)
		if err != nil {
			t.Fatal(err)
		}
		return a, opts
	}
	pinData := []csc.AuthData{pinFactor}
	t.Run("fail without the key", func(t *testing.T) {
		a, _ := start(t)
		_, _, err := f.as.Approve(t.Context(), f.alice.ID, a.Handle, pinData)
		want(t, err, service.ErrAccessDenied, "security key")
	})
	t.Run("fail without user verification", func(t *testing.T) {
		a, opts := start(t)
		if !strings.Contains(string(opts), `"userVerification":"required"`) {
			t.Errorf("SCAL 2 options without required user verification: %s", opts)
		}
		key.uv = false
		defer func() { key.uv = true }()
		_, _, err := f.as.ApproveWithKey(t.Context(), f.alice.ID, session, a.Handle, pinData, key.get(opts))
		want(t, err, service.ErrAccessDenied, "")
	})
	t.Run("fail answer for another request", func(t *testing.T) {
		_, opts := start(t)
		other, _ := start(t) // its ceremony replaces the first one's
		_, _, err := f.as.ApproveWithKey(t.Context(), f.alice.ID, session, other.Handle, pinData, key.get(opts))
		want(t, err, service.ErrAccessDenied, "")
	})
	t.Run("ok key and PIN", func(t *testing.T) {
		a, opts := start(t)
		code, _, err := f.as.ApproveWithKey(t.Context(), f.alice.ID, session, a.Handle, pinData, key.get(opts))
		if err != nil || code == "" {
			t.Fatalf("ApproveWithKey: %v", err)
		}
		if e := lastAudit(t, f, "oauth2 consent"); e.Result != "ok" || !strings.Contains(e.Detail, `key "desk"`) {
			t.Errorf("audit %+v", e)
		}
		if e := lastAudit(t, f, "fido consent"); e.Result != "ok" || e.CredentialID != c.ID {
			t.Errorf("audit %+v", e)
		}
	})
	t.Run("fail credentials/authorize", func(t *testing.T) {
		p := service.Principal{UserID: f.alice.ID, Scope: service.ScopeService}
		_, err := f.Service.Authorize(t.Context(), p, service.AuthorizeRequest{CredentialID: c.ID, NumSignatures: 1,
			Hashes: [][]byte{digest("doc")}, HashAlgorithm: csc.OIDSHA256, AuthData: pinData})
		if !errors.Is(err, service.ErrInvalidRequest) {
			t.Fatalf("explicit authorization of a fido credential: %v", err)
		}
	})
}

// TestSecurityKeyPolicy: with FIDOForSCAL2, an explicit SCAL 2 credential
// reports auth/mode oauth2code, is refused by credentials/authorize and
// needs the owner's key on the consent page; a SCAL 1 one is unchanged.
func TestSecurityKeyPolicy(t *testing.T) {
	e := servicetest.New(t, func(o *service.Options) { o.FIDOForSCAL2 = true })
	as := authserver.New(e.Service, e.Store, service.OAuthOptions{})
	alice := e.AddUser(t, "alice", password)
	scal2, _ := e.AddCredential(t, service.CredentialSpec{User: "alice", KeyType: keystore.ECP256, PIN: pin, SCAL: 2})
	scal1, _ := e.AddCredential(t, service.CredentialSpec{User: "alice", KeyType: keystore.ECP256, PIN: pin})
	if _, _, err := e.Service.AddOAuthClient(t.Context(), service.ClientSpec{ID: "desktop",
		RedirectURIs: []string{desktopRedirect}, Public: true}); err != nil {
		t.Fatal(err)
	}
	p := service.Principal{UserID: alice.ID, Scope: service.ScopeService}
	for _, tc := range []struct {
		name     string
		c        store.Credential
		mode     string
		needsKey bool
	}{
		{"scal2 needs the key", scal2, csc.AuthModeOAuth2Code, true},
		{"scal1 unchanged", scal1, csc.AuthModeExplicit, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, err := e.Service.CredentialInfo(t.Context(), p, tc.c.ID, service.InfoOptions{AuthInfo: true})
			if err != nil || info.Auth.Mode != tc.mode {
				t.Fatalf("auth/mode %+v, %v; want %s", info.Auth, err, tc.mode)
			}
			if e.Service.NeedsKey(tc.c) != tc.needsKey {
				t.Errorf("NeedsKey %v", !tc.needsKey)
			}
			r := service.AuthorizeRequest{CredentialID: tc.c.ID, NumSignatures: 1, AuthData: []csc.AuthData{pinFactor}}
			if tc.c.SCAL == 2 {
				r.Hashes, r.HashAlgorithm = [][]byte{digest("x")}, csc.OIDSHA256
			}
			_, err = e.Service.Authorize(t.Context(), p, r)
			if tc.needsKey != (err != nil) {
				t.Errorf("credentials/authorize: %v", err)
			}
			req, _ := request(digest("x"))
			req.CredentialID = tc.c.ID
			a, err := as.StartAuthorization(t.Context(), req, "")
			if err != nil {
				t.Fatal(err)
			}
			cc, err := as.ConsentCredential(t.Context(), alice.ID, a)
			if err != nil || cc.NeedKey != tc.needsKey {
				t.Errorf("consent NeedKey %v, %v", cc.NeedKey, err)
			}
			_, _, err = as.Approve(t.Context(), alice.ID, a.Handle, []csc.AuthData{pinFactor})
			if tc.needsKey != (err != nil) {
				t.Errorf("Approve without a key: %v", err)
			}
		})
	}
}
