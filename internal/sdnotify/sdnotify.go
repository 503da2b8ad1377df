// Package sdnotify tells systemd how a service is doing (the sd_notify(3)
// protocol): one datagram such as "READY=1" to the socket named by
// $NOTIFY_SOCKET. Not under systemd (or not Type=notify) the variable is
// unset and Notify does nothing.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// States a service sends.
const (
	Ready    = "READY=1"    // serving: systemd finishes starting the unit
	Stopping = "STOPPING=1" // shutting down
)

// Notify sends state to systemd when $NOTIFY_SOCKET is set. A socket name
// starting with '@' is in the abstract namespace (net handles it).
func Notify(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if !strings.HasPrefix(addr, "/") && !strings.HasPrefix(addr, "@") {
		return fmt.Errorf("sdnotify: $NOTIFY_SOCKET %q: only unix sockets are supported", addr)
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}
