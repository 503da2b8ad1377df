package module

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWorkerPool(t *testing.T) {
	p := newWorkerPool()
	// Sequential jobs: run returns once f has run, and one worker serves
	// them all.
	var n int
	for range 100 {
		p.run(func() { n++ })
	}
	if n != 100 {
		t.Fatalf("ran %d jobs, want 100", n)
	}
	if s := p.started.Load(); s != 1 {
		t.Errorf("%d workers for sequential jobs, want 1", s)
	}

	// Concurrent jobs that wait for each other: each needs a worker of
	// its own, so none waits behind another.
	const k = 8
	var wg sync.WaitGroup
	var arrived atomic.Int32
	all := make(chan struct{})
	for range k {
		wg.Go(func() {
			p.run(func() {
				if arrived.Add(1) == k {
					close(all)
				}
				select {
				case <-all:
				case <-time.After(10 * time.Second):
					t.Error("a job waited for a worker")
				}
			})
		})
	}
	wg.Wait()
	if s := p.started.Load(); s != k {
		t.Errorf("%d workers started in all, want %d", s, k)
	}
}

func TestWorkerPoolIdle(t *testing.T) {
	p := newWorkerPool()
	p.idleFor = 10 * time.Millisecond
	p.run(func() {})
	time.Sleep(100 * time.Millisecond) // the worker has ended
	p.run(func() {})
	if s := p.started.Load(); s != 2 {
		t.Errorf("%d workers started, want 2 (the first ended when idle)", s)
	}
}
