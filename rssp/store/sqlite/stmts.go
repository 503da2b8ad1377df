package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Prepared statements.
//
// Parsing and planning a statement (sqlite3_prepare_v2) costs more than
// running one of these point reads and writes, so every statement the store
// runs more than once is prepared at Open, as a *sql.Stmt of the pool:
// database/sql prepares it on each connection the first time it runs there
// and keeps it, so a statement is parsed once per connection, not once per
// call. The writer has a connection of its own (writeConn), on which it
// prepares them again, and runs its transactions there with BEGIN
// IMMEDIATE and COMMIT as statements of their own: a database/sql Tx
// would start a goroutine per transaction, and one per query in it.

// stmtID names a prepared statement.
type stmtID int

const (
	stUserInsert stmtID = iota
	stUserByName
	stUserByID
	stUserBySubject

	stCredentialInsert
	stCredential
	stCredentialsAll
	stCredentialsOfUser
	stCredentialSetDisabled
	stCredentialResetPIN
	stCredentialUnlock
	stCredentialPINFailure

	stTokenInsert
	stToken
	stTokenRevoke
	stTokenRotate
	stTokenRevoked
	stTokenRevokeFamily
	stTokenPurge

	stSADInsert
	stSAD
	stSADDelete
	stSADConsume
	stSADState
	stSADPurge

	stTokenUser
	stSigningState

	stThrottle
	stThrottleFail
	stThrottlePurge

	stAuditLast
	stAuditInsert
	stAuditInsertAfter
	stAuditEvents

	// The writer's transactions and savepoints (write.go).
	stBegin
	stCommit
	stRollback
	stSavepoint
	stRollbackTo
	stRelease

	numStmts
)

var stmtSQL = [numStmts]string{
	stUserInsert:    `INSERT INTO users (` + userCols + `) VALUES (?, ?, ?, ?, ?, ?, ?)`,
	stUserByName:    `SELECT ` + userCols + ` FROM users WHERE name = ?`,
	stUserByID:      `SELECT ` + userCols + ` FROM users WHERE id = ?`,
	stUserBySubject: `SELECT ` + userCols + ` FROM users WHERE external_subject = ?`,

	stCredentialInsert: `INSERT INTO credentials (` + credentialCols + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	stCredential:            `SELECT ` + credentialCols + ` FROM credentials WHERE id = ?`,
	stCredentialsAll:        `SELECT ` + credentialCols + ` FROM credentials ORDER BY created_at, rowid`,
	stCredentialsOfUser:     `SELECT ` + credentialCols + ` FROM credentials WHERE user_id = ? ORDER BY created_at, rowid`,
	stCredentialSetDisabled: `UPDATE credentials SET disabled = ? WHERE id = ?`,
	stCredentialResetPIN:    `UPDATE credentials SET pin_failures = 0 WHERE id = ?`,
	stCredentialUnlock:      `UPDATE credentials SET pin_failures = 0, locked = 0 WHERE id = ?`,
	stCredentialPINFailure: `UPDATE credentials
		SET pin_failures = pin_failures + 1, locked = (locked OR pin_failures + 1 >= ?)
		WHERE id = ?
		RETURNING pin_failures, locked`,

	stTokenInsert:       `INSERT INTO tokens (` + tokenCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	stToken:             `SELECT ` + tokenCols + ` FROM tokens WHERE hash = ?`,
	stTokenRevoke:       `UPDATE tokens SET revoked = 1 WHERE hash = ?`,
	stTokenRotate:       `UPDATE tokens SET revoked = 1 WHERE hash = ? AND revoked = 0`,
	stTokenRevoked:      `SELECT revoked FROM tokens WHERE hash = ?`,
	stTokenRevokeFamily: `UPDATE tokens SET revoked = 1 WHERE family = ? AND revoked = 0`,
	stTokenPurge:        `DELETE FROM tokens WHERE expires_at <= ?`,

	stSADInsert: `INSERT INTO sads (` + sadCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
	stSAD:       `SELECT ` + sadCols + ` FROM sads WHERE hash = ?`,
	stSADDelete: `DELETE FROM sads WHERE hash = ?`,
	// A SAD left with no signature is deleted by the trigger sads_used_up.
	stSADConsume: `UPDATE sads SET remaining = remaining - ?1
		WHERE hash = ?2 AND remaining >= ?1 AND expires_at > ?3`,
	stSADState: `SELECT remaining, expires_at FROM sads WHERE hash = ?`,
	stSADPurge: `DELETE FROM sads WHERE expires_at <= ?`,

	stTokenUser: `SELECT ` + qualified("t", tokenCols) + `, ` + qualified("u", userCols) + `
		FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = ?`,
	stSigningState: `SELECT c.id, c.user_id, c.disabled, c.pin_failures, c.locked, c.created_at,
			s.hash, s.credential_id, s.user_id, s.hash_algo, s.hashes, s.remaining, s.expires_at, s.created_at
		FROM credentials c LEFT JOIN sads s ON s.hash = ? WHERE c.id = ?`,

	stThrottle: `SELECT full_at FROM throttles WHERE key = ?`,
	// One failure: the bucket is full again one Every later, counted from
	// now when it was full; nothing changes (no row returned) when it is
	// already empty, i.e. full again later than now plus (Burst-1)*Every.
	stThrottleFail: `INSERT INTO throttles (key, full_at) VALUES (?1, ?2 + ?3)
		ON CONFLICT (key) DO UPDATE SET full_at = max(full_at, ?2) + ?3 WHERE full_at - ?2 <= ?4
		RETURNING full_at`,
	stThrottlePurge: `DELETE FROM throttles WHERE full_at <= ?`,

	stAuditLast:   `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`,
	stAuditInsert: `INSERT INTO audit (` + auditCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	// The insert after a known last row (seq ?12, hash ?13): it inserts
	// nothing unless that row is the last one.
	stAuditInsertAfter: `INSERT INTO audit (` + auditCols + `)
		SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11
		WHERE (SELECT max(seq) FROM audit) = ?12 AND (SELECT hash FROM audit WHERE seq = ?12) = ?13`,
	stAuditEvents: `SELECT ` + auditCols + ` FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`,

	stBegin:      `BEGIN IMMEDIATE`,
	stCommit:     `COMMIT`,
	stRollback:   `ROLLBACK`,
	stSavepoint:  `SAVEPOINT op`,
	stRollbackTo: `ROLLBACK TO op`,
	stRelease:    `RELEASE op`,
}

