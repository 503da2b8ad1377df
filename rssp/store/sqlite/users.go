package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/csctoken/csctoken/rssp/store"
)

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

const userCols = `id, name, password_hash, disabled, created_at, external_subject, require_fido`

func scanUser(sc scanner) (store.User, error) {
	var (
		u       store.User
		created sql.NullInt64
		sub     sql.NullString
	)
	if err := sc.Scan(&u.ID, &u.Name, &u.PasswordHash, &u.Disabled, &created, &sub, &u.RequireFIDO); err != nil {
		return store.User{}, err
	}
	u.CreatedAt = fromNanos(created)
	u.ExternalSubject = sub.String
	return u, nil
}

// CreateUser implements store.Store.
func (d *DB) CreateUser(ctx context.Context, u store.User) error {
	if u.ID == "" || u.Name == "" {
		return errors.New("sqlite: create user: empty ID or name")
	}
	created, err := nanos(u.CreatedAt)
	if err != nil {
		return fmt.Errorf("sqlite: create user %q: created at: %w", u.Name, err)
	}
	_, err = d.execStmt(ctx, stUserInsert, u.ID, u.Name, u.PasswordHash, u.Disabled, created, nullString(u.ExternalSubject),
		u.RequireFIDO)
	switch {
	case isTaken(err):
		return fmt.Errorf("sqlite: create user %q: %w", u.Name, store.ErrExists)
	case err != nil:
		return fmt.Errorf("sqlite: create user %q: %w", u.Name, err)
	}
	return nil
}

// UserByName implements store.Store.
func (d *DB) UserByName(ctx context.Context, name string) (store.User, error) {
	u, err := get(ctx, d, stUserByName, scanUser, name)
	if err != nil {
		return store.User{}, fmt.Errorf("sqlite: user named %q: %w", name, notFound(err))
	}
	return u, nil
}

// UserByID implements store.Store.
func (d *DB) UserByID(ctx context.Context, id string) (store.User, error) {
	u, err := get(ctx, d, stUserByID, scanUser, id)
	if err != nil {
		return store.User{}, fmt.Errorf("sqlite: user %q: %w", id, notFound(err))
	}
	return u, nil
}

// UserByExternalSubject implements store.Store.
func (d *DB) UserByExternalSubject(ctx context.Context, sub string) (store.User, error) {
	if sub == "" {
		return store.User{}, fmt.Errorf("sqlite: user of external subject %q: %w", sub, store.ErrNotFound)
	}
	u, err := get(ctx, d, stUserBySubject, scanUser, sub)
	if err != nil {
		return store.User{}, fmt.Errorf("sqlite: user of external subject %q: %w", sub, notFound(err))
	}
	return u, nil
}

// SetUserExternalSubject implements store.Store.
func (d *DB) SetUserExternalSubject(ctx context.Context, id, sub string) error {
	err := d.writeTx(ctx, func(ctx context.Context, tx txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET external_subject = ? WHERE id = ?`, nullString(sub), id)
		if isTaken(err) {
			return store.ErrExists
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return notFoundIf(err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: set the external subject of user %q: %w", id, err)
	}
	return nil
}

// nullString is NULL for "" (a unique column holds many NULLs).
func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// notFound turns sql.ErrNoRows into store.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}
