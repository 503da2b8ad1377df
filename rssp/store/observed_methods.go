package store

// The forwarding methods of observed (observed.go), one per method of
// Store, OAuthStore and PendingStore, written by a script from the
// interfaces.

import (
	"context"
	"time"
)

func (o *observed) CreateUser(ctx context.Context, u User) error {
	return o.check("CreateUser", o.s.CreateUser(ctx, u))
}

func (o *observed) UserByName(ctx context.Context, name string) (User, error) {
	v0, err := o.s.UserByName(ctx, name)
	return v0, o.check("UserByName", err)
}

func (o *observed) UserByID(ctx context.Context, id string) (User, error) {
	v0, err := o.s.UserByID(ctx, id)
	return v0, o.check("UserByID", err)
}

func (o *observed) UserByExternalSubject(ctx context.Context, sub string) (User, error) {
	v0, err := o.s.UserByExternalSubject(ctx, sub)
	return v0, o.check("UserByExternalSubject", err)
}

func (o *observed) SetUserExternalSubject(ctx context.Context, id, sub string) error {
	return o.check("SetUserExternalSubject", o.s.SetUserExternalSubject(ctx, id, sub))
}

func (o *observed) Users(ctx context.Context) ([]User, error) {
	v0, err := o.s.Users(ctx)
	return v0, o.check("Users", err)
}

func (o *observed) SetUserDisabled(ctx context.Context, id string, disabled bool) error {
	return o.check("SetUserDisabled", o.s.SetUserDisabled(ctx, id, disabled))
}

func (o *observed) SetUserPassword(ctx context.Context, id, passwordHash string) error {
	return o.check("SetUserPassword", o.s.SetUserPassword(ctx, id, passwordHash))
}

func (o *observed) DeleteUser(ctx context.Context, id string) error {
	return o.check("DeleteUser", o.s.DeleteUser(ctx, id))
}

func (o *observed) CreateCredential(ctx context.Context, c Credential) error {
	return o.check("CreateCredential", o.s.CreateCredential(ctx, c))
}

func (o *observed) Credential(ctx context.Context, id string) (Credential, error) {
	v0, err := o.s.Credential(ctx, id)
	return v0, o.check("Credential", err)
}

func (o *observed) Credentials(ctx context.Context, userID string) ([]Credential, error) {
	v0, err := o.s.Credentials(ctx, userID)
	return v0, o.check("Credentials", err)
}

func (o *observed) SetCredentialDisabled(ctx context.Context, id string, disabled bool) error {
	return o.check("SetCredentialDisabled", o.s.SetCredentialDisabled(ctx, id, disabled))
}

func (o *observed) DeleteCredential(ctx context.Context, id string) error {
	return o.check("DeleteCredential", o.s.DeleteCredential(ctx, id))
}

func (o *observed) RecordPINFailure(ctx context.Context, id string, limit int) (int, bool, error) {
	v0, v1, err := o.s.RecordPINFailure(ctx, id, limit)
	return v0, v1, o.check("RecordPINFailure", err)
}

func (o *observed) ResetPINFailures(ctx context.Context, id string) error {
	return o.check("ResetPINFailures", o.s.ResetPINFailures(ctx, id))
}

func (o *observed) UnlockCredential(ctx context.Context, id string) error {
	return o.check("UnlockCredential", o.s.UnlockCredential(ctx, id))
}

func (o *observed) TryFactorLock(ctx context.Context, id, holder string, now, until time.Time) (Credential, error) {
	v0, err := o.s.TryFactorLock(ctx, id, holder, now, until)
	return v0, o.check("TryFactorLock", err)
}

func (o *observed) ReleaseFactorLock(ctx context.Context, id, holder string) error {
	return o.check("ReleaseFactorLock", o.s.ReleaseFactorLock(ctx, id, holder))
}

func (o *observed) UseTOTPStep(ctx context.Context, id string, step int64) error {
	return o.check("UseTOTPStep", o.s.UseTOTPStep(ctx, id, step))
}

func (o *observed) CreateToken(ctx context.Context, t Token) error {
	return o.check("CreateToken", o.s.CreateToken(ctx, t))
}

func (o *observed) Token(ctx context.Context, hash []byte) (Token, error) {
	v0, err := o.s.Token(ctx, hash)
	return v0, o.check("Token", err)
}

func (o *observed) RevokeToken(ctx context.Context, hash []byte) error {
	return o.check("RevokeToken", o.s.RevokeToken(ctx, hash))
}

func (o *observed) RotateToken(ctx context.Context, hash []byte, next []Token) error {
	return o.check("RotateToken", o.s.RotateToken(ctx, hash, next))
}

