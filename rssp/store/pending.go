package store

import (
	"context"
	"time"
)

// Decision is the state of an out-of-band authorization.
type Decision string

const (
	Pending  Decision = "pending"
	Approved Decision = "approved"
	Denied   Decision = "denied"
)

// PendingAuth is a credentials/authorize waiting for the user's
// out-of-band approval (PasswordOOB). The client polls it with its handle
// (credentials/authorizeCheck); the user decides through the approval link.
// Both values are random and stored as their SHA-256.
type PendingAuth struct {
	HandleHash    []byte // sha256 of the handle given to the client (primary key)
	ApprovalHash  []byte // sha256 of the token in the approval link (unique)
	UserID        string
	CredentialID  string
	NumSignatures int
	HashAlgo      string
	Hashes        [][]byte
	Description   string
	Decision      Decision
	ExpiresAt     time.Time
	CreatedAt     time.Time
}

// Challenge is an online OTP sent out of band (credentials/getChallenge,
// v1 sendOTP); one live challenge per credential, stored hashed.
type Challenge struct {
	CredentialID string // primary key
	CodeHash     string // argon2id of the code
	ExpiresAt    time.Time
}

// OpStatus is the state of an asynchronous signHash.
type OpStatus string

const (
	OpRunning OpStatus = "running"
	OpDone    OpStatus = "done"
	OpFailed  OpStatus = "failed"
)

// AsyncOp is a signHash in operationMode A, polled with
// signatures/signPolling. Its ID is random and stored as its SHA-256.
type AsyncOp struct {
	IDHash       []byte // primary key
	UserID       string
	CredentialID string
	Status       OpStatus
	Signatures   [][]byte // OpDone
	ErrCode      string   // OpFailed: CSC error code
	ErrDesc      string   // OpFailed: description
	ExpiresAt    time.Time
	CreatedAt    time.Time
}

// PendingStore holds out-of-band authorizations, online OTP challenges and
// asynchronous operations. Implementations are safe for concurrent use.
type PendingStore interface {
	CreatePending(ctx context.Context, p PendingAuth) error
	// PendingByApproval finds a pending authorization by its approval token.
	PendingByApproval(ctx context.Context, approvalHash []byte) (PendingAuth, error)
	// DecidePending moves a Pending authorization to Approved or Denied;
	// ErrNotFound if unknown or already decided, ErrExpired after ExpiresAt.
	DecidePending(ctx context.Context, approvalHash []byte, d Decision, now time.Time) error
	// TakePending returns userID's authorization for a handle; when it is
	// decided it is deleted in the same step (a handle yields one SAD).
	// ErrNotFound for an unknown handle or another user's, which is left
	// untouched; ErrExpired (and deleted) after ExpiresAt.
	TakePending(ctx context.Context, handleHash []byte, userID string, now time.Time) (PendingAuth, error)

	// SetChallenge replaces the credential's live challenge.
	SetChallenge(ctx context.Context, c Challenge) error
	// Challenge returns the credential's live challenge.
	Challenge(ctx context.Context, credentialID string) (Challenge, error)
	// DeleteChallenge removes it (after use).
	DeleteChallenge(ctx context.Context, credentialID string) error

	CreateOp(ctx context.Context, op AsyncOp) error
	// FinishOp records the outcome of a running operation.
	FinishOp(ctx context.Context, idHash []byte, status OpStatus, sigs [][]byte, errCode, errDesc string) error
	Op(ctx context.Context, idHash []byte) (AsyncOp, error)

	// PurgePending deletes expired authorizations, challenges and operations.
	PurgePending(ctx context.Context, now time.Time) error
}
