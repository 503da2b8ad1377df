package service

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/csctoken/csctoken/csc"
	"github.com/csctoken/csctoken/rssp/keystore"
	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/store"
)

// Factor IDs of the authentication objects.
const (
	FactorPIN = "PIN"
	FactorOTP = "OTP"
)

// AuthFIDO is the CredentialSpec.AuthMode of a credential authorized on the
// consent page with the owner's security key (and its other factors).
const AuthFIDO = "fido"

// NeedsKey reports whether a credential's authorization needs its owner's
// security key: enrolled with AuthFIDO, or SCAL 2 under the policy
// FIDOForSCAL2. Such a credential is authorized on the consent page only
// (its auth/mode is oauth2code), never by credentials/authorize.
func (s *Service) NeedsKey(c store.Credential) bool {
	return c.FIDO || (s.opt.FIDOForSCAL2 && c.SCAL >= 2)
}

// SetRequireFIDO sets whether a user must present a security key at login
// (rssp admin user require-fido).
func (s *Service) SetRequireFIDO(ctx context.Context, name string, require bool) error {
	u, err := s.store.UserByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return badRequest("no user %q", name)
	}
	if err != nil {
		return err
	}
	if err := s.store.SetUserRequireFIDO(ctx, u.ID, require); err != nil {
		return err
	}
	s.audit(ctx, "admin", u.ID, "", nil, nil, fmt.Sprintf("user require-fido=%v %s", require, name))
	return nil
}

// WebAuthnKeys lists a user's security keys (rssp admin user keys).
func (s *Service) WebAuthnKeys(ctx context.Context, name string) ([]store.WebAuthnKey, error) {
	u, err := s.store.UserByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, badRequest("no user %q", name)
	}
	if err != nil {
		return nil, err
	}
	return s.store.WebAuthnKeys(ctx, u.ID)
}

// AddUser creates an account (rssp admin user add).
func (s *Service) AddUser(ctx context.Context, name, password string) (store.User, error) {
	return s.AddUserWithSubject(ctx, name, password, "")
}

// AddUserWithSubject creates a user as AddUser does, mapped to the subject
// sub of the external authorization server (docs/external-as.md) when sub
// is not empty. Such a user may have no password (""): they then log in
// only at the external server.
func (s *Service) AddUserWithSubject(ctx context.Context, name, password, sub string) (store.User, error) {
	if name == "" || strings.ContainsAny(name, ":\x00\r\n") || len(name) > 128 {
		return store.User{}, badRequest("invalid user name %q (no colon, at most 128 bytes)", name)
	}
	if err := checkSubject(sub); err != nil {
		return store.User{}, err
	}
	var h string
	switch {
	case password == "" && sub != "":
	case len(password) < 8:
		return store.User{}, badRequest("the password must have at least 8 characters")
	default:
		var err error
		if h, err = secret.Hash(password, s.opt.Argon2); err != nil {
			return store.User{}, err
		}
	}
	u := store.User{ID: secret.NewID(12), Name: name, PasswordHash: h, CreatedAt: s.now().UTC(), ExternalSubject: sub}
	if err := s.store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrExists) {
			return store.User{}, badRequest("user %q or external subject %q already exists", name, sub)
		}
		return store.User{}, err
	}
	detail := "user add " + name
	if sub != "" {
		detail += " external subject " + sub
	}
	s.audit(ctx, "admin", u.ID, "", nil, nil, detail)
	return u, nil
}

// CredentialSpec describes a credential to enrol.
type CredentialSpec struct {
	User        string
	KeyType     keystore.KeyType
	PIN         string // required unless AuthMode is oauth2code
	SCAL        int    // 1 (default) or 2
	OTP         string // "", "totp" or "online" (sent by getChallenge)
	OOB         bool   // a PasswordOOB factor: approval on another device
	Multisign   int    // default 1
	Description string
	// AuthMode is "explicit" (default), "oauth2code", or "fido": oauth2code
	// with the owner's security key as a factor on the consent page.
	AuthMode string
	// SignatureQualifier is one of csc.SignatureQualifiers, or "" for none.
	SignatureQualifier string
}

