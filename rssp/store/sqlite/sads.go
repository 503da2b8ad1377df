package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

const sadCols = `hash, credential_id, user_id, hash_algo, hashes, remaining, expires_at, created_at`

func scanSAD(sc scanner) (store.SAD, error) {
	var (
		s                store.SAD
		hashes           []byte
		expires, created sql.NullInt64
	)
	err := sc.Scan(&s.Hash, &s.CredentialID, &s.UserID, &s.HashAlgo, &hashes, &s.Remaining, &expires, &created)
	if err != nil {
		return store.SAD{}, err
	}
	if s.Hashes, err = decodeList[[]byte](hashes); err != nil {
		return store.SAD{}, fmt.Errorf("hashes: %w", err)
	}
	s.ExpiresAt = fromNanos(expires)
	s.CreatedAt = fromNanos(created)
	return s, nil
}

// CreateSAD implements store.Store.
func (d *DB) CreateSAD(ctx context.Context, s store.SAD) error {
	if len(s.Hash) == 0 {
		return errors.New("sqlite: create SAD: empty hash")
	}
	if s.Remaining < 1 {
		return fmt.Errorf("sqlite: create SAD: remaining %d < 1", s.Remaining)
	}
	expires, err := requiredNanos(s.ExpiresAt)
	if err != nil {
		return fmt.Errorf("sqlite: create SAD: expires at: %w", err)
	}
	created, err := nanos(s.CreatedAt)
	if err != nil {
		return fmt.Errorf("sqlite: create SAD: created at: %w", err)
	}
	_, err = d.exec(ctx, `INSERT INTO sads (`+sadCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		s.Hash, s.CredentialID, s.UserID, s.HashAlgo, encodeList(s.Hashes), s.Remaining, expires, created)
	switch {
	case isTaken(err):
		return fmt.Errorf("sqlite: create SAD: %w", store.ErrExists)
	case isMissingParent(err):
		return fmt.Errorf("sqlite: create SAD: user %q or credential %q: %w", s.UserID, s.CredentialID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: create SAD: %w", err)
	}
	return nil
}

// SAD implements store.Store. It returns expired SADs too.
func (d *DB) SAD(ctx context.Context, hash []byte) (store.SAD, error) {
	s, err := scanSAD(d.db.QueryRowContext(ctx, `SELECT `+sadCols+` FROM sads WHERE hash = ?`, hash))
	if err != nil {
		return store.SAD{}, fmt.Errorf("sqlite: SAD: %w", notFound(err))
	}
	return s, nil
}

// DeleteSAD implements store.Store.
func (d *DB) DeleteSAD(ctx context.Context, hash []byte) error {
	n, err := d.exec(ctx, `DELETE FROM sads WHERE hash = ?`, hash)
	switch {
	case err != nil:
		return fmt.Errorf("sqlite: delete SAD: %w", err)
	case n == 0:
		return fmt.Errorf("sqlite: delete SAD: %w", store.ErrNotFound)
	}
	return nil
}

// ConsumeSAD implements store.Store: in one write transaction, a
// conditional UPDATE ... RETURNING takes the signatures, a SAD left with none
// is deleted, and when the UPDATE matched nothing a SELECT says why.
func (d *DB) ConsumeSAD(ctx context.Context, hash []byte, n int, now time.Time) (store.SAD, error) {
	if n < 1 {
		return store.SAD{}, fmt.Errorf("sqlite: consume SAD: count %d < 1", n)
	}
	nowN, err := requiredNanos(now)
	if err != nil {
		return store.SAD{}, fmt.Errorf("sqlite: consume SAD: now: %w", err)
	}
	var s store.SAD
	err = d.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		s, err = scanSAD(tx.QueryRowContext(ctx, `UPDATE sads SET remaining = remaining - ?
			WHERE hash = ? AND remaining >= ? AND expires_at > ?
			RETURNING `+sadCols, n, hash, n, nowN))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return whyNotConsumed(ctx, tx, hash, n, nowN)
		case err != nil:
			return err
		case s.Remaining == 0:
			if _, err := tx.ExecContext(ctx, `DELETE FROM sads WHERE hash = ?`, hash); err != nil {
				return fmt.Errorf("deleting used SAD: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return store.SAD{}, fmt.Errorf("sqlite: consume SAD: %w", err)
	}
	return s, nil
}

// whyNotConsumed tells why the conditional UPDATE of ConsumeSAD matched no
// row. It runs in the same transaction, so the row cannot change meanwhile.
func whyNotConsumed(ctx context.Context, tx *sql.Tx, hash []byte, n int, now int64) error {
	var (
		remaining int
		expires   int64
	)
	err := tx.QueryRowContext(ctx, `SELECT remaining, expires_at FROM sads WHERE hash = ?`, hash).Scan(&remaining, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.ErrNotFound
	case err != nil:
		return err
	case expires <= now:
		return store.ErrExpired
	case remaining < n:
		return fmt.Errorf("%d left, %d asked: %w", remaining, n, store.ErrExhausted)
	}
	return errors.New("SAD usable but not updated") // cannot happen inside the transaction
}