func (o *observed) RevokeFamily(ctx context.Context, family string) error {
	return o.check("RevokeFamily", o.s.RevokeFamily(ctx, family))
}

func (o *observed) CreateSAD(ctx context.Context, s SAD, audit *AuditEvent) error {
	return o.check("CreateSAD", o.s.CreateSAD(ctx, s, audit))
}

func (o *observed) SAD(ctx context.Context, hash []byte) (SAD, error) {
	v0, err := o.s.SAD(ctx, hash)
	return v0, o.check("SAD", err)
}

func (o *observed) ReplaceSAD(ctx context.Context, old []byte, n int, now time.Time, s SAD, audit *AuditEvent) error {
	return o.check("ReplaceSAD", o.s.ReplaceSAD(ctx, old, n, now, s, audit))
}

func (o *observed) ConsumeSAD(ctx context.Context, hash []byte, n int, now time.Time, audit *AuditEvent) error {
	return o.check("ConsumeSAD", o.s.ConsumeSAD(ctx, hash, n, now, audit))
}

func (o *observed) DeleteSAD(ctx context.Context, hash []byte) error {
	return o.check("DeleteSAD", o.s.DeleteSAD(ctx, hash))
}

func (o *observed) AppendAudit(ctx context.Context, e AuditEvent) (AuditEvent, error) {
	v0, err := o.s.AppendAudit(ctx, e)
	return v0, o.check("AppendAudit", err)
}

func (o *observed) AuditEvents(ctx context.Context, after int64, limit int) ([]AuditEvent, error) {
	v0, err := o.s.AuditEvents(ctx, after, limit)
	return v0, o.check("AuditEvents", err)
}

func (o *observed) ThrottleWait(ctx context.Context, key []byte, now time.Time, rate ThrottleRate) (time.Duration, error) {
	v0, err := o.s.ThrottleWait(ctx, key, now, rate)
	return v0, o.check("ThrottleWait", err)
}

func (o *observed) ThrottleFail(ctx context.Context, key []byte, now time.Time, rate ThrottleRate) (bool, error) {
	v0, err := o.s.ThrottleFail(ctx, key, now, rate)
	return v0, o.check("ThrottleFail", err)
}

func (o *observed) Purge(ctx context.Context, now time.Time) error {
	return o.check("Purge", o.s.Purge(ctx, now))
}

func (o *observed) Ping(ctx context.Context) error {
	return o.check("Ping", o.s.Ping(ctx))
}

func (o *observed) CreateOAuthClient(ctx context.Context, c OAuthClient) error {
	return o.check("CreateOAuthClient", o.s.CreateOAuthClient(ctx, c))
}

func (o *observed) OAuthClient(ctx context.Context, id string) (OAuthClient, error) {
	v0, err := o.s.OAuthClient(ctx, id)
	return v0, o.check("OAuthClient", err)
}

func (o *observed) CreateOAuthRequest(ctx context.Context, r OAuthRequest) error {
	return o.check("CreateOAuthRequest", o.s.CreateOAuthRequest(ctx, r))
}

func (o *observed) OAuthRequest(ctx context.Context, hash []byte) (OAuthRequest, error) {
	v0, err := o.s.OAuthRequest(ctx, hash)
	return v0, o.check("OAuthRequest", err)
}

func (o *observed) TakeOAuthRequest(ctx context.Context, hash []byte, now time.Time) (OAuthRequest, error) {
	v0, err := o.s.TakeOAuthRequest(ctx, hash, now)
	return v0, o.check("TakeOAuthRequest", err)
}

func (o *observed) CreateOAuthCode(ctx context.Context, c OAuthCode) error {
	return o.check("CreateOAuthCode", o.s.CreateOAuthCode(ctx, c))
}

func (o *observed) ConsumeOAuthCode(ctx context.Context, hash, tokenHash []byte, now time.Time) (OAuthCode, error) {
	v0, err := o.s.ConsumeOAuthCode(ctx, hash, tokenHash, now)
	return v0, o.check("ConsumeOAuthCode", err)
}

func (o *observed) CreateOAuthSession(ctx context.Context, s OAuthSession) error {
	return o.check("CreateOAuthSession", o.s.CreateOAuthSession(ctx, s))
}

func (o *observed) OAuthSession(ctx context.Context, hash []byte) (OAuthSession, error) {
	v0, err := o.s.OAuthSession(ctx, hash)
	return v0, o.check("OAuthSession", err)
}

func (o *observed) DeleteOAuthSession(ctx context.Context, hash []byte) error {
	return o.check("DeleteOAuthSession", o.s.DeleteOAuthSession(ctx, hash))
}

func (o *observed) CreateCredentialToken(ctx context.Context, t CredentialToken) error {
	return o.check("CreateCredentialToken", o.s.CreateCredentialToken(ctx, t))
}

