package authserver

// FIDO2/WebAuthn security keys (github.com/go-webauthn/webauthn): their
// registration by the user, and their assertions as the second factor of
// the login and as a credential's factor on the consent page.
//
// A ceremony (its challenge and what it is for) is kept with the browser's
// session in the store and taken once when the browser answers, so an
// answer serves at most once, on the node that finishes it or any other.
// Every assertion must advance the key's signature counter (or both stay 0,
// for authenticators without one): a counter that goes back or stands
// still is refused as a cloned authenticator and audited.

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/service"
	"github.com/csctoken/csctoken/rssp/store"
)

// Ceremony purposes.
const (
	purposeRegister = "register"
	purposeLogin    = "login"
	purposeConsent  = "consent"
)

// ceremony is what a browser session keeps while a WebAuthn ceremony runs.
type ceremony struct {
	Purpose string
	UserID  string
	Handle  string // consent: the authorization request
	Name    string // register: the key's name
	Session webauthn.SessionData
}

// ErrNoRelyingParty: security keys are not available (the public URL's
// host is an IP address and no rp_id is configured); an access_denied.
var ErrNoRelyingParty = fmt.Errorf("security keys are not available: %w", service.ErrAccessDenied)

// SetRelyingParty configures WebAuthn for the pages served at origin
// (scheme://host[:port]): the relying party ID is rpID, or origin's host
// when rpID is empty; a host that is an IP address cannot be one, and then
// security keys are unavailable (nil is returned: a service without them
// works as before). name is shown by authenticators.
func (o *Server) SetRelyingParty(rpID, name, origin string) error {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return fmt.Errorf("webauthn: origin %q: want scheme://host[:port]", origin)
	}
	if rpID == "" {
		rpID = u.Hostname()
		if net.ParseIP(rpID) != nil {
			o.rp.Store(nil)
			return nil
		}
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID: rpID, RPDisplayName: name, RPOrigins: []string{u.Scheme + "://" + u.Host},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementDiscouraged,
			UserVerification: protocol.VerificationPreferred,
		},
	})
	if err != nil {
		return fmt.Errorf("webauthn: relying party %q at %s: %w", rpID, origin, err)
	}
	o.rp.Store(wa)
	return nil
}

// FIDOAvailable reports whether security keys can be used.
func (o *Server) FIDOAvailable() bool { return o.rp.Load() != nil }

func (o *Server) relyingParty() (*webauthn.WebAuthn, error) {
	wa := o.rp.Load()
	if wa == nil {
		return nil, fail(ErrNoRelyingParty, "Security keys are not available: the service's public URL names no host name a key can be bound to")
	}
	return wa, nil
}

// waUser adapts a user and their keys to webauthn.User.
type waUser struct {
	u    store.User
	keys []store.WebAuthnKey
}

func (w waUser) WebAuthnID() []byte          { return []byte(w.u.ID) }
func (w waUser) WebAuthnName() string        { return w.u.Name }
func (w waUser) WebAuthnDisplayName() string { return w.u.Name }
func (w waUser) WebAuthnCredentials() []webauthn.Credential {
	out := make([]webauthn.Credential, 0, len(w.keys))
	for _, k := range w.keys {
		ts := make([]protocol.AuthenticatorTransport, len(k.Transports))
		for i, t := range k.Transports {
			ts[i] = protocol.AuthenticatorTransport(t)
		}
		flags := protocol.AuthenticatorFlags(k.Flags)
		out = append(out, webauthn.Credential{
			ID: k.ID, PublicKey: k.PublicKey, AttestationType: k.AttestationType, Transport: ts,
			Flags:         webauthn.NewCredentialFlags(flags),
			Authenticator: webauthn.Authenticator{AAGUID: k.AAGUID, SignCount: k.SignCount},
		})
	}
	return out
}

func (o *Server) waUser(ctx context.Context, userID string) (waUser, error) {
	u, err := o.st.UserByID(ctx, userID)
	if err != nil {
		return waUser{}, err
	}
	keys, err := o.st.WebAuthnKeys(ctx, userID)
	if err != nil {
		return waUser{}, err
	}
	return waUser{u: u, keys: keys}, nil
}

// SecurityKeys lists a user's security keys.
func (o *Server) SecurityKeys(ctx context.Context, userID string) ([]store.WebAuthnKey, error) {
	return o.st.WebAuthnKeys(ctx, userID)
}

