package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/csctoken/csctoken/rssp/store"
)

// Users and credentials.

const userCols = `id, name, password_hash, disabled, created_at, external_subject, require_fido`

func scanUser(sc scanner) (store.User, error) {
	var (
		u       store.User
		created *int64
		sub     *string
	)
	if err := sc.Scan(&u.ID, &u.Name, &u.PasswordHash, &u.Disabled, &created, &sub, &u.RequireFIDO); err != nil {
		return store.User{}, err
	}
	u.CreatedAt = fromNanos(created)
	u.ExternalSubject = text(sub)
	return u, nil
}

// CreateUser implements store.Store.
func (d *DB) CreateUser(ctx context.Context, u store.User) error {
	if u.ID == "" || u.Name == "" {
		return errors.New("postgres: create user: empty ID or name")
	}
	created, err := nanos(u.CreatedAt)
	if err != nil {
		return fmt.Errorf("postgres: create user %q: created at: %w", u.Name, err)
	}
	_, err = d.exec(ctx, `INSERT INTO users (`+userCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		u.ID, u.Name, u.PasswordHash, u.Disabled, created, nullText(u.ExternalSubject), u.RequireFIDO)
	switch {
	case isTaken(err):
		return fmt.Errorf("postgres: create user %q: %w", u.Name, store.ErrExists)
	case err != nil:
		return fmt.Errorf("postgres: create user %q: %w", u.Name, err)
	}
	return nil
}

// UserByName implements store.Store.
func (d *DB) UserByName(ctx context.Context, name string) (store.User, error) {
	u, err := scanUser(d.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE name = $1`, name))
	if err != nil {
		return store.User{}, fmt.Errorf("postgres: user named %q: %w", name, notFound(err))
	}
	return u, nil
}

// UserByID implements store.Store.
func (d *DB) UserByID(ctx context.Context, id string) (store.User, error) {
	u, err := scanUser(d.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id))
	if err != nil {
		return store.User{}, fmt.Errorf("postgres: user %q: %w", id, notFound(err))
	}
	return u, nil
}

// UserByExternalSubject implements store.Store.
func (d *DB) UserByExternalSubject(ctx context.Context, sub string) (store.User, error) {
	if sub == "" {
		return store.User{}, fmt.Errorf("postgres: user of external subject %q: %w", sub, store.ErrNotFound)
	}
	u, err := scanUser(d.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE external_subject = $1`, sub))
	if err != nil {
		return store.User{}, fmt.Errorf("postgres: user of external subject %q: %w", sub, notFound(err))
	}
	return u, nil
}

