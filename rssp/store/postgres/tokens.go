package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/csctoken/csctoken/rssp/store"
)

// Tokens, SADs and the audit log.

const tokenCols = `hash, kind, user_id, client_id, scope, family, expires_at, revoked, created_at`

func scanToken(sc scanner) (store.Token, error) {
	var (
		t                store.Token
		kind             string
		expires, created *int64
	)
	if err := sc.Scan(&t.Hash, &kind, &t.UserID, &t.ClientID, &t.Scope, &t.Family, &expires, &t.Revoked,
		&created); err != nil {
		return store.Token{}, err
	}
	t.Kind = store.TokenKind(kind)
	t.ExpiresAt = fromNanos(expires)
	t.CreatedAt = fromNanos(created)
	return t, nil
}

// tokenRow is a token checked and converted for its INSERT.
type tokenRow struct {
	t       store.Token
	expires int64
	created *int64
}

func newTokenRow(t store.Token) (tokenRow, error) {
	if len(t.Hash) == 0 {
		return tokenRow{}, errors.New("empty hash")
	}
	expires, err := requiredNanos(t.ExpiresAt)
	if err != nil {
		return tokenRow{}, fmt.Errorf("expires at: %w", err)
	}
	created, err := nanos(t.CreatedAt)
	if err != nil {
		return tokenRow{}, fmt.Errorf("created at: %w", err)
	}
	return tokenRow{t, expires, created}, nil
}

const tokenInsert = `INSERT INTO tokens (` + tokenCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`

func (r tokenRow) args() []any {
	t := r.t
	return []any{t.Hash, string(t.Kind), t.UserID, t.ClientID, t.Scope, t.Family, r.expires, t.Revoked, r.created}
}

// tokenErr maps the INSERT's errors to the sentinels.
func tokenErr(err error, userID string) error {
	switch {
	case isTaken(err):
		return store.ErrExists
	case isMissingParent(err):
		return fmt.Errorf("user %q: %w", userID, store.ErrNotFound)
	}
	return err
}

// CreateToken implements store.Store.
func (d *DB) CreateToken(ctx context.Context, t store.Token) error {
	r, err := newTokenRow(t)
	if err != nil {
		return fmt.Errorf("postgres: create token: %w", err)
	}
	if _, err := d.exec(ctx, tokenInsert, r.args()...); err != nil {
		return fmt.Errorf("postgres: create token: %w", tokenErr(err, t.UserID))
	}
	return nil
}

// Token implements store.Store.
func (d *DB) Token(ctx context.Context, hash []byte) (store.Token, error) {
	t, err := scanToken(d.pool.QueryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = $1`, hash))
	if err != nil {
		return store.Token{}, fmt.Errorf("postgres: token: %w", notFound(err))
	}
	return t, nil
}

// RevokeToken implements store.Store. Revoking a revoked token is not an
// error.
func (d *DB) RevokeToken(ctx context.Context, hash []byte) error {
	n, err := d.exec(ctx, `UPDATE tokens SET revoked = true WHERE hash = $1`, hash)
	switch {
	case err != nil:
		return fmt.Errorf("postgres: revoke token: %w", err)
	case n == 0:
		return fmt.Errorf("postgres: revoke token: %w", store.ErrNotFound)
	}
	return nil
}

