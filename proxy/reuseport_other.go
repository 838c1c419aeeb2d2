//go:build !linux

package proxy

import (
	"errors"
	"syscall"
)

// reusePort is refused where dotproxy does not use SO_REUSEPORT.
func reusePort(_, _ string, _ syscall.RawConn) error {
	return errors.New("several UDP sockets per address need Linux")
}
