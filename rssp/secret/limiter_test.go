package secret

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := NewLimiter(2, 20*time.Millisecond)
	if l.Slots() != 2 {
		t.Fatalf("Slots = %d, want 2", l.Slots())
	}
	ctx := context.Background()
	relShared, err := l.acquire(ctx, false)
	if err != nil {
		t.Fatalf("first anonymous acquire: %v", err)
	}
	// The only shared slot is taken: an anonymous caller waits, then is busy.
	start := time.Now()
	if _, err := l.acquire(ctx, false); !errors.Is(err, ErrBusy) {
		t.Fatalf("anonymous acquire with no shared slot: %v, want ErrBusy", err)
	}
	if d := time.Since(start); d < 15*time.Millisecond || d > 2*time.Second {
		t.Errorf("waited %v, want about 20ms", d)
	}
	// An authenticated caller gets the reserved slot.
	relReserved, err := l.acquire(ctx, true)
	if err != nil {
		t.Fatalf("authenticated acquire: %v", err)
	}
	if _, err := l.acquire(ctx, true); !errors.Is(err, ErrBusy) {
		t.Fatalf("authenticated acquire with every slot taken: %v, want ErrBusy", err)
	}
	relShared()
	relReserved()

	// A slot freed while waiting is taken.
	lw := NewLimiter(2, time.Minute)
	held, _ := lw.acquire(ctx, false)
	go func() { time.Sleep(5 * time.Millisecond); held() }()
	rel, err := lw.acquire(ctx, false)
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	rel()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	l2 := NewLimiter(2, time.Minute)
	r1, _ := l2.acquire(ctx, false)
	defer r1()
	if _, err := l2.acquire(cctx, false); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire with a cancelled context: %v", err)
	}
}

func TestSlotsFor(t *testing.T) {
	for _, tc := range []struct {
		name   string
		budget int64
		p      Params
		want   int
	}{
		{"ok default 96 MiB", 96 << 20, DefaultParams, 5},
		{"ok tiny budget", 1 << 20, DefaultParams, 2},
		{"ok cheap hash", 64 << 20, Params{Time: 1, Memory: 1024, Threads: 1}, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SlotsFor(tc.budget, tc.p); got != tc.want {
				t.Errorf("SlotsFor(%d, %+v) = %d, want %d", tc.budget, tc.p, got, tc.want)
			}
		})
	}
}
