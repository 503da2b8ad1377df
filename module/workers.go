package module

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// workerIdle is how long an idle worker of a workerPool waits for its
// next job before it ends.
const workerIdle = 10 * time.Second

// workerPool runs functions on goroutines that outlive one call, for the
// remote part of C_Sign (see Module.sign): a goroutine started for every
// signature begins with a small stack that TLS and HTTP grow by copying
// it, every time, while a worker keeps its grown stack for the next job.
// A worker ends after workerIdle without a job, so an idle host keeps
// none; there are never more than the calls running at once.
type workerPool struct {
	idleFor time.Duration
	dones   sync.Pool // of chan struct{}, buffered

	mu   sync.Mutex
	idle []*worker // waiting for a job; the last one used last
	// started counts the workers started (tests).
	started atomic.Int64
}

type worker struct {
	jobs chan job // buffered: run never waits to hand over a job
}

type job struct {
	f    func()
	done chan struct{} // buffered: the worker never waits on the caller
}

func newWorkerPool() *workerPool {
	return &workerPool{idleFor: workerIdle}
}

// run runs f on a worker, a new one when none is idle, and returns when f
// has returned.
func (p *workerPool) run(f func()) {
	done, _ := p.dones.Get().(chan struct{})
	if done == nil {
		done = make(chan struct{}, 1)
	}
	p.mu.Lock()
	var w *worker
	if n := len(p.idle); n > 0 {
		w = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
	}
	p.mu.Unlock()
	if w == nil {
		w = &worker{jobs: make(chan job, 1)}
		p.started.Add(1)
		go p.work(w)
	}
	w.jobs <- job{f: f, done: done}
	<-done
	p.dones.Put(done)
}

// work runs w's jobs until it has waited idleFor for one. It lists itself
// idle before it tells the caller its job is done, so that a caller's
// next run finds it.
func (p *workerPool) work(w *worker) {
	t := time.NewTimer(p.idleFor)
	defer t.Stop()
	for {
		select {
		case j := <-w.jobs:
			j.f()
			p.mu.Lock()
			p.idle = append(p.idle, w)
			p.mu.Unlock()
			j.done <- struct{}{}
			t.Reset(p.idleFor)
		case <-t.C:
			p.mu.Lock()
			i := slices.Index(p.idle, w)
			if i >= 0 {
				p.idle = slices.Delete(p.idle, i, i+1)
			}
			p.mu.Unlock()
			if i >= 0 {
				return
			}
			// A caller took w from the list meanwhile: its job is on
			// the way.
		}
	}
}

// signWorkers runs the remote part of every C_Sign and C_SignFinal.
var signWorkers = newWorkerPool()