// AddCredential generates a key in the keystore, has the CA certify it and
// stores the credential. With OTP "totp" it returns the otpauth:// URI that
// the user loads into an authenticator app.
func (s *Service) AddCredential(ctx context.Context, spec CredentialSpec) (c store.Credential, otpURI string, err error) {
	u, err := s.store.UserByName(ctx, spec.User)
	if errors.Is(err, store.ErrNotFound) {
		return c, "", badRequest("no user %q", spec.User)
	}
	if err != nil {
		return c, "", err
	}
	if _, err := keystore.ParseKeyType(string(spec.KeyType)); err != nil {
		return c, "", badRequest("%v", err)
	}
	if spec.SCAL == 0 {
		spec.SCAL = 1
	}
	if spec.Multisign == 0 {
		spec.Multisign = 1
	}
	if spec.AuthMode == "" {
		spec.AuthMode = csc.AuthModeExplicit
	}
	fido := spec.AuthMode == AuthFIDO
	if fido {
		spec.AuthMode = csc.AuthModeOAuth2Code
	}
	switch {
	case spec.SCAL != 1 && spec.SCAL != 2:
		return c, "", badRequest("SCAL must be 1 or 2")
	case spec.Multisign < 1 || spec.Multisign > s.opt.MaxMultisign:
		return c, "", badRequest("multisign must be between 1 and %d", s.opt.MaxMultisign)
	case spec.OTP != "" && spec.OTP != "totp" && spec.OTP != OnlineOTP:
		return c, "", badRequest("otp must be \"totp\" or \"online\"")
	case (spec.OTP == OnlineOTP || spec.OOB) && !s.HasPending():
		return c, "", badRequest("online OTP and out-of-band factors need the notifier (not configured)")
	case spec.AuthMode != csc.AuthModeExplicit && spec.AuthMode != csc.AuthModeOAuth2Code:
		return c, "", badRequest("auth mode must be explicit, oauth2code or fido")
	case len(spec.Description) > 255:
		return c, "", badRequest("description longer than 255 characters")
	case spec.SignatureQualifier != "" && !csc.IsSignatureQualifier(spec.SignatureQualifier):
		return c, "", badRequest("unknown signature qualifier %q (one of %s)", spec.SignatureQualifier,
			strings.Join(csc.SignatureQualifiers, ", "))
	}
	if spec.PIN != "" {
		if len(spec.PIN) < 4 || len(spec.PIN) > 64 || strings.Trim(spec.PIN, "0123456789") != "" {
			return c, "", badRequest("the PIN must be 4 to 64 digits")
		}
	} else if spec.AuthMode == csc.AuthModeExplicit && spec.OTP == "" && !spec.OOB {
		return c, "", badRequest("an explicit credential needs a PIN, an OTP or an out-of-band factor")
	}
	id := secret.NewID(12)
	ref, pub, err := s.keys.Generate(ctx, spec.KeyType, id)
	if err != nil {
		return c, "", fmt.Errorf("generate key: %w", err)
	}
	undo := func() { _ = s.keys.Delete(context.WithoutCancel(ctx), ref) }
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		undo()
		return c, "", err
	}
	cert, err := s.issuer.Issue(u.Name, id, pub, s.opt.CertValidity)
	if err != nil {
		undo()
		return c, "", fmt.Errorf("issue certificate: %w", err)
	}
	c = store.Credential{
		ID: id, UserID: u.ID, Description: spec.Description, KeyType: string(spec.KeyType),
		Backend: s.keys.Name(), KeyRef: ref, PublicKey: pubDER,
		CertChain: append([][]byte{cert}, s.issuer.Chain()...),
		SCAL:      spec.SCAL, Multisign: spec.Multisign, AuthMode: spec.AuthMode, OOB: spec.OOB, CreatedAt: s.now().UTC(),
		SignatureQualifier: spec.SignatureQualifier, FIDO: fido,
	}
	if spec.PIN != "" {
		if c.PINHash, err = secret.Hash(spec.PIN, s.opt.Argon2); err != nil {
			undo()
			return c, "", err
		}
	}
	if spec.OTP == OnlineOTP {
		c.OTPType = OnlineOTP
	}
	if spec.OTP == "totp" {
		seed, uri, err := newTOTP(s.opt.Name, u.Name, id)
		if err != nil {
			undo()
			return c, "", err
		}
		c.OTPType = "totp"
		c.OTPSealed = s.sealer.Seal(seed, []byte("totp:"+id))
		otpURI = uri
	}
	if err := s.store.CreateCredential(ctx, c); err != nil {
		undo()
		return c, "", err
	}
	s.audit(ctx, "admin", u.ID, id, nil, nil, "credential add "+string(spec.KeyType))
	return c, otpURI, nil
}

// Credentials lists credentials for the admin CLI (all users when user is "").
func (s *Service) Credentials(ctx context.Context, user string) ([]store.Credential, error) {
	uid := ""
	if user != "" {
		u, err := s.store.UserByName(ctx, user)
		if err != nil {
			return nil, fmt.Errorf("user %q: %w", user, err)
		}
		uid = u.ID
	}
	return s.store.Credentials(ctx, uid)
}