// SetUserExternalSubject implements store.Store.
func (d *DB) SetUserExternalSubject(ctx context.Context, id, sub string) error {
	n, err := d.exec(ctx, `UPDATE users SET external_subject = $1 WHERE id = $2`, nullText(sub), id)
	switch {
	case isTaken(err):
		return fmt.Errorf("postgres: set the external subject of user %q: %w", id, store.ErrExists)
	case err != nil:
		return fmt.Errorf("postgres: set the external subject of user %q: %w", id, err)
	case n == 0:
		return fmt.Errorf("postgres: set the external subject of user %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// Users implements store.Store.
func (d *DB) Users(ctx context.Context) ([]store.User, error) {
	us, err := queryAll(ctx, d, scanUser, `SELECT `+userCols+` FROM users ORDER BY name COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("postgres: users: %w", err)
	}
	return us, nil
}

// queryAll runs a query and scans every row with scan.
func queryAll[T any](ctx context.Context, d *DB, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := d.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err)
	}
	return out, nil
}

// SetUserDisabled implements store.Store.
func (d *DB) SetUserDisabled(ctx context.Context, id string, disabled bool) error {
	return d.changeUser(ctx, "disable user", id, `UPDATE users SET disabled = $1 WHERE id = $2`, disabled, id)
}

// SetUserPassword implements store.Store.
func (d *DB) SetUserPassword(ctx context.Context, id, passwordHash string) error {
	return d.changeUser(ctx, "set the password of user", id, `UPDATE users SET password_hash = $1 WHERE id = $2`, passwordHash, id)
}

// changeUser runs one UPDATE of a user and deletes the user's tokens, in
// one transaction.
func (d *DB) changeUser(ctx context.Context, what, id, query string, args ...any) error {
	err := d.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, query, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		_, err = tx.Exec(ctx, `DELETE FROM tokens WHERE user_id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: %s %q: %w", what, id, err)
	}
	return nil
}

// DeleteUser implements store.Store. The user's row is locked first, so a
// credential or client created for the user meanwhile (its foreign key
// check takes a share lock on the row) waits or is seen.
func (d *DB) DeleteUser(ctx context.Context, id string) error {
	err := d.inTx(ctx, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, id).Scan(&one); err != nil {
			return notFound(err)
		}
		var creds, clients int
		if err := tx.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM credentials WHERE user_id = $1),
			(SELECT count(*) FROM oauth_clients WHERE user_id = $1)`, id).Scan(&creds, &clients); err != nil {
			return err
		}
		if creds > 0 || clients > 0 {
			return fmt.Errorf("%w: %d credential(s), %d OAuth2 client(s)", store.ErrInUse, creds, clients)
		}
		for _, q := range []string{
			`DELETE FROM tokens WHERE user_id = $1`,
			`DELETE FROM sads WHERE user_id = $1`,
			`DELETE FROM oauth_codes WHERE user_id = $1`,
			`DELETE FROM oauth_sessions WHERE user_id = $1`,
			`DELETE FROM webauthn_keys WHERE user_id = $1`,
			`DELETE FROM pending_auth WHERE user_id = $1`,
			`DELETE FROM async_ops WHERE user_id = $1`,
			`DELETE FROM users WHERE id = $1`,
		} {
			if _, err := tx.Exec(ctx, q, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: delete user %q: %w", id, err)
	}
	return nil
}

const credentialCols = `id, user_id, description, key_type, backend, key_ref, public_key, cert_chain,
	scal, multisign, auth_mode, pin_hash, otp_type, otp_sealed, disabled, pin_failures, locked, created_at, oob,
	signature_qualifier, fido`

func scanCredential(sc scanner) (store.Credential, error) {
	var (
		c       store.Credential
		created *int64
	)
	err := sc.Scan(&c.ID, &c.UserID, &c.Description, &c.KeyType, &c.Backend, &c.KeyRef, &c.PublicKey, &c.CertChain,
		&c.SCAL, &c.Multisign, &c.AuthMode, &c.PINHash, &c.OTPType, &c.OTPSealed, &c.Disabled, &c.PINFailures,
		&c.Locked, &created, &c.OOB, &c.SignatureQualifier, &c.FIDO)
	if err != nil {
		return store.Credential{}, err
	}
	c.CertChain = bytesList(c.CertChain)
	c.KeyRef = nilIfEmpty(c.KeyRef)
	c.PublicKey = nilIfEmpty(c.PublicKey)
	c.OTPSealed = nilIfEmpty(c.OTPSealed)
	c.CreatedAt = fromNanos(created)
	return c, nil
}

// CreateCredential implements store.Store. PINFailures and Locked are
// stored as given.
func (d *DB) CreateCredential(ctx context.Context, c store.Credential) error {
	if c.ID == "" {
		return errors.New("postgres: create credential: empty ID")
	}
	created, err := nanos(c.CreatedAt)
	if err != nil {
		return fmt.Errorf("postgres: create credential %q: created at: %w", c.ID, err)
	}
	_, err = d.exec(ctx, `INSERT INTO credentials (`+credentialCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`,
		c.ID, c.UserID, c.Description, c.KeyType, c.Backend, blob(c.KeyRef), blob(c.PublicKey), list(c.CertChain),
		c.SCAL, c.Multisign, c.AuthMode, c.PINHash, c.OTPType, blob(c.OTPSealed), c.Disabled, c.PINFailures, c.Locked,
		created, c.OOB, c.SignatureQualifier, c.FIDO)
	switch {
	case isTaken(err):
		return fmt.Errorf("postgres: create credential %q: %w", c.ID, store.ErrExists)
	case isMissingParent(err):
		return fmt.Errorf("postgres: create credential %q: user %q: %w", c.ID, c.UserID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("postgres: create credential %q: %w", c.ID, err)
	}
	return nil
}

// Credential implements store.Store.
func (d *DB) Credential(ctx context.Context, id string) (store.Credential, error) {
	c, err := scanCredential(d.pool.QueryRow(ctx, `SELECT `+credentialCols+` FROM credentials WHERE id = $1`, id))
	if err != nil {
		return store.Credential{}, fmt.Errorf("postgres: credential %q: %w", id, notFound(err))
	}
	return c, nil
}

// Credentials implements store.Store. Credentials created at the same time
// come in the order they were inserted.
func (d *DB) Credentials(ctx context.Context, userID string) ([]store.Credential, error) {
	var (
		cs  []store.Credential
		err error
	)
	if userID == "" {
		cs, err = queryAll(ctx, d, scanCredential, `SELECT `+credentialCols+` FROM credentials ORDER BY created_at NULLS FIRST, ord`)
	} else {
		cs, err = queryAll(ctx, d, scanCredential, `SELECT `+credentialCols+` FROM credentials WHERE user_id = $1
			ORDER BY created_at NULLS FIRST, ord`, userID)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: credentials of %q: %w", userID, err)
	}
	return cs, nil
}

// updateCredential runs an UPDATE of one credential; no row is ErrNotFound.
func (d *DB) updateCredential(ctx context.Context, what, id, query string, args ...any) error {
	n, err := d.exec(ctx, query, args...)
	switch {
	case err != nil:
		return fmt.Errorf("postgres: %s %q: %w", what, id, err)
	case n == 0:
		return fmt.Errorf("postgres: %s %q: %w", what, id, store.ErrNotFound)
	}
	return nil
}

// SetCredentialDisabled implements store.Store.
func (d *DB) SetCredentialDisabled(ctx context.Context, id string, disabled bool) error {
	return d.updateCredential(ctx, "disable credential", id, `UPDATE credentials SET disabled = $1 WHERE id = $2`, disabled, id)
}

// ResetPINFailures implements store.Store.
func (d *DB) ResetPINFailures(ctx context.Context, id string) error {
	return d.updateCredential(ctx, "reset PIN failures of", id, `UPDATE credentials SET pin_failures = 0 WHERE id = $1`, id)
}

// UnlockCredential implements store.Store.
func (d *DB) UnlockCredential(ctx context.Context, id string) error {
	return d.updateCredential(ctx, "unlock credential", id,
		`UPDATE credentials SET pin_failures = 0, locked = false WHERE id = $1`, id)
}

// RecordPINFailure implements store.Store in one UPDATE ... RETURNING: the
// row lock queues concurrent failures, on every node, and each counts.
func (d *DB) RecordPINFailure(ctx context.Context, id string, limit int) (failures int, locked bool, err error) {
	if limit < 1 {
		return 0, false, fmt.Errorf("postgres: record PIN failure of %q: limit %d < 1", id, limit)
	}
	err = d.pool.QueryRow(ctx, `UPDATE credentials
		SET pin_failures = pin_failures + 1, locked = (locked OR pin_failures + 1 >= $1)
		WHERE id = $2
		RETURNING pin_failures, locked`, limit, id).Scan(&failures, &locked)
	if err != nil {
		return 0, false, fmt.Errorf("postgres: record PIN failure of %q: %w", id, notFound(err))
	}
	return failures, locked, nil
}

// DeleteCredential implements store.Store.
func (d *DB) DeleteCredential(ctx context.Context, id string) error {
	err := d.inTx(ctx, func(tx pgx.Tx) error {
		for _, q := range []string{
			`DELETE FROM sads WHERE credential_id = $1`,
			`DELETE FROM oauth_codes WHERE credential_id = $1`,
			`DELETE FROM oauth_credential_tokens WHERE credential_id = $1`,
			`DELETE FROM pending_auth WHERE credential_id = $1`,
			`DELETE FROM challenges WHERE credential_id = $1`,
			`DELETE FROM async_ops WHERE credential_id = $1`,
		} {
			if _, err := tx.Exec(ctx, q, id); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, `DELETE FROM credentials WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: delete credential %q: %w", id, err)
	}
	return nil
}
