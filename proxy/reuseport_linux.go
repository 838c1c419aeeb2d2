package proxy

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePort lets several sockets of this process bind one UDP address, the
// kernel spreading datagrams across them by their source. Linux allows it
// only among sockets of the same user.
func reusePort(_, _ string, rc syscall.RawConn) error {
	var err error
	if cerr := rc.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); cerr != nil {
		return cerr
	}
	return err
}