func (o *observed) CredentialToken(ctx context.Context, tokenHash []byte) (CredentialToken, error) {
	v0, err := o.s.CredentialToken(ctx, tokenHash)
	return v0, o.check("CredentialToken", err)
}

func (o *observed) PurgeOAuth(ctx context.Context, now time.Time) error {
	return o.check("PurgeOAuth", o.s.PurgeOAuth(ctx, now))
}

func (o *observed) CreatePending(ctx context.Context, p PendingAuth) error {
	return o.check("CreatePending", o.p.CreatePending(ctx, p))
}

func (o *observed) PendingByApproval(ctx context.Context, approvalHash []byte) (PendingAuth, error) {
	v0, err := o.p.PendingByApproval(ctx, approvalHash)
	return v0, o.check("PendingByApproval", err)
}

func (o *observed) DecidePending(ctx context.Context, approvalHash []byte, d Decision, now time.Time) error {
	return o.check("DecidePending", o.p.DecidePending(ctx, approvalHash, d, now))
}

func (o *observed) TakePending(ctx context.Context, handleHash []byte, userID string, now time.Time) (PendingAuth, error) {
	v0, err := o.p.TakePending(ctx, handleHash, userID, now)
	return v0, o.check("TakePending", err)
}

func (o *observed) SetChallenge(ctx context.Context, c Challenge) error {
	return o.check("SetChallenge", o.p.SetChallenge(ctx, c))
}

func (o *observed) Challenge(ctx context.Context, credentialID string) (Challenge, error) {
	v0, err := o.p.Challenge(ctx, credentialID)
	return v0, o.check("Challenge", err)
}

func (o *observed) DeleteChallenge(ctx context.Context, credentialID string) error {
	return o.check("DeleteChallenge", o.p.DeleteChallenge(ctx, credentialID))
}

func (o *observed) CreateOp(ctx context.Context, op AsyncOp) error {
	return o.check("CreateOp", o.p.CreateOp(ctx, op))
}

func (o *observed) FinishOp(ctx context.Context, idHash []byte, status OpStatus, sigs [][]byte, errCode, errDesc string) error {
	return o.check("FinishOp", o.p.FinishOp(ctx, idHash, status, sigs, errCode, errDesc))
}

func (o *observed) Op(ctx context.Context, idHash []byte) (AsyncOp, error) {
	v0, err := o.p.Op(ctx, idHash)
	return v0, o.check("Op", err)
}

func (o *observed) PurgePending(ctx context.Context, now time.Time) error {
	return o.check("PurgePending", o.p.PurgePending(ctx, now))
}

func (o *observed) CreateWebAuthnKey(ctx context.Context, k WebAuthnKey) error {
	return o.check("CreateWebAuthnKey", o.s.CreateWebAuthnKey(ctx, k))
}

func (o *observed) WebAuthnKeys(ctx context.Context, userID string) ([]WebAuthnKey, error) {
	v0, err := o.s.WebAuthnKeys(ctx, userID)
	return v0, o.check("WebAuthnKeys", err)
}

func (o *observed) DeleteWebAuthnKey(ctx context.Context, userID string, id []byte) error {
	return o.check("DeleteWebAuthnKey", o.s.DeleteWebAuthnKey(ctx, userID, id))
}

func (o *observed) UseWebAuthnKey(ctx context.Context, id []byte, count uint32, at time.Time) error {
	return o.check("UseWebAuthnKey", o.s.UseWebAuthnKey(ctx, id, count, at))
}

func (o *observed) SetUserRequireFIDO(ctx context.Context, userID string, require bool) error {
	return o.check("SetUserRequireFIDO", o.s.SetUserRequireFIDO(ctx, userID, require))
}

func (o *observed) SetOAuthSessionCeremony(ctx context.Context, sessionHash, ceremony []byte) error {
	return o.check("SetOAuthSessionCeremony", o.s.SetOAuthSessionCeremony(ctx, sessionHash, ceremony))
}

func (o *observed) TakeOAuthSessionCeremony(ctx context.Context, sessionHash []byte) ([]byte, error) {
	v0, err := o.s.TakeOAuthSessionCeremony(ctx, sessionHash)
	return v0, o.check("TakeOAuthSessionCeremony", err)
}

func (o *observed) TokenUser(ctx context.Context, hash []byte) (Token, User, error) {
	v0, v1, err := o.s.TokenUser(ctx, hash)
	return v0, v1, o.check("TokenUser", err)
}

func (o *observed) SigningState(ctx context.Context, credentialID string, sadHash []byte) (SigningState, error) {
	v0, err := o.s.SigningState(ctx, credentialID, sadHash)
	return v0, o.check("SigningState", err)
}
