package sqlite

import (
	"context"
	"fmt"

	"github.com/csctoken/csctoken/rssp/store"
)

// The administrator's changes of users and credentials (rssp admin): rare,
// so their SQL is not prepared.

// Users implements store.Store.
func (d *DB) Users(ctx context.Context) ([]store.User, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+userCols+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: users: %w", err)
	}
	defer rows.Close()
	var us []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: users: %w", err)
		}
		us = append(us, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: users: %w", err)
	}
	return us, nil
}

// SetUserDisabled implements store.Store.
func (d *DB) SetUserDisabled(ctx context.Context, id string, disabled bool) error {
	return d.changeUser(ctx, "disable user", id, `UPDATE users SET disabled = ? WHERE id = ?`, disabled, id)
}

// SetUserPassword implements store.Store.
func (d *DB) SetUserPassword(ctx context.Context, id, passwordHash string) error {
	return d.changeUser(ctx, "set the password of user", id, `UPDATE users SET password_hash = ? WHERE id = ?`, passwordHash, id)
}

// changeUser runs one UPDATE of a user and deletes the user's tokens.
func (d *DB) changeUser(ctx context.Context, what, id, query string, args ...any) error {
	err := d.writeTx(ctx, func(ctx context.Context, tx txn) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return notFoundIf(err)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM tokens WHERE user_id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: %s %q: %w", what, id, err)
	}
	return nil
}

// notFoundIf is err, or store.ErrNotFound when err is nil (no row).
func notFoundIf(err error) error {
	if err != nil {
		return err
	}
	return store.ErrNotFound
}

// DeleteUser implements store.Store.
func (d *DB) DeleteUser(ctx context.Context, id string) error {
	err := d.writeTx(ctx, func(ctx context.Context, tx txn) error {
		var creds, clients int
		if err := tx.QueryRowContext(ctx, `SELECT
			(SELECT count(*) FROM credentials WHERE user_id = ?1),
			(SELECT count(*) FROM oauth_clients WHERE user_id = ?1)`, id).Scan(&creds, &clients); err != nil {
			return err
		}
		if creds > 0 || clients > 0 {
			return fmt.Errorf("%w: %d credential(s), %d OAuth2 client(s)", store.ErrInUse, creds, clients)
		}
		for _, q := range []string{
			`DELETE FROM tokens WHERE user_id = ?`,
			`DELETE FROM sads WHERE user_id = ?`,
			`DELETE FROM oauth_codes WHERE user_id = ?`,
			`DELETE FROM oauth_sessions WHERE user_id = ?`,
			`DELETE FROM webauthn_keys WHERE user_id = ?`,
			`DELETE FROM pending_auth WHERE user_id = ?`,
			`DELETE FROM async_ops WHERE user_id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return notFoundIf(err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete user %q: %w", id, err)
	}
	return nil
}

// DeleteCredential implements store.Store.
func (d *DB) DeleteCredential(ctx context.Context, id string) error {
	err := d.writeTx(ctx, func(ctx context.Context, tx txn) error {
		for _, q := range []string{
			`DELETE FROM sads WHERE credential_id = ?`,
			`DELETE FROM oauth_codes WHERE credential_id = ?`,
			`DELETE FROM oauth_credential_tokens WHERE credential_id = ?`,
			`DELETE FROM pending_auth WHERE credential_id = ?`,
			`DELETE FROM challenges WHERE credential_id = ?`,
			`DELETE FROM async_ops WHERE credential_id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM credentials WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return notFoundIf(err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete credential %q: %w", id, err)
	}
	return nil
}
