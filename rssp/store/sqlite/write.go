package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"

	"github.com/csctoken/csctoken/rssp/store"
)

// Writes and group commit.
//
// Every write is a writeOp, and the calling goroutines take turns running
// them (caller-led group commit): a caller that finds no batch running runs
// its own op at once, on its own goroutine; ops that arrive while a batch
// runs queue up in order, and when the batch ends its leader wakes the
// oldest queued caller, who takes every queued op (up to maxBatch) and runs
// them for everyone. A lone writer thus commits without any hand-over to
// another goroutine, and under load one fsync serves many writes.
//
// A batch is one transaction (BEGIN IMMEDIATE ... COMMIT); its ops run in
// order, each inside a SAVEPOINT: an op that fails is rolled back to its
// savepoint alone, and later ops see the changes of earlier ones, just as
// if each had committed on its own. Ops complete after the COMMIT, so a
// caller never returns before its write is durable. A lone op runs without
// a savepoint. Were the transaction itself to fail (COMMIT, or a savepoint
// statement after an I/O error), every op of the batch fails with that
// error and none of its changes stay.
//
// The queue and the leader's turn are guarded by wmu, which every function
// takes and releases itself; leadership passes by a value on the next
// leader's wake channel, never by a held lock.

// maxBatch bounds the ops of one transaction, so one commit's wait stays short.
const maxBatch = 64

var errClosed = errors.New("database is closed")

// writeOp is one write.
type writeOp struct {
	// ctx is the caller's context. A batch skips the op when ctx has
	// ended before its turn; fn's statements run under a context that is
	// not cancelled (see wtx), since interrupting a statement would roll
	// back the whole transaction, and with it other callers' writes.
	ctx context.Context
	fn  func(w *wtx) error
	err error // final once the op's caller is woken with wakeDone
	// wake tells a queued op's caller (made when it queues) that its op
	// is done (wakeDone) or that it leads the next batch (wakeLead).
	// Buffered: one value per op, sent without waiting.
	wake chan wakeKind
	// taken is set under DB.wmu when a batch has taken the op or its
	// caller has been chosen to lead: its caller may no longer withdraw it.
	taken bool
}

type wakeKind uint8

const (
	wakeDone wakeKind = iota + 1
	wakeLead
)

// write runs fn in a write transaction (see above) and returns its error
// or the transaction's. fn must run its statements through w: prepared
// ones with w.exec and w.queryRow, others on w.c.conn under a context that is
// not cancelled. ctx bounds the wait in the queue; once a batch has taken
// the op, write waits for its batch (bounded by busyTimeout when another
// process holds the lock), and fn runs only if ctx has not ended by its
// turn.
func (d *DB) write(ctx context.Context, fn func(w *wtx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op := &writeOp{ctx: ctx, fn: fn}
	lead, err := d.join(op)
	if err != nil {
		return err
	}
	if !lead {
		lead = d.await(op)
	}
	if lead {
		d.lead(op)
	}
	if isFull(op.err) {
		return fmt.Errorf("%w: %w", store.ErrFull, op.err)
	}
	return op.err
}

// join reports whether op's caller is to lead a batch at once (no batch is
// running); otherwise it queues op.
func (d *DB) join(op *writeOp) (lead bool, err error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if d.wclosed {
		return false, errClosed
	}
	if !d.wbusy {
		d.wbusy = true
		op.taken = true
		return true, nil
	}
	op.wake = make(chan wakeKind, 1)
	d.wqueue = append(d.wqueue, op)
	return false, nil
}

// await waits until queued op is done or its caller is to lead, and reports
// which. When op's ctx ends first and no batch has taken op, op leaves the
// queue with ctx's error.
func (d *DB) await(op *writeOp) (lead bool) {
	select {
	case k := <-op.wake:
		return k == wakeLead
	case <-op.ctx.Done():
	}
	if d.withdraw(op) {
		op.err = op.ctx.Err()
		return false
	}
	return <-op.wake == wakeLead // a batch took it: it finishes every op it took
}

// withdraw removes op from the queue unless a batch has taken it, and
// reports whether it did.
func (d *DB) withdraw(op *writeOp) bool {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if op.taken {
		return false
	}
	for i, q := range d.wqueue {
		if q == op {
			d.wqueue = slices.Delete(d.wqueue, i, i+1)
			return true
		}
	}
	return false // not reached: an op leaves the queue taken, or withdrawn by its caller
}

// lead runs one batch as its leader: op alone when op's caller found no
// batch running, else every queued op (op first). Then it hands the lead
// to the oldest op queued meanwhile and completes the batch's other ops.
func (d *DB) lead(op *writeOp) {
	var one [1]*writeOp
	batch := d.take(op, one[:0])
	defer d.finish(op, batch) // also when an op panics: the others must not wait forever
	d.runBatch(batch)
}

// take returns the batch led by op: op alone when it is not queued, else
// the queued ops from op on (op is the oldest), up to maxBatch, which
// leave the queue. buf is used when the batch has a single op.
func (d *DB) take(op *writeOp, buf []*writeOp) []*writeOp {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if len(d.wqueue) == 0 || d.wqueue[0] != op {
		return append(buf, op)
	}
	n := min(len(d.wqueue), maxBatch)
	batch := buf
	if n > cap(buf) {
		batch = make([]*writeOp, 0, n)
	}
	batch = append(batch, d.wqueue[:n]...)
	for _, q := range batch {
		q.taken = true
	}
	rest := copy(d.wqueue, d.wqueue[n:])
	clear(d.wqueue[rest:])
	d.wqueue = d.wqueue[:rest]
	return batch
}

// finish ends the batch led by op: it counts it, passes the lead to the
// oldest queued op, if any, and wakes the callers of the batch's other ops.
func (d *DB) finish(op *writeOp, batch []*writeOp) {
	d.batches.Add(1)
	d.ops.Add(int64(len(batch)))
	next, idle := d.handOver()
	if next != nil {
		next.wake <- wakeLead
	}
	for _, q := range batch {
		if q != op {
			q.wake <- wakeDone
		}
	}
	if idle != nil {
		close(idle)
	}
}

// handOver picks the next leader (the oldest queued op, marked taken) or,
// with an empty queue, ends the turn: then it returns the channel a Close
// waits on, if any.
func (d *DB) handOver() (next *writeOp, idle chan struct{}) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if len(d.wqueue) > 0 {
		next = d.wqueue[0]
		next.taken = true
		return next, nil
	}
	d.wbusy = false
	idle, d.widle = d.widle, nil
	return nil, idle
}

