package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

const tokenCols = `hash, kind, user_id, client_id, scope, family, expires_at, revoked, created_at`

func scanToken(sc scanner) (store.Token, error) {
	var (
		t                store.Token
		expires, created sql.NullInt64
	)
	if err := sc.Scan(&t.Hash, &t.Kind, &t.UserID, &t.ClientID, &t.Scope, &t.Family, &expires, &t.Revoked,
		&created); err != nil {
		return store.Token{}, err
	}
	t.ExpiresAt = fromNanos(expires)
	t.CreatedAt = fromNanos(created)
	return t, nil
}

// CreateToken implements store.Store.
func (d *DB) CreateToken(ctx context.Context, t store.Token) error {
	if len(t.Hash) == 0 {
		return errors.New("sqlite: create token: empty hash")
	}
	expires, err := requiredNanos(t.ExpiresAt)
	if err != nil {
		return fmt.Errorf("sqlite: create token: expires at: %w", err)
	}
	created, err := nanos(t.CreatedAt)
	if err != nil {
		return fmt.Errorf("sqlite: create token: created at: %w", err)
	}
	_, err = d.execStmt(ctx, stTokenInsert, t.Hash, string(t.Kind), t.UserID, t.ClientID, t.Scope, t.Family, expires,
		t.Revoked, created)
	switch {
	case isTaken(err):
		return fmt.Errorf("sqlite: create token: %w", store.ErrExists)
	case isMissingParent(err):
		return fmt.Errorf("sqlite: create token: user %q: %w", t.UserID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: create token: %w", err)
	}
	return nil
}

// Token implements store.Store.
func (d *DB) Token(ctx context.Context, hash []byte) (store.Token, error) {
	t, err := get(ctx, d, stToken, scanToken, hash)
	if err != nil {
		return store.Token{}, fmt.Errorf("sqlite: token: %w", notFound(err))
	}
	return t, nil
}

// RevokeToken implements store.Store. Revoking a revoked token is not an
// error.
func (d *DB) RevokeToken(ctx context.Context, hash []byte) error {
	n, err := d.execStmt(ctx, stTokenRevoke, hash)
	switch {
	case err != nil:
		return fmt.Errorf("sqlite: revoke token: %w", err)
	case n == 0:
		return fmt.Errorf("sqlite: revoke token: %w", store.ErrNotFound)
	}
	return nil
}

// RotateToken implements store.Store: a conditional UPDATE (when it matched
// nothing a SELECT in the same write says why), then the INSERTs of next.
func (d *DB) RotateToken(ctx context.Context, hash []byte, next []store.Token) error {
	type row struct {
		t                store.Token
		expires, created any
	}
	rows := make([]row, len(next))
	for i, t := range next {
		if len(t.Hash) == 0 {
			return errors.New("sqlite: rotate token: empty hash")
		}
		expires, err := requiredNanos(t.ExpiresAt)
		if err != nil {
			return fmt.Errorf("sqlite: rotate token: expires at: %w", err)
		}
		created, err := nanos(t.CreatedAt)
		if err != nil {
			return fmt.Errorf("sqlite: rotate token: created at: %w", err)
		}
		rows[i] = row{t, expires, created}
	}
	err := d.write(ctx, func(w *wtx) error {
		res, err := w.exec(stTokenRotate, hash)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n != 1 {
			var revoked bool
			if err := w.queryRow(stTokenRevoked, hash).Scan(&revoked); err != nil {
				return notFound(err)
			}
			return store.ErrRevoked
		}
		for _, r := range rows {
			t := r.t
			_, err := w.exec(stTokenInsert, t.Hash, string(t.Kind), t.UserID, t.ClientID, t.Scope, t.Family,
				r.expires, t.Revoked, r.created)
			switch {
			case isTaken(err):
				return fmt.Errorf("new token: %w", store.ErrExists)
			case isMissingParent(err):
				return fmt.Errorf("new token: user %q: %w", t.UserID, store.ErrNotFound)
			case err != nil:
				return fmt.Errorf("new token: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: rotate token: %w", err)
	}
	return nil
}

// RevokeFamily implements store.Store.
func (d *DB) RevokeFamily(ctx context.Context, family string) error {
	if family == "" {
		return nil // never "every token without a family"
	}
	if _, err := d.execStmt(ctx, stTokenRevokeFamily, family); err != nil {
		return fmt.Errorf("sqlite: revoke token family: %w", err)
	}
	return nil
}

// Purge implements store.Store.
func (d *DB) Purge(ctx context.Context, now time.Time) error {
	n, err := requiredNanos(now)
	if err != nil {
		return fmt.Errorf("sqlite: purge: %w", err)
	}
	err = d.write(ctx, func(w *wtx) error {
		if _, err := w.exec(stTokenPurge, n); err != nil {
			return fmt.Errorf("tokens: %w", err)
		}
		if _, err := w.exec(stSADPurge, n); err != nil {
			return fmt.Errorf("SADs: %w", err)
		}
		if _, err := w.exec(stThrottlePurge, n); err != nil {
			return fmt.Errorf("throttles: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: purge: %w", err)
	}
	return nil
}
