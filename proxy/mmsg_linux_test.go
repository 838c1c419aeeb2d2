package proxy

import (
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestSockaddrAddrPort(t *testing.T) {
	port := func(p uint16) uint16 { return networkOrder(p) } // its own inverse
	var v4 unix.RawSockaddrInet6
	sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&v4))
	sa4.Family, sa4.Port, sa4.Addr = unix.AF_INET, port(5353), [4]byte{192, 0, 2, 7}

	v6 := unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: port(53)}
	v6.Addr = netip.MustParseAddr("2001:db8::1").As16()

	mapped := unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: port(40000)}
	mapped.Addr = netip.MustParseAddr("::ffff:127.0.0.1").As16()

	link := unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: port(1), Scope_id: 3}
	link.Addr = netip.MustParseAddr("fe80::1").As16()

	tests := []struct {
		sa   *unix.RawSockaddrInet6
		want string
	}{
		{&v4, "192.0.2.7:5353"},
		{&v6, "[2001:db8::1]:53"},
		{&mapped, "[::ffff:127.0.0.1]:40000"},
		{&link, "[fe80::1%3]:1"},
		{&unix.RawSockaddrInet6{Family: unix.AF_UNIX}, "invalid AddrPort"},
	}
	for _, tt := range tests {
		if got := sockaddrAddrPort(tt.sa).String(); got != tt.want {
			t.Errorf("got %s, want %s", got, tt.want)
		}
	}
}