// RemoveSecurityKey deletes one of the user's keys (ID in hex).
func (o *Server) RemoveSecurityKey(ctx context.Context, userID, idHex string) (err error) {
	id, derr := hex.DecodeString(idHex)
	defer func() { o.audit(ctx, "fido remove", userID, "", nil, err, "key "+short(idHex)) }()
	if derr != nil || len(id) == 0 {
		return badRequest("Invalid security key")
	}
	u, err := o.waUser(ctx, userID)
	if err != nil {
		return err
	}
	if u.u.RequireFIDO && len(u.keys) == 1 && bytes.Equal(u.keys[0].ID, id) {
		return badRequest("Your account requires a security key: add another one before you remove this one")
	}
	if err := o.st.DeleteWebAuthnKey(ctx, userID, id); errors.Is(err, store.ErrNotFound) {
		return badRequest("No such security key")
	} else if err != nil {
		return err
	}
	return nil
}

// BeginRegistration starts the registration of a security key named name
// for the logged-in user of the browser session: it returns the options
// for navigator.credentials.create (JSON).
func (o *Server) BeginRegistration(ctx context.Context, session, userID, name string) ([]byte, error) {
	wa, err := o.relyingParty()
	if err != nil {
		return nil, err
	}
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > 64 || strings.ContainsAny(name, "\x00\r\n") {
		return nil, badRequest("Name the security key (at most 64 characters)")
	}
	u, err := o.waUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	for _, k := range u.keys {
		if k.Name == name {
			return nil, badRequest("You already have a security key named %q", name)
		}
	}
	creation, sd, err := wa.BeginRegistration(u, webauthn.WithExclusions(webauthn.Credentials(u.WebAuthnCredentials()).CredentialDescriptors()))
	if err != nil {
		return nil, fmt.Errorf("webauthn: begin registration: %w", err)
	}
	return o.keepCeremony(ctx, session, ceremony{Purpose: purposeRegister, UserID: userID, Name: name, Session: *sd}, creation)
}

// FinishRegistration checks the browser's answer (the JSON of the
// PublicKeyCredential) and stores the new key.
func (o *Server) FinishRegistration(ctx context.Context, session, userID string, response []byte) (k store.WebAuthnKey, err error) {
	defer func() { o.audit(ctx, "fido register", userID, "", nil, err, keyDetail(k)) }()
	wa, err := o.relyingParty()
	if err != nil {
		return k, err
	}
	c, err := o.takeCeremony(ctx, session, purposeRegister, userID, "")
	if err != nil {
		return k, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return k, fail(service.ErrAccessDenied, "The security key's answer is not valid: %s", protocolDetail(err))
	}
	u, err := o.waUser(ctx, userID)
	if err != nil {
		return k, err
	}
	cred, err := wa.CreateCredential(u, c.Session, parsed)
	if err != nil {
		return k, fail(service.ErrAccessDenied, "The security key was not registered: %s", protocolDetail(err))
	}
	ts := make([]string, len(cred.Transport))
	for i, t := range cred.Transport {
		ts[i] = string(t)
	}
	now := o.now()
	k = store.WebAuthnKey{
		ID: cred.ID, UserID: userID, Name: c.Name, PublicKey: cred.PublicKey, AttestationType: cred.AttestationType,
		AAGUID: cred.Authenticator.AAGUID, Transports: ts, Flags: uint8(cred.Flags.ProtocolValue()),
		SignCount: cred.Authenticator.SignCount, CreatedAt: now,
	}
	if err := o.st.CreateWebAuthnKey(ctx, k); errors.Is(err, store.ErrExists) {
		return k, badRequest("This security key, or its name, is already registered")
	} else if err != nil {
		return k, err
	}
	return k, nil
}

// beginAssertion starts an assertion of one of the user's keys; with uv,
// the authenticator must verify the user (PIN or biometrics on the key).
func (o *Server) beginAssertion(ctx context.Context, session, purpose, userID, handle string, uv bool) ([]byte, error) {
	wa, err := o.relyingParty()
	if err != nil {
		return nil, err
	}
	u, err := o.waUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	if len(u.keys) == 0 {
		return nil, fail(service.ErrAccessDenied, "A security key is required, and you have none registered")
	}
	req := protocol.VerificationPreferred
	if uv {
		req = protocol.VerificationRequired
	}
	assertion, sd, err := wa.BeginLogin(u, webauthn.WithUserVerification(req))
	if err != nil {
		return nil, fmt.Errorf("webauthn: begin assertion: %w", err)
	}
	return o.keepCeremony(ctx, session, ceremony{Purpose: purpose, UserID: userID, Handle: handle, Session: *sd}, assertion)
}

