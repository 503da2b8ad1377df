//go:build !linux

package cscclient

import (
	"errors"
	"net"
	"time"
)

// errNoConn: no blocking sockets here (newCallerTransport is never
// called, as CallerIOSupported is false).
var errNoConn = errors.New("caller I/O not supported on this platform")

// CallerIOSupported says whether WithCallerIO does its I/O on the calling
// goroutine here (not on this platform: the option does nothing).
const CallerIOSupported = false

// blockingConn exists on Linux only.
type blockingConn struct{ net.Conn }

func newBlockingConn(c net.Conn) (*blockingConn, error) {
	c.Close()
	return nil, errNoConn
}

func (c *blockingConn) abort()                      {}
func (c *blockingConn) idleOK() bool                { return false }
func (c *blockingConn) written() int64              { return 0 }
func (c *blockingConn) read() int64                 { return 0 }
func (c *blockingConn) SetDeadline(time.Time) error { return nil }
