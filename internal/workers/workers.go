// Package workers runs functions on goroutines that outlive one call.
//
// A goroutine started for every call begins with a small stack, which deep
// work (TLS, HTTP, SQLite, cgo calls with their Go wrappers) grows by
// copying it, every time; a worker keeps its grown stack for the next job.
// The module runs the remote part of C_Sign on one, the rssp the HSM's
// operation of a signature (docs/performance.md).
package workers

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Idle is how long an idle worker waits for its next job before it ends.
const Idle = 10 * time.Second

// Pool runs functions on workers. A worker ends after Idle without a job,
// so an idle process keeps none; there are never more workers than the
// calls running at once. The zero Pool is not usable: use New.
type Pool struct {
	idleFor time.Duration
	dones   sync.Pool // of chan struct{}, buffered

	mu   sync.Mutex
	idle []*worker // waiting for a job; the last one used last
	// started counts the workers started (tests).
	started atomic.Int64
}

type worker struct {
	jobs chan job // buffered: Start never waits to hand over a job
}

type job struct {
	f    func()
	done chan struct{} // buffered: the worker never waits on the caller
}

// New returns a Pool whose workers end after Idle without a job.
func New() *Pool {
	return &Pool{idleFor: Idle}
}

// Run runs f on a worker and returns when f has returned.
func (p *Pool) Run(f func()) {
	p.Start(f).Wait()
}

// Started is a job handed to a worker.
type Started struct {
	p    *Pool
	done chan struct{}
}

// Wait returns when the job has returned. Call it exactly once.
func (s Started) Wait() {
	<-s.done
	s.p.dones.Put(s.done)
}

// Start runs f on a worker, a new one when none is idle, and returns at
// once; the result's Wait returns when f has returned.
func (p *Pool) Start(f func()) Started {
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
	return Started{p: p, done: done}
}

// work runs w's jobs until it has waited idleFor for one. It lists itself
// idle before it tells the caller its job is done, so that a caller's
// next Start finds it.
func (p *Pool) work(w *worker) {
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
