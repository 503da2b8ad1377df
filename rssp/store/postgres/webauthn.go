package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/csctoken/csctoken/rssp/store"
)

// Security keys and WebAuthn ceremonies (store.WebAuthnStore).

const webauthnCols = `id, user_id, name, public_key, attestation_type, aaguid, transports, flags, sign_count,
	created_at, last_used_at`

func scanWebAuthnKey(sc scanner) (store.WebAuthnKey, error) {
	var (
		k                store.WebAuthnKey
		flags            int32
		count            int64
		created, lastUse *int64
	)
	if err := sc.Scan(&k.ID, &k.UserID, &k.Name, &k.PublicKey, &k.AttestationType, &k.AAGUID, &k.Transports, &flags,
		&count, &created, &lastUse); err != nil {
		return store.WebAuthnKey{}, err
	}
	if len(k.Transports) == 0 {
		k.Transports = nil
	}
	k.Flags = uint8(flags)
	k.SignCount = uint32(count)
	k.AAGUID = nilIfEmpty(k.AAGUID)
	k.CreatedAt, k.LastUsedAt = fromNanos(created), fromNanos(lastUse)
	return k, nil
}

// CreateWebAuthnKey implements store.WebAuthnStore.
func (d *DB) CreateWebAuthnKey(ctx context.Context, k store.WebAuthnKey) error {
	if len(k.ID) == 0 || k.Name == "" {
		return errors.New("postgres: create security key: empty ID or name")
	}
	created, err := nanos(k.CreatedAt)
	if err != nil {
		return fmt.Errorf("postgres: create security key %q: created at: %w", k.Name, err)
	}
	lastUse, err := nanos(k.LastUsedAt)
	if err != nil {
		return fmt.Errorf("postgres: create security key %q: last used at: %w", k.Name, err)
	}
	_, err = d.exec(ctx, `INSERT INTO webauthn_keys (`+webauthnCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		k.ID, k.UserID, k.Name, k.PublicKey, k.AttestationType, blob(k.AAGUID), list(k.Transports), int32(k.Flags),
		int64(k.SignCount), created, lastUse)
	if err := insertErr(err, "user "+k.UserID); err != nil {
		return fmt.Errorf("postgres: create security key %q: %w", k.Name, err)
	}
	return nil
}

// WebAuthnKeys implements store.WebAuthnStore.
func (d *DB) WebAuthnKeys(ctx context.Context, userID string) ([]store.WebAuthnKey, error) {
	ks, err := queryAll(ctx, d, scanWebAuthnKey, `SELECT `+webauthnCols+` FROM webauthn_keys WHERE user_id = $1
		ORDER BY created_at NULLS FIRST, ord`, userID)
	if err != nil {
		return nil, fmt.Errorf("postgres: security keys of %q: %w", userID, err)
	}
	return ks, nil
}

// DeleteWebAuthnKey implements store.WebAuthnStore.
func (d *DB) DeleteWebAuthnKey(ctx context.Context, userID string, id []byte) error {
	n, err := d.exec(ctx, `DELETE FROM webauthn_keys WHERE id = $1 AND user_id = $2`, id, userID)
	switch {
	case err != nil:
		return fmt.Errorf("postgres: delete security key of %q: %w", userID, err)
	case n == 0:
		return fmt.Errorf("postgres: delete security key of %q: %w", userID, store.ErrNotFound)
	}
	return nil
}

// UseWebAuthnKey implements store.WebAuthnStore in one conditional UPDATE:
// of two assertions with the same counter, on any nodes, one counts.
func (d *DB) UseWebAuthnKey(ctx context.Context, id []byte, count uint32, at time.Time) error {
	used, err := requiredNanos(at)
	if err != nil {
		return fmt.Errorf("postgres: use security key: %w", err)
	}
	err = d.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE webauthn_keys SET sign_count = $1, last_used_at = $2
			WHERE id = $3 AND (sign_count < $1 OR (sign_count = 0 AND $1 = 0))`, int64(count), used, id)
		if err != nil || tag.RowsAffected() == 1 {
			return err
		}
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM webauthn_keys WHERE id = $1`, id).Scan(&one); err != nil {
			return notFound(err)
		}
		return store.ErrStale
	})
	if err != nil {
		return fmt.Errorf("postgres: use security key: %w", err)
	}
	return nil
}

// SetUserRequireFIDO implements store.WebAuthnStore.
func (d *DB) SetUserRequireFIDO(ctx context.Context, userID string, require bool) error {
	n, err := d.exec(ctx, `UPDATE users SET require_fido = $1 WHERE id = $2`, require, userID)
	switch {
	case err != nil:
		return fmt.Errorf("postgres: require a security key of %q: %w", userID, err)
	case n == 0:
		return fmt.Errorf("postgres: require a security key of %q: %w", userID, store.ErrNotFound)
	}
	return nil
}

// SetOAuthSessionCeremony implements store.WebAuthnStore.
func (d *DB) SetOAuthSessionCeremony(ctx context.Context, sessionHash, ceremony []byte) error {
	if len(ceremony) == 0 {
		return errors.New("postgres: set WebAuthn ceremony: empty")
	}
	n, err := d.exec(ctx, `UPDATE oauth_sessions SET ceremony = $1 WHERE hash = $2`, ceremony, sessionHash)
	switch {
	case err != nil:
		return fmt.Errorf("postgres: set WebAuthn ceremony: %w", err)
	case n == 0:
		return fmt.Errorf("postgres: set WebAuthn ceremony: %w", store.ErrNotFound)
	}
	return nil
}

// TakeOAuthSessionCeremony implements store.WebAuthnStore: one UPDATE
// clears the ceremony and returns the value it had (the row lock makes a
// concurrent take find it cleared), so a ceremony finishes once.
func (d *DB) TakeOAuthSessionCeremony(ctx context.Context, sessionHash []byte) ([]byte, error) {
	var c []byte
	err := d.pool.QueryRow(ctx, `UPDATE oauth_sessions s SET ceremony = NULL
		FROM (SELECT hash, ceremony FROM oauth_sessions WHERE hash = $1 AND ceremony IS NOT NULL FOR UPDATE) old
		WHERE s.hash = old.hash AND s.ceremony IS NOT NULL
		RETURNING old.ceremony`, sessionHash).Scan(&c)
	if err != nil {
		return nil, fmt.Errorf("postgres: take WebAuthn ceremony: %w", notFound(err))
	}
	return c, nil
}