// prepare prepares every statement of stmtSQL; on failure it closes those
// it made.
func (d *DB) prepare(ctx context.Context) error {
	for id, q := range stmtSQL {
		st, err := d.db.PrepareContext(ctx, q)
		if err != nil {
			_ = d.closeStmts()
			return fmt.Errorf("preparing statement %d: %w", id, err)
		}
		d.stmts[id] = st
	}
	return nil
}

// closeStmts closes the prepared statements. They stay in d.stmts, so a
// call after Close fails with database/sql's "statement is closed".
func (d *DB) closeStmts() error {
	var errs []error
	for _, st := range d.stmts {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// get runs the prepared single-row read id and scans the row with scan.
//
// The statement runs under ctx without its cancellation, once ctx is
// checked: with a context that can end, both database/sql and the driver
// start a goroutine per statement to watch it, which costs more than one of
// these point reads; and a read that has started ends within microseconds
// (WAL readers wait for no lock).
func get[T any](ctx context.Context, d *DB, id stmtID, scan func(scanner) (T, error), args ...any) (T, error) {
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err
	}
	return scan(d.stmts[id].QueryRowContext(context.WithoutCancel(ctx), args...))
}

// txn is what an op's own SQL runs on (writeTx): the writer's connection,
// inside the batch's transaction.
type txn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// writeConn is the connection every write transaction runs on, with the
// prepared statements bound to it (write.go).
type writeConn struct {
	conn  *sql.Conn
	stmts [numStmts]*sql.Stmt
}

// newWriteConn takes a connection of the pool for the writer and prepares
// every statement on it.
func (d *DB) newWriteConn(ctx context.Context) (*writeConn, error) {
	c, err := d.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	wc := &writeConn{conn: c}
	for id, q := range stmtSQL {
		if wc.stmts[id], err = c.PrepareContext(ctx, q); err != nil {
			_ = wc.close()
			return nil, fmt.Errorf("preparing statement %d: %w", id, err)
		}
	}
	return wc, nil
}

// close closes the statements and gives the connection back to the pool.
func (wc *writeConn) close() error {
	var errs []error
	for _, st := range wc.stmts {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(append(errs, wc.conn.Close())...)
}

// wtx is the write transaction an op of the writer runs in (write.go).
type wtx struct {
	c *writeConn
	d *DB
}

// exec runs prepared statement id in the transaction. Statements run under
// a context that is not cancelled (see writeOp).
func (w *wtx) exec(id stmtID, args ...any) (sql.Result, error) {
	return w.c.stmts[id].ExecContext(context.Background(), args...)
}

// queryRow runs prepared statement id in the transaction for one row.
func (w *wtx) queryRow(id stmtID, args ...any) *sql.Row {
	return w.c.stmts[id].QueryRowContext(context.Background(), args...)
}
