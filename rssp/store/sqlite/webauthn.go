package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

// Security keys and WebAuthn ceremonies (store.WebAuthnStore): rare next
// to signatures, so their SQL is not prepared.

const webauthnCols = `id, user_id, name, public_key, attestation_type, aaguid, transports, flags, sign_count,
	created_at, last_used_at`

func scanWebAuthnKey(sc scanner) (store.WebAuthnKey, error) {
	var (
		k                store.WebAuthnKey
		transports       []byte
		created, lastUse sql.NullInt64
		count            int64
	)
	if err := sc.Scan(&k.ID, &k.UserID, &k.Name, &k.PublicKey, &k.AttestationType, &k.AAGUID, &transports, &k.Flags,
		&count, &created, &lastUse); err != nil {
		return store.WebAuthnKey{}, err
	}
	var err error
	if k.Transports, err = decodeList[string](transports); err != nil {
		return store.WebAuthnKey{}, fmt.Errorf("security key %x: transports: %w", k.ID, err)
	}
	k.SignCount = uint32(count)
	k.AAGUID = nilIfEmpty(k.AAGUID)
	k.CreatedAt, k.LastUsedAt = fromNanos(created), fromNanos(lastUse)
	return k, nil
}

// CreateWebAuthnKey implements store.WebAuthnStore.
func (d *DB) CreateWebAuthnKey(ctx context.Context, k store.WebAuthnKey) error {
	if len(k.ID) == 0 || k.Name == "" {
		return errors.New("sqlite: create security key: empty ID or name")
	}
	created, err := nanos(k.CreatedAt)
	if err != nil {
		return fmt.Errorf("sqlite: create security key %q: created at: %w", k.Name, err)
	}
	lastUse, err := nanos(k.LastUsedAt)
	if err != nil {
		return fmt.Errorf("sqlite: create security key %q: last used at: %w", k.Name, err)
	}
	_, err = d.exec(ctx, `INSERT INTO webauthn_keys (`+webauthnCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.UserID, k.Name, k.PublicKey, k.AttestationType, blob(k.AAGUID), encodeList(k.Transports), k.Flags,
		int64(k.SignCount), created, lastUse)
	switch {
	case isTaken(err):
		return fmt.Errorf("sqlite: create security key %q: %w", k.Name, store.ErrExists)
	case isMissingParent(err):
		return fmt.Errorf("sqlite: create security key %q: user %q: %w", k.Name, k.UserID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: create security key %q: %w", k.Name, err)
	}
	return nil
}

// WebAuthnKeys implements store.WebAuthnStore.
func (d *DB) WebAuthnKeys(ctx context.Context, userID string) ([]store.WebAuthnKey, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT `+webauthnCols+` FROM webauthn_keys WHERE user_id = ?
		ORDER BY created_at, rowid`, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: security keys of %q: %w", userID, err)
	}
	defer rows.Close()
	var ks []store.WebAuthnKey
	for rows.Next() {
		k, err := scanWebAuthnKey(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: security keys of %q: %w", userID, err)
		}
		ks = append(ks, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: security keys of %q: %w", userID, err)
	}
	return ks, nil
}

// DeleteWebAuthnKey implements store.WebAuthnStore.
func (d *DB) DeleteWebAuthnKey(ctx context.Context, userID string, id []byte) error {
	n, err := d.exec(ctx, `DELETE FROM webauthn_keys WHERE id = ? AND user_id = ?`, id, userID)
	switch {
	case err != nil:
		return fmt.Errorf("sqlite: delete security key of %q: %w", userID, err)
	case n == 0:
		return fmt.Errorf("sqlite: delete security key of %q: %w", userID, store.ErrNotFound)
	}
	return nil
}

// UseWebAuthnKey implements store.WebAuthnStore in one conditional UPDATE,
// so of two simultaneous assertions with the same counter only one counts.
func (d *DB) UseWebAuthnKey(ctx context.Context, id []byte, count uint32, at time.Time) error {
	used, err := requiredNanos(at)
	if err != nil {
		return fmt.Errorf("sqlite: use security key: %w", err)
	}
	err = d.writeTx(ctx, func(ctx context.Context, tx txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE webauthn_keys SET sign_count = ?1, last_used_at = ?2
			WHERE id = ?3 AND (sign_count < ?1 OR (sign_count = 0 AND ?1 = 0))`, int64(count), used, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM webauthn_keys WHERE id = ?`, id).Scan(&one); err != nil {
			return notFound(err)
		}
		return store.ErrStale
	})
	if err != nil {
		return fmt.Errorf("sqlite: use security key: %w", err)
	}
	return nil
}

// SetUserRequireFIDO implements store.WebAuthnStore.
func (d *DB) SetUserRequireFIDO(ctx context.Context, userID string, require bool) error {
	n, err := d.exec(ctx, `UPDATE users SET require_fido = ? WHERE id = ?`, require, userID)
	switch {
	case err != nil:
		return fmt.Errorf("sqlite: require a security key of %q: %w", userID, err)
	case n == 0:
		return fmt.Errorf("sqlite: require a security key of %q: %w", userID, store.ErrNotFound)
	}
	return nil
}

// SetOAuthSessionCeremony implements store.WebAuthnStore.
func (d *DB) SetOAuthSessionCeremony(ctx context.Context, sessionHash, ceremony []byte) error {
	if len(ceremony) == 0 {
		return errors.New("sqlite: set WebAuthn ceremony: empty")
	}
	n, err := d.exec(ctx, `UPDATE oauth_sessions SET ceremony = ? WHERE hash = ?`, ceremony, sessionHash)
	switch {
	case err != nil:
		return fmt.Errorf("sqlite: set WebAuthn ceremony: %w", err)
	case n == 0:
		return fmt.Errorf("sqlite: set WebAuthn ceremony: %w", store.ErrNotFound)
	}
	return nil
}

// TakeOAuthSessionCeremony implements store.WebAuthnStore.
func (d *DB) TakeOAuthSessionCeremony(ctx context.Context, sessionHash []byte) ([]byte, error) {
	var c []byte
	err := d.writeTx(ctx, func(ctx context.Context, tx txn) error {
		if err := tx.QueryRowContext(ctx, `SELECT ceremony FROM oauth_sessions WHERE hash = ? AND ceremony IS NOT NULL`,
			sessionHash).Scan(&c); err != nil {
			return notFound(err)
		}
		_, err := tx.ExecContext(ctx, `UPDATE oauth_sessions SET ceremony = NULL WHERE hash = ?`, sessionHash)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: take WebAuthn ceremony: %w", err)
	}
	return c, nil
}
