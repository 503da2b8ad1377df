package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

var _ store.PendingStore = (*DB)(nil)

const pendingCols = `handle_hash, approval_hash, user_id, credential_id, num_signatures, hash_algo, hashes, description, decision, expires_at, created_at`

func scanPending(sc scanner) (store.PendingAuth, error) {
	var (
		p                store.PendingAuth
		hashes           []byte
		decision         string
		expires, created sql.NullInt64
	)
	if err := sc.Scan(&p.HandleHash, &p.ApprovalHash, &p.UserID, &p.CredentialID, &p.NumSignatures, &p.HashAlgo,
		&hashes, &p.Description, &decision, &expires, &created); err != nil {
		return store.PendingAuth{}, err
	}
	var err error
	if p.Hashes, err = decodeList[[]byte](hashes); err != nil {
		return store.PendingAuth{}, fmt.Errorf("hashes: %w", err)
	}
	p.Decision = store.Decision(decision)
	p.ExpiresAt, p.CreatedAt = fromNanos(expires), fromNanos(created)
	return p, nil
}

// CreatePending implements store.PendingStore.
func (d *DB) CreatePending(ctx context.Context, p store.PendingAuth) error {
	expires, err := requiredNanos(p.ExpiresAt)
	if err != nil {
		return fmt.Errorf("sqlite: create pending: %w", err)
	}
	created, err := nanos(p.CreatedAt)
	if err != nil {
		return fmt.Errorf("sqlite: create pending: %w", err)
	}
	if p.Decision == "" {
		p.Decision = store.Pending
	}
	_, err = d.exec(ctx, `INSERT INTO pending_auth (`+pendingCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.HandleHash, p.ApprovalHash, p.UserID, p.CredentialID, p.NumSignatures, p.HashAlgo, encodeList(p.Hashes),
		p.Description, string(p.Decision), expires, created)
	switch {
	case isTaken(err):
		return fmt.Errorf("sqlite: create pending: %w", store.ErrExists)
	case isMissingParent(err):
		return fmt.Errorf("sqlite: create pending: %w", store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: create pending: %w", err)
	}
	return nil
}

// PendingByApproval implements store.PendingStore.
func (d *DB) PendingByApproval(ctx context.Context, approvalHash []byte) (store.PendingAuth, error) {
	p, err := scanPending(d.db.QueryRowContext(ctx, `SELECT `+pendingCols+` FROM pending_auth WHERE approval_hash = ?`, approvalHash))
	if err != nil {
		return store.PendingAuth{}, fmt.Errorf("sqlite: pending: %w", notFound(err))
	}
	return p, nil
}

// DecidePending implements store.PendingStore.
func (d *DB) DecidePending(ctx context.Context, approvalHash []byte, dec store.Decision, now time.Time) error {
	if dec != store.Approved && dec != store.Denied {
		return fmt.Errorf("sqlite: decide pending: decision %q", dec)
	}
	nowN, err := requiredNanos(now)
	if err != nil {
		return err
	}
	err = d.writeTx(ctx, func(ctx context.Context, tx txn) error {
		var exp int64
		var cur string
		err := tx.QueryRowContext(ctx, `SELECT decision, expires_at FROM pending_auth WHERE approval_hash = ?`, approvalHash).Scan(&cur, &exp)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return store.ErrNotFound
		case err != nil:
			return err
		case cur != string(store.Pending):
			return store.ErrNotFound
		case exp <= nowN:
			return store.ErrExpired
		}
		_, err = tx.ExecContext(ctx, `UPDATE pending_auth SET decision = ? WHERE approval_hash = ?`, string(dec), approvalHash)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: decide pending: %w", err)
	}
	return nil
}

// TakePending implements store.PendingStore.
func (d *DB) TakePending(ctx context.Context, handleHash []byte, userID string, now time.Time) (store.PendingAuth, error) {
	nowN, err := requiredNanos(now)
	if err != nil {
		return store.PendingAuth{}, err
	}
	var (
		p       store.PendingAuth
		expired bool
	)
	err = d.writeTx(ctx, func(ctx context.Context, tx txn) error {
		var err error
		p, err = scanPending(tx.QueryRowContext(ctx, `SELECT `+pendingCols+` FROM pending_auth WHERE handle_hash = ?`, handleHash))
		if err != nil {
			return notFound(err)
		}
		if p.UserID != userID {
			return store.ErrNotFound // another user's handle: untouched
		}
		expired = p.ExpiresAt.UnixNano() <= nowN
		if p.Decision == store.Pending && !expired {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM pending_auth WHERE handle_hash = ?`, handleHash); err != nil {
			return err
		}
		return nil // deleted, expired or not: committed
	})
	if err == nil && expired {
		err = store.ErrExpired
	}
	if err != nil {
		return store.PendingAuth{}, fmt.Errorf("sqlite: take pending: %w", err)
	}
	return p, nil
}

// SetChallenge implements store.PendingStore.
func (d *DB) SetChallenge(ctx context.Context, c store.Challenge) error {
	expires, err := requiredNanos(c.ExpiresAt)
	if err != nil {
		return err
	}
	_, err = d.exec(ctx, `INSERT INTO challenges (credential_id, code_hash, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (credential_id) DO UPDATE SET code_hash = excluded.code_hash, expires_at = excluded.expires_at`,
		c.CredentialID, c.CodeHash, expires)
	if isMissingParent(err) {
		return fmt.Errorf("sqlite: set challenge: %w", store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("sqlite: set challenge: %w", err)
	}
	return nil
}

// Challenge implements store.PendingStore.
func (d *DB) Challenge(ctx context.Context, credentialID string) (store.Challenge, error) {
	var c store.Challenge
	var exp sql.NullInt64
	err := d.db.QueryRowContext(ctx, `SELECT credential_id, code_hash, expires_at FROM challenges WHERE credential_id = ?`, credentialID).
		Scan(&c.CredentialID, &c.CodeHash, &exp)
	if err != nil {
		return store.Challenge{}, fmt.Errorf("sqlite: challenge: %w", notFound(err))
	}
	c.ExpiresAt = fromNanos(exp)
	return c, nil
}

// DeleteChallenge implements store.PendingStore.
func (d *DB) DeleteChallenge(ctx context.Context, credentialID string) error {
	if _, err := d.exec(ctx, `DELETE FROM challenges WHERE credential_id = ?`, credentialID); err != nil {
		return fmt.Errorf("sqlite: delete challenge: %w", err)
	}
	return nil
}

const opCols = `id_hash, user_id, credential_id, status, signatures, err_code, err_desc, expires_at, created_at`

// CreateOp implements store.PendingStore.
func (d *DB) CreateOp(ctx context.Context, op store.AsyncOp) error {
	expires, err := requiredNanos(op.ExpiresAt)
	if err != nil {
		return err
	}
	created, err := nanos(op.CreatedAt)
	if err != nil {
		return err
	}
	_, err = d.exec(ctx, `INSERT INTO async_ops (`+opCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		op.IDHash, op.UserID, op.CredentialID, string(op.Status), encodeList(op.Signatures), op.ErrCode, op.ErrDesc, expires, created)
	switch {
	case isTaken(err):
		return fmt.Errorf("sqlite: create op: %w", store.ErrExists)
	case isMissingParent(err):
		return fmt.Errorf("sqlite: create op: %w", store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: create op: %w", err)
	}
	return nil
}

// FinishOp implements store.PendingStore.
func (d *DB) FinishOp(ctx context.Context, idHash []byte, status store.OpStatus, sigs [][]byte, errCode, errDesc string) error {
	n, err := d.exec(ctx, `UPDATE async_ops SET status = ?, signatures = ?, err_code = ?, err_desc = ? WHERE id_hash = ? AND status = 'running'`,
		string(status), encodeList(sigs), errCode, errDesc, idHash)
	switch {
	case err != nil:
		return fmt.Errorf("sqlite: finish op: %w", err)
	case n == 0:
		return fmt.Errorf("sqlite: finish op: %w", store.ErrNotFound)
	}
	return nil
}

// Op implements store.PendingStore.
func (d *DB) Op(ctx context.Context, idHash []byte) (store.AsyncOp, error) {
	var (
		op               store.AsyncOp
		status           string
		sigs             []byte
		expires, created sql.NullInt64
	)
	err := d.db.QueryRowContext(ctx, `SELECT `+opCols+` FROM async_ops WHERE id_hash = ?`, idHash).
		Scan(&op.IDHash, &op.UserID, &op.CredentialID, &status, &sigs, &op.ErrCode, &op.ErrDesc, &expires, &created)
	if err != nil {
		return store.AsyncOp{}, fmt.Errorf("sqlite: op: %w", notFound(err))
	}
	op.Status = store.OpStatus(status)
	if op.Signatures, err = decodeList[[]byte](sigs); err != nil {
		return store.AsyncOp{}, fmt.Errorf("sqlite: op: %w", err)
	}
	op.ExpiresAt, op.CreatedAt = fromNanos(expires), fromNanos(created)
	return op, nil
}

// PurgePending implements store.PendingStore.
func (d *DB) PurgePending(ctx context.Context, now time.Time) error {
	nowN, err := requiredNanos(now)
	if err != nil {
		return err
	}
	return d.writeTx(ctx, func(ctx context.Context, tx txn) error {
		for _, q := range []string{
			`DELETE FROM pending_auth WHERE expires_at <= ?`,
			`DELETE FROM challenges WHERE expires_at <= ?`,
			`DELETE FROM async_ops WHERE expires_at <= ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, nowN); err != nil {
				return err
			}
		}
		return nil
	})
}
