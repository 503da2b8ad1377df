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

// AppendAudit implements store.Store. In one write operation it reads the
// last row's Seq and Hash, chains e to it and inserts it; the single writer
// and BEGIN IMMEDIATE make that atomic against other goroutines and other
// processes.
func (d *DB) AppendAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error) {
	if e.Time.IsZero() {
		e.Time = d.now()
	}
	t, err := requiredNanos(e.Time)
	if err != nil {
		return store.AuditEvent{}, fmt.Errorf("sqlite: append audit: time: %w", err)
	}
	e.Time = time.Unix(0, t).UTC()
	if len(e.Hashes) == 0 {
		e.Hashes = nil
	}
	hashes := encodeList(e.Hashes)

	err = d.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var (
			last int64
			prev []byte
		)
		err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&last, &prev)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			last, prev = 0, append([]byte(nil), store.GenesisHash[:]...)
		case err != nil:
			return fmt.Errorf("last row: %w", err)
		}
		e.Seq = last + 1
		e.PrevHash = prev
		e.Hash = store.AuditHash(prev, e)
		_, err = tx.ExecContext(ctx, `INSERT INTO audit (`+auditCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.Seq, t, e.Event, e.UserID, e.CredentialID, e.ClientAddr, hashes, e.Result, e.Detail, e.PrevHash, e.Hash)
		return err
	})
	if err != nil {
		return store.AuditEvent{}, fmt.Errorf("sqlite: append audit: %w", err)
	}
	return e, nil
}

// AuditEvents implements store.Store.
func (d *DB) AuditEvents(ctx context.Context, after int64, limit int) ([]store.AuditEvent, error) {
	if limit < 1 {
		return nil, fmt.Errorf("sqlite: audit events: limit %d < 1", limit)
	}
	rows, err := d.db.QueryContext(ctx, `SELECT `+auditCols+` FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`,
		after, limit)
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