// RotateToken implements store.Store: in one transaction, a conditional
// UPDATE (the row lock makes a concurrent rotation wait, then find the
// token revoked: one winner across every node), then the INSERTs of next.
func (d *DB) RotateToken(ctx context.Context, hash []byte, next []store.Token) error {
	rows := make([]tokenRow, len(next))
	for i, t := range next {
		r, err := newTokenRow(t)
		if err != nil {
			return fmt.Errorf("postgres: rotate token: %w", err)
		}
		rows[i] = r
	}
	err := d.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE tokens SET revoked = true WHERE hash = $1 AND NOT revoked`, hash)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			var revoked bool
			if err := tx.QueryRow(ctx, `SELECT revoked FROM tokens WHERE hash = $1`, hash).Scan(&revoked); err != nil {
				return notFound(err)
			}
			return store.ErrRevoked
		}
		for _, r := range rows {
			if _, err := tx.Exec(ctx, tokenInsert, r.args()...); err != nil {
				return fmt.Errorf("new token: %w", tokenErr(err, r.t.UserID))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: rotate token: %w", err)
	}
	return nil
}

// RevokeFamily implements store.Store.
func (d *DB) RevokeFamily(ctx context.Context, family string) error {
	if family == "" {
		return nil // never "every token without a family"
	}
	if _, err := d.exec(ctx, `UPDATE tokens SET revoked = true WHERE family = $1 AND NOT revoked`, family); err != nil {
		return fmt.Errorf("postgres: revoke token family: %w", err)
	}
	return nil
}

// Purge implements store.Store.
func (d *DB) Purge(ctx context.Context, now time.Time) error {
	n, err := requiredNanos(now)
	if err != nil {
		return fmt.Errorf("postgres: purge: %w", err)
	}
	err = d.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM tokens WHERE expires_at <= $1`, n); err != nil {
			return fmt.Errorf("tokens: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sads WHERE expires_at <= $1`, n); err != nil {
			return fmt.Errorf("SADs: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM throttles WHERE full_at <= $1`, n); err != nil {
			return fmt.Errorf("throttles: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: purge: %w", err)
	}
	return nil
}

const sadCols = `hash, credential_id, user_id, hash_algo, hashes, remaining, expires_at, created_at`

func scanSAD(sc scanner) (store.SAD, error) {
	var (
		s                store.SAD
		expires, created *int64
	)
	if err := sc.Scan(&s.Hash, &s.CredentialID, &s.UserID, &s.HashAlgo, &s.Hashes, &s.Remaining, &expires, &created); err != nil {
		return store.SAD{}, err
	}
	s.Hashes = bytesList(s.Hashes)
	s.ExpiresAt = fromNanos(expires)
	s.CreatedAt = fromNanos(created)
	return s, nil
}

// CreateSAD implements store.Store: the INSERT and the audit row in one
// transaction.
func (d *DB) CreateSAD(ctx context.Context, s store.SAD, audit *store.AuditEvent) error {
	ins, err := newSADInsert(s)
	if err != nil {
		return fmt.Errorf("postgres: create SAD: %w", err)
	}
	var row *auditRow
	if audit != nil {
		if row, err = d.newAuditRow(*audit); err != nil {
			return fmt.Errorf("postgres: create SAD: audit: %w", err)
		}
	}
	err = d.audited(ctx, row, ins.exec)
	if err != nil {
		return fmt.Errorf("postgres: create SAD: %w", err)
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
	created *int64
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

// exec inserts the SAD in tx, its errors turned into the store's.
func (i sadInsert) exec(ctx context.Context, tx pgx.Tx) error {
	s := i.s
	_, err := tx.Exec(ctx, `INSERT INTO sads (`+sadCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		s.Hash, s.CredentialID, s.UserID, s.HashAlgo, list(s.Hashes), s.Remaining, i.expires, i.created)
	switch {
	case isTaken(err):
		return store.ErrExists
	case isMissingParent(err):
		return fmt.Errorf("user %q or credential %q: %w", s.UserID, s.CredentialID, store.ErrNotFound)
	}
	return err
}

// ReplaceSAD implements store.Store: ConsumeSAD's statements, the INSERT
// and the audit row in one transaction.
func (d *DB) ReplaceSAD(ctx context.Context, old []byte, n int, now time.Time, s store.SAD, audit *store.AuditEvent) error {
	if n < 1 {
		return fmt.Errorf("postgres: replace SAD: count %d < 1", n)
	}
	nowN, err := requiredNanos(now)
	if err != nil {
		return fmt.Errorf("postgres: replace SAD: now: %w", err)
	}
	ins, err := newSADInsert(s)
	if err != nil {
		return fmt.Errorf("postgres: replace SAD: %w", err)
	}
	var row *auditRow
	if audit != nil {
		if row, err = d.newAuditRow(*audit); err != nil {
			return fmt.Errorf("postgres: replace SAD: audit: %w", err)
		}
	}
	err = d.audited(ctx, row, func(ctx context.Context, tx pgx.Tx) error {
		if err := consumeSAD(ctx, tx, old, n, nowN); err != nil {
			return err
		}
		return ins.exec(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("postgres: replace SAD: %w", err)
	}
	if row != nil {
		*audit = row.e
	}
	return nil
}

// SAD implements store.Store. It returns expired SADs too.
func (d *DB) SAD(ctx context.Context, hash []byte) (store.SAD, error) {
	s, err := scanSAD(d.pool.QueryRow(ctx, `SELECT `+sadCols+` FROM sads WHERE hash = $1`, hash))
	if err != nil {
		return store.SAD{}, fmt.Errorf("postgres: SAD: %w", notFound(err))
	}
	return s, nil
}

// DeleteSAD implements store.Store.
func (d *DB) DeleteSAD(ctx context.Context, hash []byte) error {
	n, err := d.exec(ctx, `DELETE FROM sads WHERE hash = $1`, hash)
	switch {
	case err != nil:
		return fmt.Errorf("postgres: delete SAD: %w", err)
	case n == 0:
		return fmt.Errorf("postgres: delete SAD: %w", store.ErrNotFound)
	}
	return nil
}

// ConsumeSAD implements store.Store: in one transaction, a conditional
// UPDATE ... RETURNING takes the signatures (concurrent consumers, on any
// node, queue on the row lock and each sees what the one before left), a
// SAD left with none is deleted, and the audit row, if any, is appended;
// when the UPDATE matched nothing a SELECT says why. Without an audit row
// and with signatures left, the UPDATE is the whole transaction.
func (d *DB) ConsumeSAD(ctx context.Context, hash []byte, n int, now time.Time, audit *store.AuditEvent) error {
	if n < 1 {
		return fmt.Errorf("postgres: consume SAD: count %d < 1", n)
	}
	nowN, err := requiredNanos(now)
	if err != nil {
		return fmt.Errorf("postgres: consume SAD: now: %w", err)
	}
	var row *auditRow
	if audit != nil {
		if row, err = d.newAuditRow(*audit); err != nil {
			return fmt.Errorf("postgres: consume SAD: audit: %w", err)
		}
	}
	err = d.audited(ctx, row, func(ctx context.Context, tx pgx.Tx) error {
		return consumeSAD(ctx, tx, hash, n, nowN)
	})
	if err != nil {
		return fmt.Errorf("postgres: consume SAD: %w", err)
	}
	if row != nil {
		*audit = row.e
	}
	return nil
}

// consumeSAD takes n signatures from the SAD in tx.
func consumeSAD(ctx context.Context, tx pgx.Tx, hash []byte, n int, now int64) error {
	var left int
	err := tx.QueryRow(ctx, `UPDATE sads SET remaining = remaining - $1
		WHERE hash = $2 AND remaining >= $1 AND expires_at > $3
		RETURNING remaining`, n, hash, now).Scan(&left)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return whyNotConsumed(ctx, tx, hash, n, now)
	case err != nil:
		return err
	case left == 0:
		if _, err := tx.Exec(ctx, `DELETE FROM sads WHERE hash = $1`, hash); err != nil {
			return fmt.Errorf("deleting used SAD: %w", err)
		}
	}
	return nil
}

// whyNotConsumed tells why the conditional UPDATE of ConsumeSAD matched no
// row.
func whyNotConsumed(ctx context.Context, tx pgx.Tx, hash []byte, n int, now int64) error {
	var (
		remaining int
		expires   int64
	)
	err := tx.QueryRow(ctx, `SELECT remaining, expires_at FROM sads WHERE hash = $1`, hash).Scan(&remaining, &expires)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.ErrNotFound
	case err != nil:
		return err
	case expires <= now:
		return store.ErrExpired
	case remaining < n:
		return fmt.Errorf("%d left, %d asked: %w", remaining, n, store.ErrExhausted)
	}
	// A concurrent consumer changed the row between the two statements
	// (READ COMMITTED) and left enough: say exhausted rather than retry,
	// which cannot happen with the row's remaining count only going down.
	return fmt.Errorf("SAD changed concurrently: %w", store.ErrExhausted)
}

const auditCols = `seq, time, event, user_id, credential_id, client_addr, hashes, result, detail, prev_hash, hash`

func scanAudit(sc scanner) (store.AuditEvent, error) {
	var (
		e store.AuditEvent
		t int64
	)
	err := sc.Scan(&e.Seq, &t, &e.Event, &e.UserID, &e.CredentialID, &e.ClientAddr, &e.Hashes, &e.Result, &e.Detail,
		&e.PrevHash, &e.Hash)
	if err != nil {
		return store.AuditEvent{}, err
	}
	if len(e.Hashes) == 0 {
		e.Hashes = nil
	}
	e.Time = time.Unix(0, t).UTC()
	return e, nil
}

// auditRow is an audit event ready to append: its time set and checked.
type auditRow struct {
	e store.AuditEvent
	t int64 // e.Time in Unix nanoseconds
}

// newAuditRow prepares e for appending; a zero Time becomes the current
// time.
func (d *DB) newAuditRow(e store.AuditEvent) (*auditRow, error) {
	if e.Time.IsZero() {
		e.Time = d.now()
	}
	t, err := requiredNanos(e.Time)
	if err != nil {
		return nil, fmt.Errorf("time: %w", err)
	}
	e.Time = time.Unix(0, t).UTC()
	if len(e.Hashes) == 0 {
		e.Hashes = nil
	}
	return &auditRow{e: e, t: t}, nil
}

// AppendAudit implements store.Store through the chain writer (chain.go).
func (d *DB) AppendAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error) {
	r, err := d.newAuditRow(e)
	if err != nil {
		return store.AuditEvent{}, fmt.Errorf("postgres: append audit: %w", err)
	}
	if err := d.appendWith(ctx, func(ctx context.Context, tx pgx.Tx, head *chainHead) error {
		return r.appendTo(ctx, tx, head)
	}); err != nil {
		return store.AuditEvent{}, fmt.Errorf("postgres: append audit: %w", err)
	}
	return r.e, nil
}

// AuditEvents implements store.Store.
func (d *DB) AuditEvents(ctx context.Context, after int64, limit int) ([]store.AuditEvent, error) {
	if limit < 1 {
		return nil, fmt.Errorf("postgres: audit events: limit %d < 1", limit)
	}
	es, err := queryAll(ctx, d, scanAudit, `SELECT `+auditCols+` FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: audit events: %w", err)
	}
	return es, nil
}