// SetDisabled disables or enables a credential.
func (s *Service) SetDisabled(ctx context.Context, id string, disabled bool) error {
	if err := s.store.SetCredentialDisabled(ctx, id, disabled); err != nil {
		return err
	}
	s.audit(ctx, "admin", "", id, nil, nil, fmt.Sprintf("credential disabled=%v", disabled))
	return nil
}

// Unlock clears a credential's PIN lock.
func (s *Service) Unlock(ctx context.Context, id string) error {
	if err := s.store.UnlockCredential(ctx, id); err != nil {
		return err
	}
	s.audit(ctx, "admin", "", id, nil, nil, "credential unlock")
	return nil
}

// userCredential loads a credential of the caller.
func (s *Service) userCredential(ctx context.Context, p Principal, id string) (store.Credential, error) {
	if id == "" {
		return store.Credential{}, badRequest("Missing string parameter credentialID")
	}
	if p.Scope == ScopeCredential && id != p.CredentialID {
		return store.Credential{}, fail(ErrAccessDenied, "The credential token is bound to another credential")
	}
	c, err := s.store.Credential(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && c.UserID != p.UserID) {
		return store.Credential{}, badRequest("Invalid parameter credentialID")
	}
	return c, err
}

// InfoOptions select what CredentialInfo returns.
type InfoOptions struct {
	Certificates string // none, single (default), chain
	CertInfo     bool
	AuthInfo     bool
	// SignatureQualifier, in ListCredentials, keeps only the credentials
	// that carry it.
	SignatureQualifier string
}

func (o *InfoOptions) check() error {
	switch o.Certificates {
	case "":
		o.Certificates = csc.CertsSingle
	case csc.CertsNone, csc.CertsSingle, csc.CertsChain:
	default:
		return badRequest("Invalid parameter certificates (none, single or chain)")
	}
	if o.SignatureQualifier != "" && !csc.IsSignatureQualifier(o.SignatureQualifier) {
		return badRequest("Invalid parameter signatureQualifier")
	}
	return nil
}

// ListCredentials answers credentials/list.
func (s *Service) ListCredentials(ctx context.Context, p Principal, withInfo, onlyValid bool, o InfoOptions) ([]string, []csc.CredentialInfo, error) {
	if err := o.check(); err != nil {
		return nil, nil, err
	}
	creds, err := s.store.Credentials(ctx, p.UserID)
	if err != nil {
		return nil, nil, err
	}
	ids := []string{}
	var infos []csc.CredentialInfo
	for _, c := range creds {
		if o.SignatureQualifier != "" && c.SignatureQualifier != o.SignatureQualifier {
			continue
		}
		info, valid := s.credentialInfo(c, o)
		if onlyValid && !valid {
			continue
		}
		ids = append(ids, c.ID)
		if withInfo {
			info.CredentialID = c.ID
			infos = append(infos, info)
		}
	}
	return ids, infos, nil
}

// CredentialInfo answers credentials/info.
func (s *Service) CredentialInfo(ctx context.Context, p Principal, id string, o InfoOptions) (csc.CredentialInfo, error) {
	if err := o.check(); err != nil {
		return csc.CredentialInfo{}, err
	}
	c, err := s.userCredential(ctx, p, id)
	if err != nil {
		return csc.CredentialInfo{}, err
	}
	info, _ := s.credentialInfo(c, o)
	return info, nil
}

