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
// call. The writer runs them in its transaction through Tx.StmtContext,
// which reuses the connection's prepared statement (see wtx).

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

	// The writer's savepoints (write.go).
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

// wtx is the write transaction an op of the writer runs in (write.go).
type wtx struct {
	tx *sql.Tx
	d  *DB
	// stmts holds the prepared statements bound to tx, made on first use.
	stmts [numStmts]*sql.Stmt
}

// stmt returns prepared statement id bound to the transaction. Its driver
// statement is the one prepared on the transaction's connection, so only
// the first use on a connection parses it.
func (w *wtx) stmt(id stmtID) *sql.Stmt {
	if w.stmts[id] == nil {
		w.stmts[id] = w.tx.StmtContext(context.Background(), w.d.stmts[id])
	}
	return w.stmts[id]
}

// exec runs prepared statement id in the transaction. Statements run under
// a context that is not cancelled (see writeOp).
func (w *wtx) exec(id stmtID, args ...any) (sql.Result, error) {
	return w.stmt(id).ExecContext(context.Background(), args...)
}

// queryRow runs prepared statement id in the transaction for one row.
func (w *wtx) queryRow(id stmtID, args ...any) *sql.Row {
	return w.stmt(id).QueryRowContext(context.Background(), args...)
}
