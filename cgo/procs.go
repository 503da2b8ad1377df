package main

import (
	"os"
	"runtime"
)

// hostProcs is the GOMAXPROCS of the Go runtime inside the library, unless
// the host's environment sets GOMAXPROCS (then the runtime has used that
// value, which is kept).
//
// Two Ps. The library's Go code is mostly waiting: a C_Sign spends tens
// of microseconds of CPU in Go (JSON, TLS, HTTP) around a network round
// trip of a millisecond or more, and on Linux that wait is a blocking
// read(2) on the host's own thread (cscclient.WithCallerIO). A thread in
// a system call keeps its P in the syscall state; with one P, the
// runtime's sysmon thread must take that P back for any other thread to
// run Go code, and while it keeps finding such a P it polls every 20 µs.
// With a second P idle, sysmon leaves a P in a system call alone (up to
// 10 ms when no work is queued), a thread that calls in finds the idle
// one, and a thread whose read returns takes its own P back without a
// hand-off. More Ps than two give the runtime idle threads to wake (GC
// workers, spinning Ms), which on virtual machines cost more than the
// work they schedule. Measured through the .so with the bench's C host
// (docs/performance.md), against one P with the same caller I/O, host
// CPU per C_Sign: -24% (P-256) and -3% (RSA-2048) at 1 session, -16%
// and +3% at 16 sessions; 8 Ps did worse than either.
// What is given up on a machine with more cores: C_SignUpdate hashing of
// large inputs on more than two threads at once runs at two cores' speed.
// A host that wants more sets GOMAXPROCS in its environment.
const hostProcs = 2

func init() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(hostProcs)
	}
}
