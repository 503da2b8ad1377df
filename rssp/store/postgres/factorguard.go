package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/csctoken/csctoken/rssp/store"
)

// The guards of factor checks across nodes (store.Store's TryFactorLock,
// ReleaseFactorLock, UseTOTPStep): each one conditional UPDATE, which the
// row lock makes a compare-and-set between nodes.

// TryFactorLock implements store.Store.
func (d *DB) TryFactorLock(ctx context.Context, id, holder string, now, until time.Time) (store.Credential, error) {
	if holder == "" {
		return store.Credential{}, errors.New("postgres: factor lock: empty holder")
	}
	nowN, err := requiredNanos(now)
	if err != nil {
		return store.Credential{}, fmt.Errorf("postgres: factor lock: now: %w", err)
	}
	untilN, err := requiredNanos(until)
	if err != nil {
		return store.Credential{}, fmt.Errorf("postgres: factor lock: until: %w", err)
	}
	var c store.Credential
	err = d.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		c, err = scanCredential(tx.QueryRow(ctx, `UPDATE credentials SET factor_holder = $1, factor_until = $2
			WHERE id = $3 AND (factor_holder = '' OR factor_until <= $4 OR factor_holder = $1)
			RETURNING `+credentialCols, holder, untilN, id, nowN))
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM credentials WHERE id = $1`, id).Scan(&one); err != nil {
			return notFound(err)
		}
		return store.ErrBusy
	})
	if err != nil {
		return store.Credential{}, fmt.Errorf("postgres: factor lock of %q: %w", id, err)
	}
	return c, nil
}

// ReleaseFactorLock implements store.Store.
func (d *DB) ReleaseFactorLock(ctx context.Context, id, holder string) error {
	if _, err := d.exec(ctx, `UPDATE credentials SET factor_holder = '', factor_until = 0 WHERE id = $1 AND factor_holder = $2`,
		id, holder); err != nil {
		return fmt.Errorf("postgres: release factor lock of %q: %w", id, err)
	}
	return nil
}

// UseTOTPStep implements store.Store.
func (d *DB) UseTOTPStep(ctx context.Context, id string, step int64) error {
	err := d.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE credentials SET totp_step = $1 WHERE id = $2 AND (totp_step IS NULL OR totp_step < $1)`,
			step, id)
		if err != nil || tag.RowsAffected() == 1 {
			return err
		}
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM credentials WHERE id = $1`, id).Scan(&one); err != nil {
			return notFound(err)
		}
		return store.ErrUsed
	})
	if err != nil {
		return fmt.Errorf("postgres: TOTP step of %q: %w", id, err)
	}
	return nil
}
