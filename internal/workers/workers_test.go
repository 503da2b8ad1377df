package workers

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWorkerPool(t *testing.T) {
	p := New()
	// Sequential jobs: run returns once f has run, and one worker serves
	// them all.
	var n int
	for range 100 {
		p.Run(func() { n++ })
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
			p.Run(func() {
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
	p := New()
	p.idleFor = 10 * time.Millisecond
	p.Run(func() {})
	time.Sleep(100 * time.Millisecond) // the worker has ended
	p.Run(func() {})
	if s := p.started.Load(); s != 2 {
		t.Errorf("%d workers started, want 2 (the first ended when idle)", s)
	}
}

func TestStartReturnsAtOnce(t *testing.T) {
	p := New()
	release := make(chan struct{})
	var ran atomic.Bool
	s := p.Start(func() {
		<-release // Start must return before this job can end
		ran.Store(true)
	})
	close(release)
	s.Wait()
	if !ran.Load() {
		t.Fatal("Wait returned before the job ended")
	}
	// The worker is idle again and serves the next job.
	p.Run(func() {})
	if n := p.started.Load(); n != 1 {
		t.Errorf("%d workers started, want 1", n)
	}
}
