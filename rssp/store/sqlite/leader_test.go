package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The tests of caller-led group commit (write.go): who leads which batch,
// and what the others see.

// waitQueued waits until n ops are in d's write queue.
func waitQueued(t *testing.T, d *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.wmu.Lock()
		got := len(d.wqueue)
		d.wmu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d ops queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// insertOp is a write that inserts the user id, counting its runs in runs.
func insertOp(id string, runs *atomic.Int32) func(ctx context.Context, tx txn) error {
	return func(ctx context.Context, tx txn) error {
		runs.Add(1)
		_, err := tx.ExecContext(ctx, `INSERT INTO users (id, name, password_hash) VALUES (?, ?, '')`, id, id)
		return err
	}
}

// userCount returns the number of users in d.
func userCount(t *testing.T, d *DB) int {
	t.Helper()
	var n int
	if err := d.db.QueryRowContext(t.Context(), `SELECT count(*) FROM users`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestLeadershipPasses(t *testing.T) {
	tests := []struct {
		name string
		// queued: writers queue behind a held batch before any runs, so
		// the batches are known: the holding op's, then queued ones of
		// at most maxBatch ops.
		queued           bool
		writers, perEach int
	}{
		{name: "free-running", writers: 32, perEach: 20},
		{name: "queued", queued: true, writers: maxBatch + 36, perEach: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := openTemp(t)
			defer d.Close()
			var release func()
			if tt.queued {
				release = hold(t, d)
			}
			batches0, ops0 := d.batches.Load(), d.ops.Load()
			runs := make([][]atomic.Int32, tt.writers)
			errs := make([][]error, tt.writers)
			var wg sync.WaitGroup
			for w := range tt.writers {
				runs[w] = make([]atomic.Int32, tt.perEach)
				errs[w] = make([]error, tt.perEach)
				wg.Go(func() {
					for i := range tt.perEach {
						errs[w][i] = d.writeTx(t.Context(), insertOp(fmt.Sprintf("u%d-%d", w, i), &runs[w][i]))
					}
				})
			}
			if tt.queued {
				waitQueued(t, d, tt.writers)
				release()
			}
			wg.Wait()

			total := tt.writers * tt.perEach
			for w := range tt.writers {
				for i := range tt.perEach {
					if n := runs[w][i].Load(); n != 1 || errs[w][i] != nil {
						t.Errorf("op %d-%d: ran %d times, error %v; want once, no error", w, i, n, errs[w][i])
					}
				}
			}
			if n := userCount(t, d); n != total {
				t.Errorf("%d users, want %d", n, total)
			}
			batches, ops := d.batches.Load()-batches0, d.ops.Load()-ops0
			if tt.queued {
				total++ // the holding op
				if batches != 3 {
					t.Errorf("%d batches, want 3: the holding op's, %d ops, then %d", batches, maxBatch, tt.writers-maxBatch)
				}
			}
			if ops != int64(total) {
				t.Errorf("%d ops counted, want %d", ops, total)
			}
			if batches >= ops {
				t.Errorf("%d batches for %d ops: no batch carried more than one op", batches, ops)
			}
			t.Logf("%d ops in %d batches", ops, batches)
			d.wmu.Lock()
			busy, queued := d.wbusy, len(d.wqueue)
			d.wmu.Unlock()
			if busy || queued != 0 {
				t.Errorf("after the writes: busy %v, %d queued; want idle", busy, queued)
			}
		})
	}
}

// cancelledCtx is a context that reports itself cancelled (Err) once
// cancel is set, without its Done channel closing: a caller cancelled at
// the moment it is handed the lead, too late for it to see Done first.
type cancelledCtx struct {
	context.Context
	cancel atomic.Bool
}

func (c *cancelledCtx) Err() error {
	if c.cancel.Load() {
		return context.Canceled
	}
	return c.Context.Err()
}

func TestCancelledLeaderFinishesBatch(t *testing.T) {
	tests := []struct {
		name string
		// cancel cancels the leader's context: before its op's turn
		// (skipped) or from inside its op (which completes).
		beforeTurn bool
		wantErr    error
	}{
		{name: "before its turn", beforeTurn: true, wantErr: context.Canceled},
		{name: "during its op", wantErr: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := openTemp(t)
			defer d.Close()
			release := hold(t, d)

			lctx := &cancelledCtx{Context: t.Context()}
			dctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var leaderRuns atomic.Int32
			leaderErr := make(chan error, 1)
			go func() {
				ctx := context.Context(lctx)
				if !tt.beforeTurn {
					ctx = dctx
				}
				leaderErr <- d.writeTx(ctx, func(ctx context.Context, tx txn) error {
					cancel()
					return insertOp("leader", &leaderRuns)(ctx, tx)
				})
			}()
			waitQueued(t, d, 1) // the oldest queued op: its caller leads the next batch
			var others [3]atomic.Int32
			var otherErrs [3]error
			var wg sync.WaitGroup
			for i := range others {
				wg.Go(func() {
					otherErrs[i] = d.writeTx(t.Context(), func(ctx context.Context, tx txn) error {
						if !tt.beforeTurn && dctx.Err() == nil {
							return errors.New("ran before the leader's op, or the leader's context is not cancelled")
						}
						return insertOp(fmt.Sprint("other", i), &others[i])(ctx, tx)
					})
				})
			}
			waitQueued(t, d, 1+len(others))
			if tt.beforeTurn {
				lctx.cancel.Store(true)
			}
			batches := d.batches.Load()
			release()
			if err := <-leaderErr; !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("leader's write: %v, want %v", err, tt.wantErr)
			}
			wg.Wait()
			if n := d.batches.Load() - batches; n != 2 {
				t.Errorf("%d batches, want 2 (the holding op's, then the leader's)", n)
			}
			for i := range others {
				if otherErrs[i] != nil || others[i].Load() != 1 {
					t.Errorf("op %d: error %v, ran %d times; want no error, once", i, otherErrs[i], others[i].Load())
				}
			}
			wantUsers := len(others)
			if !tt.beforeTurn {
				wantUsers++
			}
			if n := userCount(t, d); n != wantUsers {
				t.Errorf("%d users, want %d", n, wantUsers)
			}
			if tt.beforeTurn && leaderRuns.Load() != 0 {
				t.Errorf("the cancelled leader's op ran")
			}
		})
	}
}

