//go:build !linux

package upstream

import "net"

// wrapRaw returns c: raw system calls are used on Linux only.
func wrapRaw(c net.Conn) net.Conn { return c }

// useRaw does nothing off Linux.
func useRaw(net.Conn) {}
