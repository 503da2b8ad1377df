package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/csctoken/csctoken/rssp/store"
)

// Out-of-band authorizations, online OTP challenges, asynchronous
// operations: a request started on one node is decided, polled or finished
// on another through these rows.

const pendingCols = `handle_hash, approval_hash, user_id, credential_id, num_signatures, hash_algo, hashes, description, decision, expires_at, created_at`

func scanPending(sc scanner) (store.PendingAuth, error) {
	var (
		p                store.PendingAuth
		decision         string
		expires, created *int64
	)
	if err := sc.Scan(&p.HandleHash, &p.ApprovalHash, &p.UserID, &p.CredentialID, &p.NumSignatures, &p.HashAlgo,
		&p.Hashes, &p.Description, &decision, &expires, &created); err != nil {
		return store.PendingAuth{}, err
	}
	p.Hashes = bytesList(p.Hashes)
	p.Decision = store.Decision(decision)
	p.ExpiresAt, p.CreatedAt = fromNanos(expires), fromNanos(created)
	return p, nil
}

// CreatePending implements store.PendingStore.
func (d *DB) CreatePending(ctx context.Context, p store.PendingAuth) error {
	expires, err := requiredNanos(p.ExpiresAt)
	if err != nil {
		return fmt.Errorf("postgres: create pending: %w", err)
	}
	created, err := nanos(p.CreatedAt)
	if err != nil {
		return fmt.Errorf("postgres: create pending: %w", err)
	}
	if p.Decision == "" {
		p.Decision = store.Pending
	}
	_, err = d.exec(ctx, `INSERT INTO pending_auth (`+pendingCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		p.HandleHash, p.ApprovalHash, p.UserID, p.CredentialID, p.NumSignatures, p.HashAlgo, list(p.Hashes),
		p.Description, string(p.Decision), expires, created)
	if err := insertErr(err, "user or credential"); err != nil {
		return fmt.Errorf("postgres: create pending: %w", err)
	}
	return nil
}

// PendingByApproval implements store.PendingStore.
func (d *DB) PendingByApproval(ctx context.Context, approvalHash []byte) (store.PendingAuth, error) {
	p, err := scanPending(d.pool.QueryRow(ctx, `SELECT `+pendingCols+` FROM pending_auth WHERE approval_hash = $1`, approvalHash))
	if err != nil {
		return store.PendingAuth{}, fmt.Errorf("postgres: pending: %w", notFound(err))
	}
	return p, nil
}

