package transport

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
	"time"
)

// awaitRequest waits, without reading it, until the connection has bytes
// from its client (the agent's next request, or its close) or wait has
// passed. net/http times a request from the moment it takes a connection,
// with the header timeout meant for new ones, so a connection handed back
// after a parked reply is handed over only once its agent speaks: after
// applying what it got, which may take longer than that timeout.
func awaitRequest(c net.Conn, wait time.Duration) error {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil
	}
	raw, ok := tc.NetConn().(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := raw.SyscallConn()
	if err != nil {
		return err
	}
	nc := tc.NetConn()
	if err := nc.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return err
	}
	defer nc.SetReadDeadline(time.Time{})
	var peekErr error
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
			return false // nothing yet: wait until the socket is readable
		}
		peekErr = err // data, the client's close (0 bytes), or an error: net/http sees it
		return true
	})
	if err != nil {
		return err // the wait passed, or the connection was closed
	}
	if peekErr != nil {
		return peekErr
	}
	return nil
}
