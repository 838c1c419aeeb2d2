//go:build !linux

package proxy

import "net"

// enablePktinfo reports false where dotproxy does not know how to learn a
// datagram's destination: replies then leave from the address the kernel
// chooses, which is right on a host with one address per route.
func enablePktinfo(*net.UDPConn) bool { return false }

// appendReplySource is never called where enablePktinfo reports false.
func appendReplySource(dst, _ []byte) []byte { return dst }
