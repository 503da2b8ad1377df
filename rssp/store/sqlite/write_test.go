package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

// hold occupies the writer with an op that waits until release is called,
// so that the writes started meanwhile queue up and run as one batch.
func hold(t *testing.T, d *DB) (release func()) {
	t.Helper()
	running, unblock := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- d.write(t.Context(), func(*wtx) error {
			close(running)
			<-unblock
			return nil
		})
	}()
	<-running
	return func() {
		close(unblock)
		if err := <-errc; err != nil {
			t.Errorf("holding op: %v", err)
		}
	}
}

// queued waits until the goroutines started just before have had time to
// block handing their ops to the writer (which takes them in that order).
func queued() { time.Sleep(100 * time.Millisecond) }

func TestBatchIsolation(t *testing.T) {
	d := openTemp(t)
	defer d.Close()
	ctx := t.Context()
	if err := d.CreateUser(ctx, store.User{ID: "u0", Name: "taken"}); err != nil {
		t.Fatal(err)
	}

	release := hold(t, d)
	batches := d.batches.Load()
	names := []string{"a", "taken", "b", "a", "c"} // two fail: a name taken before, and one taken in the batch
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			errs[i] = d.CreateUser(ctx, store.User{ID: fmt.Sprint("u", i+1), Name: name})
		})
		queued()
	}
	release()
	wg.Wait()
	if n := d.batches.Load() - batches; n != 2 { // the holding op's, then ours
		t.Errorf("%d batches, want 2: the writes did not run as one batch", n)
	}

	wantErr := []error{nil, store.ErrExists, nil, store.ErrExists, nil}
	for i, err := range errs {
		if !errors.Is(err, wantErr[i]) || (wantErr[i] == nil && err != nil) {
			t.Errorf("CreateUser(%q) #%d: %v, want %v", names[i], i, err, wantErr[i])
		}
	}
	for i, name := range []string{"a", "b", "c"} {
		u, err := d.UserByName(ctx, name)
		if err != nil {
			t.Errorf("user %q: %v", name, err)
			continue
		}
		if want := []string{"u1", "u3", "u5"}[i]; u.ID != want {
			t.Errorf("user %q has ID %q, want %q", name, u.ID, want)
		}
	}
}

func TestBatchCancelledOpSkipped(t *testing.T) {
	d := openTemp(t)
	defer d.Close()

	release := hold(t, d)
	// first blocks inside the next batch until second's context is
	// cancelled; second is in the same batch, after it.
	firstRunning, firstGo := make(chan struct{}), make(chan struct{})
	var firstErr, secondErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		firstErr = d.writeTx(t.Context(), func(ctx context.Context, tx txn) error {
			close(firstRunning)
			<-firstGo
			_, err := tx.ExecContext(ctx, `INSERT INTO users (id, name, password_hash) VALUES ('u1', 'first', '')`)
			return err
		})
	})
	queued()
	ctx2, cancel := context.WithCancel(t.Context())
	defer cancel()
	wg.Go(func() {
		secondErr = d.CreateUser(ctx2, store.User{ID: "u2", Name: "second"})
	})
	queued()
	release()
	<-firstRunning
	cancel()
	close(firstGo)
	wg.Wait()

	if firstErr != nil {
		t.Errorf("first: %v", firstErr)
	}
	if !errors.Is(secondErr, context.Canceled) {
		t.Errorf("second: %v, want context.Canceled", secondErr)
	}
	if _, err := d.UserByName(t.Context(), "first"); err != nil {
		t.Errorf("first's write: %v", err)
	}
	if _, err := d.UserByName(t.Context(), "second"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second's write: %v, want not found (skipped)", err)
	}
}

func TestWriteAfterClose(t *testing.T) {
	d := openTemp(t)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	err := d.CreateUser(t.Context(), store.User{ID: "u", Name: "u"})
	if !errors.Is(err, errClosed) {
		t.Errorf("CreateUser after Close: %v, want errClosed", err)
	}
	if _, err := d.UserByID(t.Context(), "u"); err == nil {
		t.Errorf("UserByID after Close: no error")
	}
}

func TestWriteCancelledWhileQueued(t *testing.T) {
	d := openTemp(t)
	defer d.Close()
	release := hold(t, d)
	defer release()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := d.CreateUser(ctx, store.User{ID: "u", Name: "u"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("CreateUser with the writer busy: %v, want context.DeadlineExceeded", err)
	}
}
