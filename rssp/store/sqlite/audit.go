package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

const auditCols = `seq, time, event, user_id, credential_id, client_addr, hashes, result, detail, prev_hash, hash`

func scanAudit(sc scanner) (store.AuditEvent, error) {
	var (
		e      store.AuditEvent
		t      int64
		hashes []byte
	)
	err := sc.Scan(&e.Seq, &t, &e.Event, &e.UserID, &e.CredentialID, &e.ClientAddr, &hashes, &e.Result, &e.Detail,
		&e.PrevHash, &e.Hash)
	if err != nil {
		return store.AuditEvent{}, err
	}
	if e.Hashes, err = decodeList[string](hashes); err != nil {
		return store.AuditEvent{}, fmt.Errorf("audit row %d: hashes: %w", e.Seq, err)
	}
	e.Time = time.Unix(0, t).UTC()
	return e, nil
}

// auditRow is an audit event ready to append: its time set and checked,
// its hashes encoded.
type auditRow struct {
	e      store.AuditEvent
	t      int64  // e.Time in Unix nanoseconds
	hashes []byte // e.Hashes encoded
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
	return &auditRow{e: e, t: t, hashes: encodeList(e.Hashes)}, nil
}

// auditHead is the audit log's last row (Seq and Hash) as the last write
// left it, kept by the writer (DB.head): only a batch's leader uses it.
type auditHead struct {
	seq  int64
	hash []byte
	ok   bool // seq and hash are known
}

// append chains r to the log's last row and inserts it, in w; it sets r.e's
// Seq, PrevHash and Hash. The single writer and BEGIN IMMEDIATE make that
// atomic against other goroutines and other processes.
//
// The last row is the one the previous append left (w.d.head), when known:
// the INSERT then checks, in the same statement, that it still is the last
// row, and inserts nothing otherwise (another process appended meanwhile, or
// a transaction that appended was rolled back). Only then is the last row
// read, so a signature's audit row costs one statement, not two, and a
// stale head costs a read, never a broken chain.
func (r *auditRow) append(w *wtx) error {
	h := &w.d.head
	if h.ok {
		h.ok = false // until the insert succeeds
		r.chain(h.seq, bytes.Clone(h.hash))
		res, err := w.exec(stAuditInsertAfter, r.values(h.seq, h.hash)...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 1 {
			h.set(r.e)
			return nil
		}
	}
	var (
		last int64
		prev []byte
	)
	err := w.queryRow(stAuditLast).Scan(&last, &prev)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		last, prev = 0, append([]byte(nil), store.GenesisHash[:]...)
	case err != nil:
		return fmt.Errorf("last row: %w", err)
	}
	r.chain(last, prev)
	if _, err := w.exec(stAuditInsert, r.values()...); err != nil {
		return err
	}
	h.set(r.e)
	return nil
}

// chain makes r the row after the one with Seq last and Hash prev.
func (r *auditRow) chain(last int64, prev []byte) {
	e := &r.e
	e.Seq = last + 1
	e.PrevHash = prev
	e.Hash = store.AuditHash(prev, *e)
}

// values returns the columns of r (auditCols), then more.
func (r *auditRow) values(more ...any) []any {
	e := &r.e
	return append([]any{e.Seq, r.t, e.Event, e.UserID, e.CredentialID, e.ClientAddr, r.hashes, e.Result,
		e.Detail, e.PrevHash, e.Hash}, more...)
}

// set records e as the last row.
func (h *auditHead) set(e store.AuditEvent) {
	h.seq, h.hash, h.ok = e.Seq, bytes.Clone(e.Hash), true
}

// AppendAudit implements store.Store, in one write operation.
func (d *DB) AppendAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error) {
	r, err := d.newAuditRow(e)
	if err != nil {
		return store.AuditEvent{}, fmt.Errorf("sqlite: append audit: %w", err)
	}
	if err := d.write(ctx, r.append); err != nil {
		return store.AuditEvent{}, fmt.Errorf("sqlite: append audit: %w", err)
	}
	return r.e, nil
}

// AuditEvents implements store.Store.
func (d *DB) AuditEvents(ctx context.Context, after int64, limit int) ([]store.AuditEvent, error) {
	if limit < 1 {
		return nil, fmt.Errorf("sqlite: audit events: limit %d < 1", limit)
	}
	rows, err := d.stmts[stAuditEvents].QueryContext(ctx, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit events: %w", err)
	}
	defer rows.Close()
	var es []store.AuditEvent
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: audit events: %w", err)
		}
		es = append(es, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: audit events: %w", err)
	}
	return es, nil
}
