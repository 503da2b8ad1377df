package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/csctoken/csctoken/rssp/store"
)

// Appending to the audit chain, with group commit.
//
// The chain has one order across nodes: a row is appended under a
// transaction-level advisory lock (auditLockKey), which is held until the
// transaction commits, so that the next appender, on any node, reads this
// row as the last one. Were every append a transaction of its own, the
// chain would allow one commit (one WAL flush) at a time for the whole
// service. So each node hands its appending writes (AppendAudit, and
// ConsumeSAD and CreateSAD with an audit row) to one writer goroutine,
// which takes one, then every one already waiting (up to maxBatch), and
// runs them in one transaction under one lock: each inside a SAVEPOINT, so
// one failing is rolled back alone and the chain's head goes back with it.
// Callers return after the COMMIT that made their write durable; if the
// transaction itself fails, every write of the batch fails and none stays.
// A lone write runs without a savepoint.

// maxBatch bounds the writes of one transaction, so one commit's wait
// stays short.
const maxBatch = 64

var errClosed = errors.New("postgres: closed")

// chainHead is the last row of the chain as a batch sees it.
type chainHead struct {
	seq  int64
	hash []byte
}

// chainOp is one appending write.
type chainOp struct {
	// ctx is the caller's; the writer skips the op when it has ended before
	// the op's turn. fn's statements run under the writer's context.
	ctx  context.Context
	fn   func(ctx context.Context, tx pgx.Tx, head *chainHead) error
	err  error
	done chan struct{} // closed when err is final
}

// appendWith runs fn in the writer's transaction (see above): fn makes its
// changes in tx and appends its rows with auditRow.appendTo(head).
func (d *DB) appendWith(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx, head *chainHead) error) error {
	op := &chainOp{ctx: ctx, fn: fn, done: make(chan struct{})}
	select {
	case d.chainOps <- op:
	case <-ctx.Done():
		return ctx.Err()
	case <-d.closed:
		return errClosed
	}
	<-op.done // the writer finishes every op it has taken
	return wrap(op.err)
}

// chainWriter runs batches of ops until Close.
func (d *DB) chainWriter() {
	defer close(d.writerDone)
	batch := make([]*chainOp, 0, maxBatch)
	for {
		select {
		case op := <-d.chainOps:
			batch = append(batch[:0], op)
		case <-d.closed:
			return
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case op := <-d.chainOps:
				batch = append(batch, op)
			default:
				break fill
			}
		}
		d.runBatch(batch)
		for i, op := range batch {
			close(op.done)
			batch[i] = nil
		}
	}
}

// errRolledBack ends a batch's transaction without a commit when none of
// its ops succeeded (each has its own error).
var errRolledBack = errors.New("nothing to commit")

// runBatch runs the ops of batch in one transaction and sets their errors.
func (d *DB) runBatch(batch []*chainOp) {
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, auditLockKey); err != nil {
			return fmt.Errorf("audit lock: %w", err)
		}
		head := chainHead{seq: 0, hash: append([]byte(nil), store.GenesisHash[:]...)}
		err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&head.seq, &head.hash)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("last audit row: %w", err)
		}
		changed := false
		for _, op := range batch {
			if err := op.ctx.Err(); err != nil {
				op.err = err
				continue
			}
			if len(batch) == 1 {
				if op.err = op.fn(ctx, tx, &head); op.err != nil {
					return errRolledBack
				}
				return nil
			}
			saved := head
			if _, err := tx.Exec(ctx, `SAVEPOINT op`); err != nil {
				return err
			}
			if op.err = op.fn(ctx, tx, &head); op.err != nil {
				head = saved
				if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT op`); err != nil {
					return err
				}
			} else {
				changed = true
			}
			if _, err := tx.Exec(ctx, `RELEASE SAVEPOINT op`); err != nil {
				return err
			}
		}
		if !changed {
			return errRolledBack
		}
		return nil
	})
	if err == nil || errors.Is(err, errRolledBack) {
		return
	}
	// The transaction failed (the lock, a savepoint, the commit): no op's
	// change stays.
	for _, op := range batch {
		if op.err == nil {
			op.err = fmt.Errorf("transaction rolled back: %w", err)
		}
	}
}

// appendTo chains r to head, inserts it in tx and moves head to it; it
// sets r.e's Seq, PrevHash and Hash.
func (r *auditRow) appendTo(ctx context.Context, tx pgx.Tx, head *chainHead) error {
	e := &r.e
	e.Seq = head.seq + 1
	e.PrevHash = head.hash
	e.Hash = store.AuditHash(e.PrevHash, *e)
	if _, err := tx.Exec(ctx, `INSERT INTO audit (`+auditCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		e.Seq, r.t, e.Event, e.UserID, e.CredentialID, e.ClientAddr, list(e.Hashes), e.Result, e.Detail, e.PrevHash, e.Hash); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	head.seq, head.hash = e.Seq, e.Hash
	return nil
}

// audited runs fn in a transaction of its own without a row to append
// (row nil), or through the chain writer followed by row's append: the
// change and its audit row commit together or not at all.
func (d *DB) audited(ctx context.Context, row *auditRow, fn func(ctx context.Context, tx pgx.Tx) error) error {
	if row == nil {
		return d.inTx(ctx, func(tx pgx.Tx) error { return fn(ctx, tx) })
	}
	return d.appendWith(ctx, func(ctx context.Context, tx pgx.Tx, head *chainHead) error {
		if err := fn(ctx, tx); err != nil {
			return err
		}
		return row.appendTo(ctx, tx, head)
	})
}