func TestCloseDuringBatch(t *testing.T) {
	d := openTemp(t)
	release := hold(t, d)
	// A write that waits for the held batch: Close refuses it.
	var queuedRuns atomic.Int32
	queuedErr := make(chan error, 1)
	go func() { queuedErr <- d.writeTx(t.Context(), insertOp("queued", &queuedRuns)) }()
	waitQueued(t, d, 1)

	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	if err := <-queuedErr; !errors.Is(err, errClosed) {
		t.Errorf("write queued when Close began: %v, want errClosed", err)
	}
	// Close has begun: later writes are refused at once.
	var lateRuns atomic.Int32
	if err := d.writeTx(t.Context(), insertOp("late", &lateRuns)); !errors.Is(err, errClosed) {
		t.Errorf("write after Close began: %v, want errClosed", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a batch ran", err)
	case <-time.After(100 * time.Millisecond):
	}
	release() // the holding op commits, then Close goes on
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	if n := queuedRuns.Load() + lateRuns.Load(); n != 0 {
		t.Errorf("refused writes ran %d times", n)
	}
	if d.batches.Load() != 1 {
		t.Errorf("%d batches, want 1: the holding op's", d.batches.Load())
	}
}

func TestBatchFailingOps(t *testing.T) {
	d := openTemp(t)
	defer d.Close()
	boom := errors.New("boom")
	var panicRuns atomic.Int32
	ops := []struct {
		name    string
		fn      func(ctx context.Context, tx txn) error
		wantErr string // "" for none
	}{
		{name: "ok1", fn: insertOp("ok1", new(atomic.Int32))},
		{name: "error", fn: func(ctx context.Context, tx txn) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO users (id, name, password_hash) VALUES ('e', 'e', '')`); err != nil {
				return err
			}
			return boom // after a change, which its savepoint undoes
		}, wantErr: "boom"},
		{name: "bad SQL", fn: func(ctx context.Context, tx txn) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO no_such_table VALUES (1)`)
			return err
		}, wantErr: "no_such_table"},
		{name: "ok2", fn: insertOp("ok2", new(atomic.Int32))},
	}
	release := hold(t, d)
	errs := make([]error, len(ops))
	var wg sync.WaitGroup
	for i, op := range ops {
		wg.Go(func() { errs[i] = d.writeTx(t.Context(), op.fn) })
		waitQueued(t, d, i+1)
	}
	batches := d.batches.Load()
	release()
	wg.Wait()
	if n := d.batches.Load() - batches; n != 2 {
		t.Errorf("%d batches, want 2: the ops did not run as one", n)
	}
	for i, op := range ops {
		if op.wantErr == "" && errs[i] != nil || op.wantErr != "" && (errs[i] == nil || !strings.Contains(errs[i].Error(), op.wantErr)) {
			t.Errorf("%s: %v, want %q", op.name, errs[i], op.wantErr)
		}
	}
	if !errors.Is(errs[1], boom) {
		t.Errorf("error: %v does not wrap the op's error", errs[1])
	}
	if n := userCount(t, d); n != 2 {
		t.Errorf("%d users, want 2 (ok1, ok2)", n)
	}

	// An op that panics fails its whole batch, its panic reaches the
	// leader's caller, and the next write runs.
	t.Run("panic", func(t *testing.T) {
		release := hold(t, d)
		leaderPanic := make(chan any, 1)
		var leaderErr error
		var wg sync.WaitGroup
		wg.Go(func() {
			defer func() { leaderPanic <- recover() }()
			leaderErr = d.writeTx(t.Context(), insertOp("p1", new(atomic.Int32)))
		})
		waitQueued(t, d, 1)
		var panicErr error
		wg.Go(func() {
			panicErr = d.writeTx(t.Context(), func(context.Context, txn) error {
				panicRuns.Add(1)
				panic("op panics")
			})
		})
		waitQueued(t, d, 2)
		release()
		wg.Wait()
		if p := <-leaderPanic; p != "op panics" {
			t.Errorf("leader's caller: panic %v, want the op's", p)
		}
		_ = leaderErr // its write did not return
		if panicErr == nil || !strings.Contains(panicErr.Error(), "panicked") {
			t.Errorf("panicking op's caller: %v, want the transaction rolled back", panicErr)
		}
		if panicRuns.Load() != 1 {
			t.Errorf("panicking op ran %d times", panicRuns.Load())
		}
		if err := d.writeTx(t.Context(), insertOp("after", new(atomic.Int32))); err != nil {
			t.Errorf("write after the panic: %v", err)
		}
		if n := userCount(t, d); n != 3 {
			t.Errorf("%d users, want 3 (ok1, ok2, after; not p1)", n)
		}
	})
}
