package sqlite

import (
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

// append reads the last row's Seq and Hash, chains r to it and inserts it,
// in w; it sets r.e's Seq, PrevHash and Hash. The single writer and BEGIN
// IMMEDIATE make that atomic against other goroutines and other processes.
func (r *auditRow) append(w *wtx) error {
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
	e := &r.e
	e.Seq = last + 1
	e.PrevHash = prev
	e.Hash = store.AuditHash(prev, *e)
	_, err = w.exec(stAuditInsert, e.Seq, r.t, e.Event, e.UserID, e.CredentialID, e.ClientAddr, r.hashes, e.Result,
		e.Detail, e.PrevHash, e.Hash)
	return err
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
