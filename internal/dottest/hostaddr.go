package dottest

import (
	"net"
	"net/netip"
	"testing"
)

// HostAddr returns an IPv4 address of this host that is not loopback and
// that a socket can be bound to, as a client on the network would send
// from: what a test of a client off loopback needs. Every machine on a
// network, or running Docker (docker0), has one; on a host with none the
// test fails, saying so.
func HostAddr(tb testing.TB) netip.Addr {
	tb.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		tb.Fatal(err)
	}
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil || !p.Addr().Is4() || p.Addr().IsLoopback() || p.Addr().IsLinkLocalUnicast() {
			continue
		}
		if l, err := net.ListenPacket("udp", netip.AddrPortFrom(p.Addr(), 0).String()); err == nil {
			l.Close()
			return p.Addr()
		}
	}
	tb.Fatal("this host has no IPv4 address but loopback: bring up any interface (or Docker's docker0) to run this test")
	return netip.Addr{}
}
