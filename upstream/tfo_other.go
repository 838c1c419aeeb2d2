//go:build !linux

package upstream

import "syscall"

// fastOpenControl is a no-op where dotproxy does not know how to ask for TCP
// Fast Open.
func fastOpenControl(_, _ string, _ syscall.RawConn) error { return nil }