// DecidePending implements store.PendingStore with a conditional UPDATE:
// one decision wins.
func (d *DB) DecidePending(ctx context.Context, approvalHash []byte, dec store.Decision, now time.Time) error {
	if dec != store.Approved && dec != store.Denied {
		return fmt.Errorf("postgres: decide pending: decision %q", dec)
	}
	nowN, err := requiredNanos(now)
	if err != nil {
		return fmt.Errorf("postgres: decide pending: %w", err)
	}
	err = d.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE pending_auth SET decision = $1
			WHERE approval_hash = $2 AND decision = 'pending' AND expires_at > $3`, string(dec), approvalHash, nowN)
		if err != nil || tag.RowsAffected() == 1 {
			return err
		}
		var (
			cur string
			exp int64
		)
		err = tx.QueryRow(ctx, `SELECT decision, expires_at FROM pending_auth WHERE approval_hash = $1`, approvalHash).Scan(&cur, &exp)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return store.ErrNotFound
		case err != nil:
			return err
		case cur != string(store.Pending):
			return store.ErrNotFound
		}
		return store.ErrExpired
	})
	if err != nil {
		return fmt.Errorf("postgres: decide pending: %w", err)
	}
	return nil
}

// TakePending implements store.PendingStore: the row is locked (SELECT ...
// FOR UPDATE) while deciding whether to delete it, so a handle yields one
// SAD whichever nodes poll it.
func (d *DB) TakePending(ctx context.Context, handleHash []byte, userID string, now time.Time) (store.PendingAuth, error) {
	nowN, err := requiredNanos(now)
	if err != nil {
		return store.PendingAuth{}, fmt.Errorf("postgres: take pending: %w", err)
	}
	var (
		p       store.PendingAuth
		expired bool
	)
	err = d.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		p, err = scanPending(tx.QueryRow(ctx, `SELECT `+pendingCols+` FROM pending_auth WHERE handle_hash = $1 FOR UPDATE`, handleHash))
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
		if _, err := tx.Exec(ctx, `DELETE FROM pending_auth WHERE handle_hash = $1`, handleHash); err != nil {
			return err
		}
		return nil // deleted, expired or not: committed
	})
	if err == nil && expired {
		err = store.ErrExpired
	}
	if err != nil {
		return store.PendingAuth{}, fmt.Errorf("postgres: take pending: %w", err)
	}
	return p, nil
}

// SetChallenge implements store.PendingStore.
func (d *DB) SetChallenge(ctx context.Context, c store.Challenge) error {
	expires, err := requiredNanos(c.ExpiresAt)
	if err != nil {
		return fmt.Errorf("postgres: set challenge: %w", err)
	}
	_, err = d.exec(ctx, `INSERT INTO challenges (credential_id, code_hash, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (credential_id) DO UPDATE SET code_hash = excluded.code_hash, expires_at = excluded.expires_at`,
		c.CredentialID, c.CodeHash, expires)
	if err := insertErr(err, "credential "+c.CredentialID); err != nil {
		return fmt.Errorf("postgres: set challenge: %w", err)
	}
	return nil
}

// Challenge implements store.PendingStore.
func (d *DB) Challenge(ctx context.Context, credentialID string) (store.Challenge, error) {
	var (
		c   store.Challenge
		exp *int64
	)
	err := d.pool.QueryRow(ctx, `SELECT credential_id, code_hash, expires_at FROM challenges WHERE credential_id = $1`, credentialID).
		Scan(&c.CredentialID, &c.CodeHash, &exp)
	if err != nil {
		return store.Challenge{}, fmt.Errorf("postgres: challenge: %w", notFound(err))
	}
	c.ExpiresAt = fromNanos(exp)
	return c, nil
}

// DeleteChallenge implements store.PendingStore.
func (d *DB) DeleteChallenge(ctx context.Context, credentialID string) error {
	if _, err := d.exec(ctx, `DELETE FROM challenges WHERE credential_id = $1`, credentialID); err != nil {
		return fmt.Errorf("postgres: delete challenge: %w", err)
	}
	return nil
}

const opCols = `id_hash, user_id, credential_id, status, signatures, err_code, err_desc, expires_at, created_at`

// CreateOp implements store.PendingStore.
func (d *DB) CreateOp(ctx context.Context, op store.AsyncOp) error {
	expires, err := requiredNanos(op.ExpiresAt)
	if err != nil {
		return fmt.Errorf("postgres: create op: %w", err)
	}
	created, err := nanos(op.CreatedAt)
	if err != nil {
		return fmt.Errorf("postgres: create op: %w", err)
	}
	_, err = d.exec(ctx, `INSERT INTO async_ops (`+opCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		op.IDHash, op.UserID, op.CredentialID, string(op.Status), list(op.Signatures), op.ErrCode, op.ErrDesc, expires, created)
	if err := insertErr(err, "user or credential"); err != nil {
		return fmt.Errorf("postgres: create op: %w", err)
	}
	return nil
}

// FinishOp implements store.PendingStore: a running operation finishes
// once.
func (d *DB) FinishOp(ctx context.Context, idHash []byte, status store.OpStatus, sigs [][]byte, errCode, errDesc string) error {
	n, err := d.exec(ctx, `UPDATE async_ops SET status = $1, signatures = $2, err_code = $3, err_desc = $4
		WHERE id_hash = $5 AND status = 'running'`,
		string(status), list(sigs), errCode, errDesc, idHash)
	switch {
	case err != nil:
		return fmt.Errorf("postgres: finish op: %w", err)
	case n == 0:
		return fmt.Errorf("postgres: finish op: %w", store.ErrNotFound)
	}
	return nil
}

// Op implements store.PendingStore.
func (d *DB) Op(ctx context.Context, idHash []byte) (store.AsyncOp, error) {
	var (
		op               store.AsyncOp
		status           string
		expires, created *int64
	)
	err := d.pool.QueryRow(ctx, `SELECT `+opCols+` FROM async_ops WHERE id_hash = $1`, idHash).
		Scan(&op.IDHash, &op.UserID, &op.CredentialID, &status, &op.Signatures, &op.ErrCode, &op.ErrDesc, &expires, &created)
	if err != nil {
		return store.AsyncOp{}, fmt.Errorf("postgres: op: %w", notFound(err))
	}
	op.Status = store.OpStatus(status)
	op.Signatures = bytesList(op.Signatures)
	op.ExpiresAt, op.CreatedAt = fromNanos(expires), fromNanos(created)
	return op, nil
}

// PurgePending implements store.PendingStore.
func (d *DB) PurgePending(ctx context.Context, now time.Time) error {
	nowN, err := requiredNanos(now)
	if err != nil {
		return fmt.Errorf("postgres: purge pending: %w", err)
	}
	err = d.inTx(ctx, func(tx pgx.Tx) error {
		for _, q := range []string{
			`DELETE FROM pending_auth WHERE expires_at <= $1`,
			`DELETE FROM challenges WHERE expires_at <= $1`,
			`DELETE FROM async_ops WHERE expires_at <= $1`,
		} {
			if _, err := tx.Exec(ctx, q, nowN); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: purge pending: %w", err)
	}
	return nil
}