// credentialInfo renders a credential; valid says whether it can sign now
// (enabled, certificate within its validity).
func (s *Service) credentialInfo(c store.Credential, o InfoOptions) (csc.CredentialInfo, bool) {
	info := csc.CredentialInfo{
		Description:        c.Description,
		SignatureQualifier: c.SignatureQualifier,
		SCAL:               fmt.Sprint(c.SCAL),
		Multisign:          c.Multisign,
		Lang:               "en-US",
	}
	pub, perr := x509.ParsePKIXPublicKey(c.PublicKey)
	if perr == nil {
		info.Key.Algo, info.Key.Len, info.Key.Curve = keyAlgos(pub)
	}
	cert, cerr := parseCert(c)
	certStatus := "valid"
	now := s.now()
	if cerr != nil {
		certStatus = "expired"
	} else if now.After(cert.NotAfter) {
		certStatus = "expired"
	} else if now.Before(cert.NotBefore) {
		certStatus = "suspended" // not yet valid: not signable
	}
	valid := !c.Disabled && certStatus == "valid" && perr == nil
	info.Key.Status = "enabled"
	if !valid {
		info.Key.Status = "disabled"
	}
	ci := &csc.CertInfo{Status: certStatus}
	switch o.Certificates {
	case csc.CertsSingle:
		ci.Certificates = csc.BytesList(c.CertChain[:min(1, len(c.CertChain))])
	case csc.CertsChain:
		ci.Certificates = csc.BytesList(c.CertChain)
	}
	if o.CertInfo && cerr == nil {
		ci.IssuerDN = cert.Issuer.String()
		ci.SubjectDN = cert.Subject.String()
		ci.SerialNumber = fmt.Sprintf("%x", cert.SerialNumber)
		ci.ValidFrom = cert.NotBefore.UTC().Format("20060102150405Z")
		ci.ValidTo = cert.NotAfter.UTC().Format("20060102150405Z")
	}
	info.Cert = ci
	// auth.mode is always emitted (docs/mapping.md, "CSC notes"); the objects only
	// with authInfo.
	info.Auth = &csc.AuthInfo{Mode: c.AuthMode}
	if s.NeedsKey(c) {
		info.Auth.Mode = csc.AuthModeOAuth2Code
	}
	if o.AuthInfo && info.Auth.Mode == csc.AuthModeExplicit {
		var ids []string
		if c.PINHash != "" {
			info.Auth.Objects = append(info.Auth.Objects, csc.AuthObject{
				Type: csc.AuthPassword, ID: FactorPIN, Format: "N", Label: "PIN", Description: "The credential's PIN"})
			ids = append(ids, FactorPIN)
		}
		switch c.OTPType {
		case "totp":
			info.Auth.Objects = append(info.Auth.Objects, csc.AuthObject{
				Type: csc.AuthPassword, ID: FactorOTP, Format: "N", Generator: "totp", Label: "OTP",
				Description: "The 6-digit code of the authenticator app"})
			ids = append(ids, FactorOTP)
		case OnlineOTP:
			info.Auth.Objects = append(info.Auth.Objects, csc.AuthObject{
				Type: csc.AuthChallengeResponse, ID: FactorOTP, Format: "N", Label: "OTP",
				Description: "The 6-digit code sent to you after credentials/getChallenge"})
			ids = append(ids, FactorOTP)
		}
		if c.OOB {
			info.Auth.Objects = append(info.Auth.Objects, csc.AuthObject{
				Type: csc.AuthPasswordOOB, ID: FactorOOB, Label: "Approval",
				Description: "Approve the request on your other device"})
			ids = append(ids, FactorOOB)
		}
		info.Auth.Expression = strings.Join(ids, " AND ")
	}
	return info, valid
}

// parsedCred is what the signing path needs from a credential's DER
// fields, parsed once: certificates and keys never change after enrolment.
type parsedCred struct {
	pub                 crypto.PublicKey
	notBefore, notAfter time.Time
}

// parsed returns the cached parse of c's public key and certificate.
func (s *Service) parsed(c store.Credential) (*parsedCred, error) {
	if v, ok := s.parsedCache.Load(c.ID); ok {
		return v.(*parsedCred), nil
	}
	pub, err := x509.ParsePKIXPublicKey(c.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("credential %s public key: %w", c.ID, err)
	}
	cert, err := parseCert(c)
	if err != nil {
		return nil, fmt.Errorf("credential %s certificate: %w", c.ID, err)
	}
	p := &parsedCred{pub: pub, notBefore: cert.NotBefore, notAfter: cert.NotAfter}
	s.parsedCache.Store(c.ID, p)
	return p, nil
}

// keyOf returns a credential's parsed public key and backend.
func (s *Service) keyOf(c store.Credential) (crypto.PublicKey, keystore.Backend, error) {
	p, err := s.parsed(c)
	if err != nil {
		return nil, nil, err
	}
	b, ok := s.backends[c.Backend]
	if !ok {
		return nil, nil, fmt.Errorf("credential %s lives in backend %q, which is not configured", c.ID, c.Backend)
	}
	return p.pub, b, nil
}

// checkUsable refuses disabled, locked and expired credentials.
func (s *Service) checkUsable(c store.Credential) error {
	if c.Disabled {
		return fail(ErrDisabled, "The credential is disabled")
	}
	if c.Locked {
		return fail(ErrLocked, "The credential is locked after too many failed authorizations; ask the operator to unlock it")
	}
	p, err := s.parsed(c)
	if err != nil {
		return err
	}
	if now := s.now(); now.After(p.notAfter) || now.Before(p.notBefore) {
		return fail(ErrDisabled, "The credential's certificate is not valid at this time")
	}
	return nil
}
