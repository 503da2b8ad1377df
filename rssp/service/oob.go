package service

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/csctoken/csctoken/rssp/notify"
	"github.com/csctoken/csctoken/rssp/secret"
	"github.com/csctoken/csctoken/rssp/store"
)

// Out-of-band factors.
const (
	// FactorOOB is the ID of the PasswordOOB object: the user approves on
	// another device (here: the approval page behind a notified link).
	FactorOOB = "OOB"
	// OnlineOTP is the OTPType of a credential whose OTP is sent by the
	// service on credentials/getChallenge (v1 sendOTP), a ChallengeResponse.
	OnlineOTP = "online"
	// oobTTL bounds how long an approval may take.
	oobTTL = 5 * time.Minute
	// challengeTTL bounds an online OTP's life.
	challengeTTL = 5 * time.Minute
)

// startOOB records an authorization waiting for approval, notifies the
// user with the approval link and returns the handle the client polls.
func (s *Service) startOOB(ctx context.Context, c store.Credential, u store.User, r AuthorizeRequest) (SAD, error) {
	if s.pending == nil || s.notifier == nil {
		return SAD{}, errors.New("out-of-band authorization is not configured")
	}
	handle, err := secret.NewToken()
	if err != nil {
		return SAD{}, err
	}
	approval, err := secret.NewToken()
	if err != nil {
		return SAD{}, err
	}
	now := s.now()
	p := store.PendingAuth{
		HandleHash: secret.TokenHash(handle), ApprovalHash: secret.TokenHash(approval),
		UserID: u.ID, CredentialID: c.ID, NumSignatures: r.NumSignatures, HashAlgo: r.HashAlgorithm,
		Hashes: r.Hashes, Description: r.Description, Decision: store.Pending,
		ExpiresAt: now.Add(oobTTL), CreatedAt: now,
	}
	if len(r.Hashes) == 0 {
		p.HashAlgo = ""
	}
	if err := s.pending.CreatePending(ctx, p); err != nil {
		return SAD{}, err
	}
	what := fmt.Sprintf("Approve %d signature(s) with %s", r.NumSignatures, describeCred(c))
	if r.Description != "" {
		what += ": " + r.Description
	}
	if err := s.notifier.Notify(ctx, notify.Message{
		Kind: notify.Approval, User: u.Name, CredentialID: c.ID,
		Link: s.publicURL() + "/oob/approve?t=" + approval, Text: what, Expires: p.ExpiresAt,
	}); err != nil {
		return SAD{}, fmt.Errorf("notify: %w", err)
	}
	return SAD{Handle: handle, ExpiresIn: oobTTL}, nil
}

func describeCred(c store.Credential) string {
	if c.Description != "" {
		return fmt.Sprintf("%q (%s)", c.Description, c.ID)
	}
	return "credential " + c.ID
}

// AuthorizeCheck answers credentials/authorizeCheck: a handle still waiting
// gives Handle again (202); an approved one gives a SAD, once; a denied one
// access_denied.
func (s *Service) AuthorizeCheck(ctx context.Context, p Principal, handle string) (sad SAD, err error) {
	if handle == "" {
		return SAD{}, badRequest("Missing string parameter handle")
	}
	if s.pending == nil {
		return SAD{}, badRequest("Invalid parameter handle")
	}
	// The store checks the owner before it takes anything: another user's
	// handle is "unknown" and stays as it was.
	pa, err := s.pending.TakePending(ctx, secret.TokenHash(handle), p.UserID, s.now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return SAD{}, badRequest("Invalid parameter handle (unknown or already used)")
	case errors.Is(err, store.ErrExpired):
		return SAD{}, badRequest("The authorization request expired before the user approved it")
	case err != nil:
		return SAD{}, err
	}
	switch pa.Decision {
	case store.Pending:
		return SAD{Handle: handle}, nil
	case store.Denied:
		s.audit(ctx, "authorize", p.UserID, pa.CredentialID, pa.Hashes, fail(ErrAccessDenied, ""), "out-of-band: denied")
		return SAD{}, fail(ErrAccessDenied, "The user denied the authorization")
	}
	c, err := s.store.Credential(ctx, pa.CredentialID)
	if err != nil {
		return SAD{}, err
	}
	if err := s.checkUsable(c); err != nil {
		return SAD{}, err
	}
	const detail = "out-of-band: approved"
	sad, err = s.newSAD(ctx, c, pa.UserID, pa.HashAlgo, pa.Hashes, pa.NumSignatures,
		s.auditEvent(ctx, "authorize", p.UserID, pa.CredentialID, pa.Hashes, nil, detail))
	if err != nil {
		s.audit(ctx, "authorize", p.UserID, pa.CredentialID, pa.Hashes, err, detail)
	}
	return sad, err
}

