package cscclient

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// CallerIOSupported says whether WithCallerIO does its I/O on the calling
// goroutine here (Linux: yes).
const CallerIOSupported = true

// blockingConn is a TCP connection whose socket is in blocking mode and
// outside Go's network poller: Read and Write are plain system calls on
// the calling thread, which sleeps in the kernel until data comes (Go's
// runtime gives its P to other goroutines meanwhile, as for any system
// call). Deadlines become SO_RCVTIMEO and SO_SNDTIMEO; abort (a cancelled
// context, from another goroutine) shuts the socket down, which wakes a
// thread blocked on it. The descriptor is closed when the last Read or
// Write under way has returned, so that it is never reused under them.
type blockingConn struct {
	laddr, raddr net.Addr

	mu       sync.Mutex
	fd       int
	inUse    int  // Reads and Writes under way
	closed   bool // Close was called: fd is closed once inUse is 0
	aborted  bool // abort shut the socket down
	readDL   time.Time
	writeDL  time.Time
	rcvTO    time.Duration // SO_RCVTIMEO as set (0: none)
	sndTO    time.Duration
	nRead    int64 // bytes read since the last SetDeadline
	nWritten int64
}

// newBlockingConn takes over c, a *net.TCPConn: its descriptor is
// duplicated, c closed (which takes it out of the poller) and the copy
// put in blocking mode.
func newBlockingConn(c net.Conn) (*blockingConn, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("caller I/O: %T is not a TCP connection", c)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			derr = e
			return
		}
		fd = int(r)
	}); err != nil {
		derr = err
	}
	laddr, raddr := c.LocalAddr(), c.RemoteAddr()
	c.Close()
	if derr != nil {
		return nil, fmt.Errorf("caller I/O: dup: %w", derr)
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("caller I/O: %w", err)
	}
	return &blockingConn{fd: fd, laddr: laddr, raddr: raddr}, nil
}

// acquire returns the descriptor for one Read or Write, and the timeout
// that applies to it (0: none; <0: the deadline has passed).
func (c *blockingConn) acquire(write bool) (fd int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return -1, net.ErrClosed
	}
	dl, cur, opt := c.readDL, &c.rcvTO, syscall.SO_RCVTIMEO
	if write {
		dl, cur, opt = c.writeDL, &c.sndTO, syscall.SO_SNDTIMEO
	}
	var want time.Duration
	if !dl.IsZero() {
		want = time.Until(dl)
		if want <= 0 {
			return -1, os.ErrDeadlineExceeded
		}
	}
	// Set again when the timeout set is off by more than a sixteenth of
	// what is left (a read rarely waits twice in one call).
	if diff := *cur - want; *cur == 0 && want != 0 || want == 0 && *cur != 0 || diff > want/16 || diff < 0 {
		tv := syscall.NsecToTimeval(want.Nanoseconds())
		if want > 0 && tv.Sec == 0 && tv.Usec == 0 {
			tv.Usec = 1
		}
		if err := syscall.SetsockoptTimeval(c.fd, syscall.SOL_SOCKET, opt, &tv); err != nil {
			return -1, os.NewSyscallError("setsockopt", err)
		}
		*cur = want
	}
	c.inUse++
	return c.fd, nil
}

func (c *blockingConn) release(n int, write bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if write {
		c.nWritten += int64(n)
	} else {
		c.nRead += int64(n)
	}
	c.inUse--
	if c.closed && c.inUse == 0 && c.fd >= 0 {
		_ = syscall.Close(c.fd)
		c.fd = -1
	}
}

func (c *blockingConn) Read(p []byte) (int, error) {
	var n int
	for {
		fd, err := c.acquire(false)
		if err != nil {
			return 0, c.opError("read", err)
		}
		n, err = syscall.Read(fd, p)
		n = max(n, 0)
		c.release(n, false)
		// Interrupted by a signal (a socket with SO_RCVTIMEO is never
		// restarted): again, with the time left to the deadline.
		if err != syscall.EINTR {
			return c.readResult(n, err, len(p))
		}
	}
}

func (c *blockingConn) readResult(n int, err error, want int) (int, error) {
	switch {
	case err == syscall.EAGAIN:
		return 0, c.opError("read", os.ErrDeadlineExceeded)
	case err != nil:
		return 0, c.opError("read", os.NewSyscallError("read", err))
	case n == 0 && want > 0:
		// A socket shut down by abort or Close reads as an end of file:
		// that is no end of the answer (a body that ends with the
		// connection would be taken as whole).
		if c.isShut() {
			return 0, c.opError("read", net.ErrClosed)
		}
		return 0, io.EOF
	}
	return n, nil
}

func (c *blockingConn) Write(p []byte) (int, error) {
	total := 0
	var err error
	for total < len(p) {
		fd, aerr := c.acquire(true)
		if aerr != nil {
			return total, c.opError("write", aerr)
		}
		// write(2), as package net does: a peer gone is EPIPE (Go's
		// runtime handles the SIGPIPE of a socket).
		n, e := syscall.Write(fd, p[total:])
		n = max(n, 0)
		c.release(n, true)
		total += n
		if e == syscall.EINTR {
			continue // again, with the time left to the deadline
		}
		if e != nil {
			err = e
			break
		}
	}
	switch {
	case err == syscall.EAGAIN:
		return total, c.opError("write", os.ErrDeadlineExceeded)
	case err != nil:
		return total, c.opError("write", os.NewSyscallError("write", err))
	}
	return total, nil
}

func (c *blockingConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// isShut reports whether Close or abort shut the socket down.
func (c *blockingConn) isShut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed || c.aborted
}

func (c *blockingConn) opError(op string, err error) error {
	if errors.Is(err, net.ErrClosed) && !c.isClosed() {
		err = syscall.ECONNABORTED
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.laddr, Addr: c.raddr, Err: err}
}

// abort shuts the socket down: a Read or Write blocked on it returns.
func (c *blockingConn) abort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.aborted = true
	if c.fd >= 0 {
		_ = syscall.Shutdown(c.fd, syscall.SHUT_RDWR)
	}
}

// Close implements net.Conn: shuts the socket down and closes it once no
// Read or Write is under way.
func (c *blockingConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	c.closed = true
	if c.fd < 0 {
		return nil
	}
	_ = syscall.Shutdown(c.fd, syscall.SHUT_RDWR)
	if c.inUse == 0 {
		_ = syscall.Close(c.fd)
		c.fd = -1
	}
	return nil
}

// idleOK reports whether a kept-alive connection is still open and
// nothing has arrived on it (a server that closed it while idle, or sent
// a TLS alert, makes it unusable).
func (c *blockingConn) idleOK() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.fd < 0 {
		return false
	}
	var b [1]byte
	for {
		_, _, err := syscall.Recvfrom(c.fd, b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if err == syscall.EINTR {
			continue
		}
		return err == syscall.EAGAIN
	}
}

// written and read count the bytes since the last SetDeadline (one per
// request).
func (c *blockingConn) written() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nWritten
}

func (c *blockingConn) read() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nRead
}

func (c *blockingConn) LocalAddr() net.Addr  { return c.laddr }
func (c *blockingConn) RemoteAddr() net.Addr { return c.raddr }

// SetDeadline also resets the byte counts (written, read).
func (c *blockingConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDL, c.writeDL = t, t
	c.nRead, c.nWritten = 0, 0
	return nil
}

func (c *blockingConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDL = t
	return nil
}

func (c *blockingConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writeDL = t
	return nil
}
