package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/csctoken/csctoken/rssp/store"
)

const credentialCols = `id, user_id, description, key_type, backend, key_ref, public_key, cert_chain,
	scal, multisign, auth_mode, pin_hash, otp_type, otp_sealed, disabled, pin_failures, locked, created_at, oob,
	signature_qualifier, fido`

func scanCredential(sc scanner) (store.Credential, error) {
	var (
		c       store.Credential
		chain   []byte
		created sql.NullInt64
	)
	err := sc.Scan(&c.ID, &c.UserID, &c.Description, &c.KeyType, &c.Backend, &c.KeyRef, &c.PublicKey, &chain,
		&c.SCAL, &c.Multisign, &c.AuthMode, &c.PINHash, &c.OTPType, &c.OTPSealed, &c.Disabled, &c.PINFailures,
		&c.Locked, &created, &c.OOB, &c.SignatureQualifier, &c.FIDO)
	if err != nil {
		return store.Credential{}, err
	}
	if c.CertChain, err = decodeList[[]byte](chain); err != nil {
		return store.Credential{}, fmt.Errorf("credential %q: cert chain: %w", c.ID, err)
	}
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
		return errors.New("sqlite: create credential: empty ID")
	}
	created, err := nanos(c.CreatedAt)
	if err != nil {
		return fmt.Errorf("sqlite: create credential %q: created at: %w", c.ID, err)
	}
	_, err = d.execStmt(ctx, stCredentialInsert,
		c.ID, c.UserID, c.Description, c.KeyType, c.Backend, blob(c.KeyRef), blob(c.PublicKey), encodeList(c.CertChain),
		c.SCAL, c.Multisign, c.AuthMode, c.PINHash, c.OTPType, blob(c.OTPSealed), c.Disabled, c.PINFailures, c.Locked,
		created, c.OOB, c.SignatureQualifier, c.FIDO)
	switch {
	case isTaken(err):
		return fmt.Errorf("sqlite: create credential %q: %w", c.ID, store.ErrExists)
	case isMissingParent(err):
		return fmt.Errorf("sqlite: create credential %q: user %q: %w", c.ID, c.UserID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: create credential %q: %w", c.ID, err)
	}
	return nil
}

// Credential implements store.Store.
func (d *DB) Credential(ctx context.Context, id string) (store.Credential, error) {
	c, err := get(ctx, d, stCredential, scanCredential, id)
	if err != nil {
		return store.Credential{}, fmt.Errorf("sqlite: credential %q: %w", id, notFound(err))
	}
	return c, nil
}

// Credentials implements store.Store. Credentials created at the same time
// come in the order they were created.
func (d *DB) Credentials(ctx context.Context, userID string) ([]store.Credential, error) {
	var (
		rows *sql.Rows
		err  error
	)
	if userID == "" {
		rows, err = d.stmts[stCredentialsAll].QueryContext(ctx)
	} else {
		rows, err = d.stmts[stCredentialsOfUser].QueryContext(ctx, userID)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: credentials of %q: %w", userID, err)
	}
	defer rows.Close()
	var cs []store.Credential
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: credentials of %q: %w", userID, err)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: credentials of %q: %w", userID, err)
	}
	return cs, nil
}

// updateCredential runs prepared UPDATE st of one credential, whose last
// parameter is the ID; no row is ErrNotFound.
func (d *DB) updateCredential(ctx context.Context, what, id string, st stmtID, args ...any) error {
	n, err := d.execStmt(ctx, st, append(args, id)...)
	switch {
	case err != nil:
		return fmt.Errorf("sqlite: %s %q: %w", what, id, err)
	case n == 0:
		return fmt.Errorf("sqlite: %s %q: %w", what, id, store.ErrNotFound)
	}
	return nil
}

// SetCredentialDisabled implements store.Store.
func (d *DB) SetCredentialDisabled(ctx context.Context, id string, disabled bool) error {
	return d.updateCredential(ctx, "disable credential", id, stCredentialSetDisabled, disabled)
}

// ResetPINFailures implements store.Store.
func (d *DB) ResetPINFailures(ctx context.Context, id string) error {
	return d.updateCredential(ctx, "reset PIN failures of", id, stCredentialResetPIN)
}

// UnlockCredential implements store.Store.
func (d *DB) UnlockCredential(ctx context.Context, id string) error {
	return d.updateCredential(ctx, "unlock credential", id, stCredentialUnlock)
}

// RecordPINFailure implements store.Store in one UPDATE ... RETURNING, so
// concurrent failures are all counted.
func (d *DB) RecordPINFailure(ctx context.Context, id string, limit int) (failures int, locked bool, err error) {
	if limit < 1 {
		return 0, false, fmt.Errorf("sqlite: record PIN failure of %q: limit %d < 1", id, limit)
	}
	err = d.write(ctx, func(w *wtx) error {
		return w.queryRow(stCredentialPINFailure, limit, id).Scan(&failures, &locked)
	})
	if err != nil {
		return 0, false, fmt.Errorf("sqlite: record PIN failure of %q: %w", id, notFound(err))
	}
	return failures, locked, nil
}
