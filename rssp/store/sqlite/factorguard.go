package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

// The guards of factor checks (store.Store's TryFactorLock,
// ReleaseFactorLock, UseTOTPStep): each one conditional UPDATE in the
// writer.

// TryFactorLock implements store.Store.
func (d *DB) TryFactorLock(ctx context.Context, id, holder string, now, until time.Time) (store.Credential, error) {
	if holder == "" {
		return store.Credential{}, errors.New("sqlite: factor lock: empty holder")
	}
	nowN, err := requiredNanos(now)
	if err != nil {
		return store.Credential{}, fmt.Errorf("sqlite: factor lock: now: %w", err)
	}
	untilN, err := requiredNanos(until)
	if err != nil {
		return store.Credential{}, fmt.Errorf("sqlite: factor lock: until: %w", err)
	}
	var c store.Credential
	err = d.writeTx(ctx, func(ctx context.Context, tx txn) error {
		var err error
		c, err = scanCredential(tx.QueryRowContext(ctx, `UPDATE credentials SET factor_holder = ?1, factor_until = ?2
			WHERE id = ?3 AND (factor_holder = '' OR factor_until <= ?4 OR factor_holder = ?1)
			RETURNING `+credentialCols, holder, untilN, id, nowN))
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM credentials WHERE id = ?`, id).Scan(&one); err != nil {
			return notFound(err)
		}
		return store.ErrBusy
	})
	if err != nil {
		return store.Credential{}, fmt.Errorf("sqlite: factor lock of %q: %w", id, err)
	}
	return c, nil
}

// ReleaseFactorLock implements store.Store.
func (d *DB) ReleaseFactorLock(ctx context.Context, id, holder string) error {
	if _, err := d.exec(ctx, `UPDATE credentials SET factor_holder = '', factor_until = 0 WHERE id = ? AND factor_holder = ?`,
		id, holder); err != nil {
		return fmt.Errorf("sqlite: release factor lock of %q: %w", id, err)
	}
	return nil
}

// ReleaseAllFactorLocks drops every factor lease and returns how many
// were held. A SQLite store is served by one rssp process, so when that
// process starts, a lease still held was left by its predecessor, killed
// while it checked a factor; kept, it would refuse that credential's
// checks until it expires. (PostgreSQL, shared by several nodes, keeps
// them: another node may hold one.)
func (d *DB) ReleaseAllFactorLocks(ctx context.Context) (int64, error) {
	n, err := d.exec(ctx, `UPDATE credentials SET factor_holder = '', factor_until = 0 WHERE factor_holder != ''`)
	if err != nil {
		return 0, fmt.Errorf("sqlite: release factor locks: %w", err)
	}
	return n, nil
}

// UseTOTPStep implements store.Store.
func (d *DB) UseTOTPStep(ctx context.Context, id string, step int64) error {
	err := d.writeTx(ctx, func(ctx context.Context, tx txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE credentials SET totp_step = ?1 WHERE id = ?2 AND (totp_step IS NULL OR totp_step < ?1)`,
			step, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM credentials WHERE id = ?`, id).Scan(&one); err != nil {
			return notFound(err)
		}
		return store.ErrUsed
	})
	if err != nil {
		return fmt.Errorf("sqlite: TOTP step of %q: %w", id, err)
	}
	return nil
}
