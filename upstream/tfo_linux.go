package upstream

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// fastOpenControl asks the kernel to send the first write (the TLS
// ClientHello) in the SYN when it holds a Fast Open cookie for the server.
// A kernel that refuses the option just connects as usual.
func fastOpenControl(_, _ string, rc syscall.RawConn) error {
	return rc.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_FASTOPEN_CONNECT, 1)
	})
}
