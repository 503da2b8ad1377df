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
func (d *DB) CreateSAD(ctx context.Context, s store.SAD, audit *store.AuditEvent) error {
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
	var row *auditRow
	if audit != nil {
		if row, err = d.newAuditRow(*audit); err != nil {
			return fmt.Errorf("sqlite: create SAD: audit: %w", err)
		}
	}
	var insertErr error // the INSERT's own error, for the sentinels below
	err = d.write(ctx, func(w *wtx) error {
		if _, insertErr = w.exec(stSADInsert,
			s.Hash, s.CredentialID, s.UserID, s.HashAlgo, encodeList(s.Hashes), s.Remaining, expires, created); insertErr != nil {
			return insertErr
		}
		if row != nil {
			if err := row.append(w); err != nil {
				return fmt.Errorf("audit: %w", err)
			}
		}
		return nil
	})
	switch {
	case isTaken(err):
		return fmt.Errorf("sqlite: create SAD: %w", store.ErrExists)
	case isMissingParent(err):
		return fmt.Errorf("sqlite: create SAD: user %q or credential %q: %w", s.UserID, s.CredentialID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: create SAD: %w", err)
	}
	if row != nil {
		*audit = row.e
	}
	return nil
}

// SAD implements store.Store. It returns expired SADs too.
func (d *DB) SAD(ctx context.Context, hash []byte) (store.SAD, error) {
	s, err := get(ctx, d, stSAD, scanSAD, hash)
	if err != nil {
		return store.SAD{}, fmt.Errorf("sqlite: SAD: %w", notFound(err))
	}
	return s, nil
}

// DeleteSAD implements store.Store.
func (d *DB) DeleteSAD(ctx context.Context, hash []byte) error {
	n, err := d.execStmt(ctx, stSADDelete, hash)
	switch {
	case err != nil:
		return fmt.Errorf("sqlite: delete SAD: %w", err)
	case n == 0:
		return fmt.Errorf("sqlite: delete SAD: %w", store.ErrNotFound)
	}
	return nil
}

// ConsumeSAD implements store.Store: in one write operation, a conditional
// UPDATE ... RETURNING takes the signatures, a SAD left with none is
// deleted, and the audit row, if any, is appended; when the UPDATE matched
// nothing a SELECT says why. The op fails as a whole, so a failed
// consumption or a failed audit row leaves both the SAD and the log as they
// were.
func (d *DB) ConsumeSAD(ctx context.Context, hash []byte, n int, now time.Time, audit *store.AuditEvent) (store.SAD, error) {
	if n < 1 {
		return store.SAD{}, fmt.Errorf("sqlite: consume SAD: count %d < 1", n)
	}
	nowN, err := requiredNanos(now)
	if err != nil {
		return store.SAD{}, fmt.Errorf("sqlite: consume SAD: now: %w", err)
	}
	var row *auditRow
	if audit != nil {
		if row, err = d.newAuditRow(*audit); err != nil {
			return store.SAD{}, fmt.Errorf("sqlite: consume SAD: audit: %w", err)
		}
	}
	var s store.SAD
	err = d.write(ctx, func(w *wtx) error {
		var err error
		if s, err = consumeSAD(w, hash, n, nowN); err != nil || row == nil {
			return err
		}
		if err := row.append(w); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		return nil
	})
	if err != nil {
		return store.SAD{}, fmt.Errorf("sqlite: consume SAD: %w", err)
	}
	if row != nil {
		*audit = row.e
	}
	return s, nil
}

// consumeSAD takes n signatures from the SAD in w.
func consumeSAD(w *wtx, hash []byte, n int, now int64) (store.SAD, error) {
	s, err := scanSAD(w.queryRow(stSADConsume, n, hash, n, now))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.SAD{}, whyNotConsumed(w, hash, n, now)
	case err != nil:
		return store.SAD{}, err
	case s.Remaining == 0:
		if _, err := w.exec(stSADDelete, hash); err != nil {
			return store.SAD{}, fmt.Errorf("deleting used SAD: %w", err)
		}
	}
	return s, nil
}

// whyNotConsumed tells why the conditional UPDATE of ConsumeSAD matched no
// row. It runs in the same transaction, so the row cannot change meanwhile.
func whyNotConsumed(w *wtx, hash []byte, n int, now int64) error {
	var (
		remaining int
		expires   int64
	)
	err := w.queryRow(stSADState, hash).Scan(&remaining, &expires)
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