// Approval is what the approval page shows.
type Approval struct {
	User          string
	Credential    string
	NumSignatures int
	HashAlgo      string
	Hashes        [][]byte
	Description   string
	Expires       time.Time
}

// ApprovalRequest looks up an approval link's request.
func (s *Service) ApprovalRequest(ctx context.Context, token string) (Approval, error) {
	if s.pending == nil || token == "" {
		return Approval{}, badRequest("Unknown or expired approval link")
	}
	pa, err := s.pending.PendingByApproval(ctx, secret.TokenHash(token))
	if errors.Is(err, store.ErrNotFound) || (err == nil && !s.now().Before(pa.ExpiresAt)) {
		return Approval{}, badRequest("Unknown or expired approval link")
	}
	if err != nil {
		return Approval{}, err
	}
	if pa.Decision != store.Pending {
		return Approval{}, badRequest("This request was already %s", pa.Decision)
	}
	c, err := s.store.Credential(ctx, pa.CredentialID)
	if err != nil {
		return Approval{}, err
	}
	u, err := s.store.UserByID(ctx, pa.UserID)
	if err != nil {
		return Approval{}, err
	}
	return Approval{User: u.Name, Credential: describeCred(c), NumSignatures: pa.NumSignatures, HashAlgo: pa.HashAlgo,
		Hashes: pa.Hashes, Description: pa.Description, Expires: pa.ExpiresAt}, nil
}

// Decide records the user's answer from the approval page.
func (s *Service) Decide(ctx context.Context, token string, approve bool) error {
	if s.pending == nil || token == "" {
		return badRequest("Unknown or expired approval link")
	}
	d := store.Denied
	if approve {
		d = store.Approved
	}
	err := s.pending.DecidePending(ctx, secret.TokenHash(token), d, s.now())
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrExpired):
		return badRequest("Unknown, expired or already decided approval link")
	case err != nil:
		return err
	}
	return nil
}

// GetChallenge answers credentials/getChallenge (and v1 sendOTP) for an
// online OTP: a fresh 6-digit code is sent out of band.
func (s *Service) GetChallenge(ctx context.Context, p Principal, credID, objectID string) (err error) {
	defer func() { s.audit(ctx, "getChallenge", p.UserID, credID, nil, err, "") }()
	c, err := s.userCredential(ctx, p, credID)
	if err != nil {
		return err
	}
	if objectID != FactorOTP || c.OTPType != OnlineOTP {
		return badRequest("Invalid parameter authObjectID: the credential has no challenge-response object %q", objectID)
	}
	if err := s.checkUsable(c); err != nil {
		return err
	}
	if s.pending == nil || s.notifier == nil {
		return errors.New("online OTP is not configured")
	}
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return err
	}
	code := fmt.Sprintf("%06d", n.Int64())
	h, err := secret.Hash(code, secret.Params{Time: 1, Memory: 1024, Threads: 1})
	if err != nil {
		return err
	}
	exp := s.now().Add(challengeTTL)
	if err := s.pending.SetChallenge(ctx, store.Challenge{CredentialID: c.ID, CodeHash: h, ExpiresAt: exp}); err != nil {
		return err
	}
	u, err := s.store.UserByID(ctx, p.UserID)
	if err != nil {
		return err
	}
	return s.notifier.Notify(ctx, notify.Message{Kind: notify.OTP, User: u.Name, CredentialID: c.ID, Code: code,
		Text: "Your signing code for " + describeCred(c), Expires: exp})
}

// checkOnlineOTP verifies and consumes the credential's live challenge.
func (s *Service) checkOnlineOTP(ctx context.Context, c store.Credential, code string) (bool, error) {
	if s.pending == nil {
		return false, nil
	}
	ch, err := s.pending.Challenge(ctx, c.ID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !s.now().Before(ch.ExpiresAt) || secret.Verify(code, ch.CodeHash) != nil {
		return false, nil
	}
	return true, s.pending.DeleteChallenge(ctx, c.ID)
}