// finishAssertion checks the browser's answer to an assertion: the key is
// the user's, the signature verifies (with user verification when it was
// required), and the signature counter advanced. It returns the key used;
// the audit row names it.
func (o *Server) finishAssertion(ctx context.Context, session, purpose, userID, handle, credID string, response []byte) (k store.WebAuthnKey, err error) {
	c, err := o.takeCeremony(ctx, session, purpose, userID, handle)
	if err != nil {
		return k, err
	}
	defer func() {
		o.audit(ctx, "fido "+purpose, c.UserID, credID, nil, err, keyDetail(k))
	}()
	wa, err := o.relyingParty()
	if err != nil {
		return k, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return k, fail(service.ErrAccessDenied, "The security key's answer is not valid: %s", protocolDetail(err))
	}
	u, err := o.waUser(ctx, c.UserID)
	if err != nil {
		return k, err
	}
	for _, key := range u.keys {
		if bytes.Equal(key.ID, parsed.RawID) {
			k = key
		}
	}
	if k.ID == nil {
		return k, fail(service.ErrAccessDenied, "This security key is not one of yours")
	}
	cred, err := wa.ValidateLogin(u, c.Session, parsed)
	if err != nil {
		return k, fail(service.ErrAccessDenied, "The security key was not accepted: %s", protocolDetail(err))
	}
	count := parsed.Response.AuthenticatorData.Counter
	if cred.Authenticator.CloneWarning {
		return k, fail(ErrClonedAuthenticator, "The security key's signature counter went back (%d after %d): it may be cloned; it was refused", count, k.SignCount)
	}
	if err := o.st.UseWebAuthnKey(ctx, k.ID, count, o.now()); errors.Is(err, store.ErrStale) {
		return k, fail(ErrClonedAuthenticator, "The security key's signature counter did not advance (%d): it may be cloned; it was refused", count)
	} else if err != nil {
		return k, err
	}
	k.SignCount = count
	return k, nil
}

// ErrClonedAuthenticator: an assertion whose signature counter did not
// advance (a cloned authenticator, or a replay). Refused as access_denied;
// the audit row's result is "cloned_authenticator".
var ErrClonedAuthenticator = fmt.Errorf("cloned authenticator: %w", service.ErrAccessDenied)

// keepCeremony stores the ceremony with the session and returns the
// options for the browser.
func (o *Server) keepCeremony(ctx context.Context, session string, c ceremony, options any) ([]byte, error) {
	if session == "" {
		return nil, fail(service.ErrInvalidToken, "No session")
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	if err := o.st.SetOAuthSessionCeremony(ctx, secret.TokenHash(session), b); errors.Is(err, store.ErrNotFound) {
		return nil, fail(service.ErrInvalidToken, "The session has ended")
	} else if err != nil {
		return nil, err
	}
	return json.Marshal(options)
}

// takeCeremony takes the session's ceremony, which must be for purpose
// (and, when given, the user and the authorization request).
func (o *Server) takeCeremony(ctx context.Context, session, purpose, userID, handle string) (ceremony, error) {
	var c ceremony
	b, err := o.st.TakeOAuthSessionCeremony(ctx, secret.TokenHash(session))
	if errors.Is(err, store.ErrNotFound) {
		return c, fail(service.ErrAccessDenied, "No security key check is under way here; start again")
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("webauthn: ceremony: %w", err)
	}
	if c.Purpose != purpose || (userID != "" && c.UserID != userID) || c.Handle != handle {
		return c, fail(service.ErrAccessDenied, "The security key check was for something else; start again")
	}
	if !c.Session.Expires.IsZero() && time.Now().After(c.Session.Expires) {
		return c, fail(service.ErrAccessDenied, "The security key check timed out; start again")
	}
	return c, nil
}

// keyDetail names a key in the audit log: its name, the first bytes of its
// ID, its AAGUID and counter.
// KeyDetail names a security key for an audit row: its name, ID (the
// first 16 hex digits), AAGUID and signature counter; empty for no key.
func KeyDetail(k store.WebAuthnKey) string { return keyDetail(k) }

func keyDetail(k store.WebAuthnKey) string {
	if k.ID == nil {
		return ""
	}
	return fmt.Sprintf("key %q id %s aaguid %x counter %d", k.Name, short(hex.EncodeToString(k.ID)), k.AAGUID, k.SignCount)
}

func short(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}

// protocolDetail is the description of a go-webauthn error (never a
// secret: challenges and signatures are not in it).
func protocolDetail(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.Details != "" {
		return pe.Details
	}
	return "rejected"
}
