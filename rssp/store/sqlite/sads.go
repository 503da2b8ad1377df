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
	ins, err := newSADInsert(s)
	if err != nil {
		return fmt.Errorf("sqlite: create SAD: %w", err)
	}
	var row *auditRow
	if audit != nil {
		if row, err = d.newAuditRow(*audit); err != nil {
			return fmt.Errorf("sqlite: create SAD: audit: %w", err)
		}
	}
	err = d.write(ctx, func(w *wtx) error {
		if err := ins.exec(w); err != nil {
			return err
		}
		if row != nil {
			if err := row.append(w); err != nil {
				return fmt.Errorf("audit: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: create SAD: %w", err)
	}
	if row != nil {
		*audit = row.e
	}
	return nil
}

// sadInsert is a checked SAD ready to be inserted.
type sadInsert struct {
	s       store.SAD
	expires int64
	created any
}

func newSADInsert(s store.SAD) (sadInsert, error) {
	if len(s.Hash) == 0 {
		return sadInsert{}, errors.New("empty hash")
	}
	if s.Remaining < 1 {
		return sadInsert{}, fmt.Errorf("remaining %d < 1", s.Remaining)
	}
	expires, err := requiredNanos(s.ExpiresAt)
	if err != nil {
		return sadInsert{}, fmt.Errorf("expires at: %w", err)
	}
	created, err := nanos(s.CreatedAt)
	if err != nil {
		return sadInsert{}, fmt.Errorf("created at: %w", err)
	}
	return sadInsert{s: s, expires: expires, created: created}, nil
}

// exec inserts the SAD in w, its errors turned into the store's.
func (i sadInsert) exec(w *wtx) error {
	s := i.s
	_, err := w.exec(stSADInsert, s.Hash, s.CredentialID, s.UserID, s.HashAlgo, encodeList(s.Hashes), s.Remaining, i.expires, i.created)
	switch {
	case isTaken(err):
		return store.ErrExists
	case isMissingParent(err):
		return fmt.Errorf("user %q or credential %q: %w", s.UserID, s.CredentialID, store.ErrNotFound)
	}
	return err
}

// ReplaceSAD implements store.Store: ConsumeSAD's steps, the INSERT and the
// audit row in one write operation.
func (d *DB) ReplaceSAD(ctx context.Context, old []byte, n int, now time.Time, s store.SAD, audit *store.AuditEvent) error {
	if n < 1 {
		return fmt.Errorf("sqlite: replace SAD: count %d < 1", n)
	}
	nowN, err := requiredNanos(now)
	if err != nil {
		return fmt.Errorf("sqlite: replace SAD: now: %w", err)
	}
	ins, err := newSADInsert(s)
	if err != nil {
		return fmt.Errorf("sqlite: replace SAD: %w", err)
	}
	var row *auditRow
	if audit != nil {
		if row, err = d.newAuditRow(*audit); err != nil {
			return fmt.Errorf("sqlite: replace SAD: audit: %w", err)
		}
	}
	err = d.write(ctx, func(w *wtx) error {
		if err := consumeSAD(w, old, n, nowN); err != nil {
			return err
		}
		if err := ins.exec(w); err != nil {
			return err
		}
		if row != nil {
			if err := row.append(w); err != nil {
				return fmt.Errorf("audit: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: replace SAD: %w", err)
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
// UPDATE takes the signatures (a SAD left with none is deleted by the
// trigger sads_used_up), and the audit row, if any, is appended; when the
// UPDATE matched nothing a SELECT says why. The op fails as a whole, so a
// failed consumption or a failed audit row leaves both the SAD and the log
// as they were.
func (d *DB) ConsumeSAD(ctx context.Context, hash []byte, n int, now time.Time, audit *store.AuditEvent) error {
	if n < 1 {
		return fmt.Errorf("sqlite: consume SAD: count %d < 1", n)
	}
	nowN, err := requiredNanos(now)
	if err != nil {
		return fmt.Errorf("sqlite: consume SAD: now: %w", err)
	}
	var row *auditRow
	if audit != nil {
		if row, err = d.newAuditRow(*audit); err != nil {
			return fmt.Errorf("sqlite: consume SAD: audit: %w", err)
		}
	}
	err = d.write(ctx, func(w *wtx) error {
		if err := consumeSAD(w, hash, n, nowN); err != nil || row == nil {
			return err
		}
		if err := row.append(w); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: consume SAD: %w", err)
	}
	if row != nil {
		*audit = row.e
	}
	return nil
}

// consumeSAD takes n signatures from the SAD in w. The UPDATE returns no
// row, so it runs as an exec: a statement that returns rows costs several
// times more (database/sql's Rows, and a goroutine per query inside a
// transaction).
func consumeSAD(w *wtx, hash []byte, n int, now int64) error {
	res, err := w.exec(stSADConsume, n, hash, now)
	if err != nil {
		return err
	}
	changed, err := res.RowsAffected()
	switch {
	case err != nil:
		return err
	case changed == 0:
		return whyNotConsumed(w, hash, n, now)
	}
	return nil
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
