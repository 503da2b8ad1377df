package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/csctoken/csctoken/rssp/store"
)

// The throttles of failed guesses across nodes (store.Store's ThrottleWait
// and ThrottleFail): a token bucket kept as the time it is full again,
// taken from by one conditional upsert, which the row lock (or the unique
// index, for a new key) makes atomic between nodes.

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
		return 0, fmt.Errorf("postgres: throttle: %w", err)
	}
	var full int64
	err = d.pool.QueryRow(ctx, `SELECT full_at FROM throttles WHERE key = $1`, key).Scan(&full)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: throttle: %w", wrap(err))
	}
	return store.ThrottleWaitOf(full, nowN, room), nil
}

// ThrottleFail implements store.Store. One failure: the bucket is full
// again one Every later, counted from now when it was full; nothing
// changes (no row returned) when it is already empty, i.e. full again
// later than now plus (Burst-1)*Every.
func (d *DB) ThrottleFail(ctx context.Context, key []byte, now time.Time, rate store.ThrottleRate) (bool, error) {
	nowN, every, room, err := throttleArgs(key, now, rate)
	if err != nil {
		return false, fmt.Errorf("postgres: throttle failure: %w", err)
	}
	var full int64
	err = d.pool.QueryRow(ctx, `INSERT INTO throttles (key, full_at) VALUES ($1, $2::bigint + $3::bigint)
		ON CONFLICT (key) DO UPDATE SET full_at = GREATEST(throttles.full_at, $2::bigint) + $3::bigint
			WHERE throttles.full_at - $2::bigint <= $4::bigint
		RETURNING full_at`, key, nowN, every, room).Scan(&full)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil // already empty
	}
	if err != nil {
		return false, fmt.Errorf("postgres: throttle failure: %w", wrap(err))
	}
	return full-nowN > room, nil
}