// closeWrites refuses new writes, fails the queued ops no batch has taken
// with errClosed, and waits for the batches under way (the running one and
// the one whose leader has been chosen).
func (d *DB) closeWrites() {
	idle, refused := d.refuseWrites()
	for _, op := range refused {
		op.err = errClosed
		op.wake <- wakeDone
	}
	if idle != nil {
		<-idle
	}
}

// refuseWrites marks the writes closed and takes the queued ops no batch
// has taken; while a batch runs it returns a channel closed when the last
// one ends.
func (d *DB) refuseWrites() (idle chan struct{}, refused []*writeOp) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.wclosed = true
	kept := d.wqueue[:0]
	for _, op := range d.wqueue {
		if op.taken {
			kept = append(kept, op)
		} else {
			op.taken = true
			refused = append(refused, op)
		}
	}
	clear(d.wqueue[len(kept):])
	d.wqueue = kept
	if d.wbusy {
		d.widle = make(chan struct{})
		idle = d.widle
	}
	return idle, refused
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
func (d *DB) writeTx(ctx context.Context, fn func(ctx context.Context, tx txn) error) error {
	return d.write(ctx, func(w *wtx) error { return fn(context.Background(), w.c.conn) })
}

// exec runs one writing statement that is not among the prepared ones and
// returns the number of rows it changed.
func (d *DB) exec(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := d.writeTx(ctx, func(ctx context.Context, tx txn) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// runBatch runs the ops of batch in one transaction and sets their errors.
func (d *DB) runBatch(batch []*writeOp) {
	ctx := context.Background()
	wc, err := d.writeConn()
	if err == nil {
		_, err = wc.stmts[stBegin].ExecContext(ctx)
	}
	if err != nil {
		d.connFailed(err)
		for _, op := range batch {
			op.err = fmt.Errorf("begin: %w", err)
		}
		return
	}
	rollback := func() {
		_, _ = wc.stmts[stRollback].ExecContext(ctx)
		d.head.ok = false
	}
	// An op that panics ends the transaction, and every op of the batch
	// fails, before the panic goes on up the leader's stack.
	defer func() {
		if r := recover(); r != nil {
			rollback()
			for _, op := range batch {
				op.err = fmt.Errorf("transaction rolled back: a write panicked: %v", r)
			}
			panic(r)
		}
	}()
	// fail ends the transaction with err: ops that had succeeded lose
	// their changes, and ops not yet run do not run.
	fail := func(err error, from int) {
		rollback()
		d.connFailed(err)
		for _, op := range batch[:from] {
			if op.err == nil {
				op.err = fmt.Errorf("transaction rolled back: %w", err)
			}
		}
		for _, op := range batch[from:] {
			op.err = fmt.Errorf("transaction rolled back: %w", err)
		}
	}

	w := &wtx{c: wc, d: d}
	changed := false // some op succeeded: commit
	for i, op := range batch {
		if err := op.ctx.Err(); err != nil {
			op.err = err
			continue
		}
		if len(batch) == 1 {
			if op.err = op.fn(w); op.err != nil {
				rollback()
				d.connFailed(op.err)
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
			d.head.ok = false
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
		rollback()
		return
	}
	if _, err := wc.stmts[stCommit].ExecContext(ctx); err != nil {
		// A failed COMMIT may leave the transaction open (SQLITE_BUSY):
		// end it, so the next batch starts afresh.
		rollback()
		d.connFailed(err)
		for _, op := range batch {
			if op.err == nil {
				op.err = fmt.Errorf("commit: %w", err)
			}
		}
	}
}

// writeConn returns the writer's connection, taking one from the pool when
// it has none (at the first write, and after its connection broke).
func (d *DB) writeConn() (*writeConn, error) {
	if d.wconn == nil {
		wc, err := d.newWriteConn(context.Background())
		if err != nil {
			return nil, err
		}
		d.wconn = wc
	}
	return d.wconn, nil
}

// connFailed drops the writer's connection when err says it is broken, so
// the next batch takes another.
func (d *DB) connFailed(err error) {
	if d.wconn != nil && (errors.Is(err, sql.ErrConnDone) || errors.Is(err, driver.ErrBadConn)) {
		_ = d.wconn.close()
		d.wconn = nil
	}
}
