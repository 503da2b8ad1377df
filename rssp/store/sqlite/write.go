package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/csctoken/csctoken/rssp/store"
)

// Writes and group commit.
//
// Every write is a writeOp handed to the writer goroutine over an unbuffered
// channel. The writer takes one op, then every op whose caller is already
// waiting to hand it one (up to maxBatch), and runs them in one transaction
// (BEGIN IMMEDIATE ... COMMIT), in order, each inside a SAVEPOINT: an op that
// fails is rolled back to its savepoint alone, and later ops see the changes
// of earlier ones, just as if each had committed on its own. Ops complete
// after the COMMIT, so a caller never returns before its write is durable.
// One fsync thus serves every op of the batch.
//
// A lone op runs without a savepoint. Were the transaction itself to fail
// (COMMIT, or a savepoint statement after an I/O error), every op of the
// batch fails with that error and none of its changes stay.

// maxBatch bounds the ops of one transaction, so one commit's wait stays short.
const maxBatch = 64

var errClosed = errors.New("database is closed")

// writeOp is one write.
type writeOp struct {
	// ctx is the caller's context. The writer skips the op when ctx has
	// ended before its turn; fn's statements run under a context that is
	// not cancelled (see wtx), since interrupting a statement would roll
	// back the whole transaction, and with it other callers' writes.
	ctx  context.Context
	fn   func(w *wtx) error
	err  error
	done chan struct{} // closed when err is final
}

// write runs fn in a write transaction (see above) and returns its error
// or the transaction's. fn must run its statements through w: prepared
// ones with w.exec and w.queryRow, others on w.tx under a context that is
// not cancelled. ctx bounds the wait for the writer; once the writer has
// taken the op, write waits for its batch (bounded by busyTimeout when
// another process holds the lock), and fn runs only if ctx has not ended by
// its turn.
func (d *DB) write(ctx context.Context, fn func(w *wtx) error) error {
	op := &writeOp{ctx: ctx, fn: fn, done: make(chan struct{})}
	select {
	case d.writes <- op:
	case <-ctx.Done():
		return ctx.Err()
	case <-d.closing:
		return errClosed
	}
	<-op.done // the writer finishes every op it has taken
	if isFull(op.err) {
		return fmt.Errorf("%w: %w", store.ErrFull, op.err)
	}
	return op.err
}

// execStmt runs one prepared writing statement and returns the number of
// rows it changed.
func (d *DB) execStmt(ctx context.Context, id stmtID, args ...any) (int64, error) {
	var n int64
	err := d.write(ctx, func(w *wtx) error {
		res, err := w.exec(id, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// writeTx is write for ops whose SQL is not among the prepared statements:
// fn runs its statements on tx under ctx, which is not cancelled.
func (d *DB) writeTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	return d.write(ctx, func(w *wtx) error { return fn(context.Background(), w.tx) })
}

// exec runs one writing statement that is not among the prepared ones and
// returns the number of rows it changed.
func (d *DB) exec(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := d.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// writer runs batches of ops until Close.
func (d *DB) writer() {
	defer close(d.writerDone)
	batch := make([]*writeOp, 0, maxBatch)
	for {
		select {
		case op := <-d.writes:
			batch = append(batch[:0], op)
		case <-d.closing:
			return
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case op := <-d.writes:
				batch = append(batch, op)
			default:
				break fill
			}
		}
		d.runBatch(batch)
		d.batches.Add(1)
		d.ops.Add(int64(len(batch)))
		for i, op := range batch {
			close(op.done)
			batch[i] = nil
		}
	}
}

// runBatch runs the ops of batch in one transaction and sets their errors.
func (d *DB) runBatch(batch []*writeOp) {
	ctx := context.Background()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		for _, op := range batch {
			op.err = fmt.Errorf("begin: %w", err)
		}
		return
	}
	// fail ends the transaction with err: ops that had succeeded lose
	// their changes, and ops not yet run do not run.
	fail := func(err error, from int) {
		_ = tx.Rollback()
		for _, op := range batch[:from] {
			if op.err == nil {
				op.err = fmt.Errorf("transaction rolled back: %w", err)
			}
		}
		for _, op := range batch[from:] {
			op.err = fmt.Errorf("transaction rolled back: %w", err)
		}
	}

	w := &wtx{tx: tx, d: d}
	changed := false // some op succeeded: commit
	for i, op := range batch {
		if err := op.ctx.Err(); err != nil {
			op.err = err
			continue
		}
		if len(batch) == 1 {
			if op.err = op.fn(w); op.err != nil {
				_ = tx.Rollback()
				return
			}
			changed = true
			break
		}
		if _, err := w.exec(stSavepoint); err != nil {
			fail(err, i)
			return
		}
		if op.err = op.fn(w); op.err != nil {
			if _, err := w.exec(stRollbackTo); err != nil {
				fail(err, i+1)
				return
			}
		} else {
			changed = true
		}
		if _, err := w.exec(stRelease); err != nil {
			fail(err, i+1)
			return
		}
	}
	if !changed {
		_ = tx.Rollback()
		return
	}
	if err := tx.Commit(); err != nil {
		for _, op := range batch {
			if op.err == nil {
				op.err = fmt.Errorf("commit: %w", err)
			}
		}
	}
}
