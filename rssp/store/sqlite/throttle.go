package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/csctoken/csctoken/rssp/store"
)

// The throttles of failed guesses (store.Store's ThrottleWait and
// ThrottleFail): a token bucket kept as the time it is full again, taken
// from by one conditional upsert in the writer.

// throttleArgs checks ThrottleWait's and ThrottleFail's arguments.
func throttleArgs(key []byte, now time.Time, rate store.ThrottleRate) (nowN, every, room int64, err error) {
	if len(key) == 0 {
		return 0, 0, 0, errors.New("empty key")
	}
	if nowN, err = requiredNanos(now); err != nil {
		return 0, 0, 0, fmt.Errorf("now: %w", err)
	}
	every, room, err = store.ThrottleSpans(rate)
	return nowN, every, room, err
}

// ThrottleWait implements store.Store.
func (d *DB) ThrottleWait(ctx context.Context, key []byte, now time.Time, rate store.ThrottleRate) (time.Duration, error) {
	nowN, _, room, err := throttleArgs(key, now, rate)
	if err != nil {
		return 0, fmt.Errorf("sqlite: throttle: %w", err)
	}
	full, err := get(ctx, d, stThrottle, func(sc scanner) (int64, error) {
		var n int64
		return n, sc.Scan(&n)
	}, key)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: throttle: %w", err)
	}
	return store.ThrottleWaitOf(full, nowN, room), nil
}

// ThrottleFail implements store.Store.
func (d *DB) ThrottleFail(ctx context.Context, key []byte, now time.Time, rate store.ThrottleRate) (bool, error) {
	nowN, every, room, err := throttleArgs(key, now, rate)
	if err != nil {
		return false, fmt.Errorf("sqlite: throttle failure: %w", err)
	}
	var full int64
	taken := true
	err = d.write(ctx, func(w *wtx) error {
		err := w.queryRow(stThrottleFail, key, nowN, every, room).Scan(&full)
		if errors.Is(err, sql.ErrNoRows) {
			taken = false // already empty
			return nil
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: throttle failure: %w", err)
	}
	return taken && full-nowN > room, nil
}
