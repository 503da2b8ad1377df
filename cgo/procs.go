package main

import (
	"os"
	"runtime"
)

// hostProcs is the GOMAXPROCS of the Go runtime inside the library, unless
// the host's environment sets GOMAXPROCS (then the runtime has used that
// value, which is kept).
//
// One P, because the library's Go code is mostly waiting: a C_Sign spends
// tens of microseconds of CPU in Go (JSON, TLS, HTTP) around a network
// round trip of a millisecond or more. Every host thread that calls in
// runs Go code on a goroutine locked to that thread, and each time such a
// goroutine blocks or becomes runnable the runtime moves a P between
// threads; with more than one P it also wakes idle threads to look for
// work (spinning Ms), and each wake-up is a futex call and a context
// switch, which on virtual machines cost far more than the work they
// schedule. With one P, ready goroutines queue on it and run when the
// current one blocks. Measured through the .so with the bench's C host
// (docs/performance.md): ~25% less host CPU per C_Sign at 1 session and a
// lower p50, about the same at 16 sessions. What is given up: Go code of
// two host threads never runs at the same time, so C_SignUpdate hashing
// of large inputs on several threads at once runs at one core's speed
// (the remote call of one thread does not hold the P while it waits).
// A host that wants more sets GOMAXPROCS in its environment.
const hostProcs = 1

func init() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(hostProcs)
	}
}
