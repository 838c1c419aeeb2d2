package proxy

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReplySource(t *testing.T) {
	v4 := unix.PktInfo4(&unix.Inet4Pktinfo{Ifindex: 2, Spec_dst: [4]byte{192, 0, 2, 9}, Addr: [4]byte{192, 0, 2, 2}})
	v4mapped := unix.PktInfo6(&unix.Inet6Pktinfo{Addr: [16]byte{10: 0xff, 11: 0xff, 12: 192, 13: 0, 14: 2, 15: 2}, Ifindex: 2})
	v6 := unix.PktInfo6(&unix.Inet6Pktinfo{Addr: [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 2}, Ifindex: 3})
	linkLocal := unix.PktInfo6(&unix.Inet6Pktinfo{Addr: [16]byte{0xfe, 0x80, 15: 1}, Ifindex: 4})
	tests := []struct {
		name string
		oob  []byte
		want []byte
	}{
		{"IPv4: the header's destination, not the route's", v4, unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: [4]byte{192, 0, 2, 2}})},
		{"IPv4 on a dual-stack socket: both kinds, IPv6 first", append(append([]byte(nil), v4mapped...), v4...), unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: [4]byte{192, 0, 2, 2}})},
		{"IPv6", v6, unix.PktInfo6(&unix.Inet6Pktinfo{Addr: [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 2}})},
		{"IPv6 link-local keeps its interface", linkLocal, unix.PktInfo6(&unix.Inet6Pktinfo{Addr: [16]byte{0xfe, 0x80, 15: 1}, Ifindex: 4})},
		{"only a v4-mapped IPv6 one (truncated)", v4mapped, nil},
		{"nothing", nil, nil},
		{"garbage", []byte{1, 2, 3}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := appendReplySource(nil, tt.oob); !bytes.Equal(got, tt.want) {
				t.Fatalf("appendReplySource = %x, want %x", got, tt.want)
			}
		})
	}
	// Per query, into a buffer of the query's own: no allocation.
	buf := make([]byte, 0, oobSize)
	if n := testing.AllocsPerRun(100, func() { buf = appendReplySource(buf[:0], linkLocal) }); n != 0 {
		t.Fatalf("%v allocations per query", n)
	}
}

// FuzzReplySource reads control messages, which come from the kernel but are
// parsed by hand: whatever the bytes, no panic, and a result is a well-formed
// control message of its own.
func FuzzReplySource(f *testing.F) {
	f.Add(unix.PktInfo4(&unix.Inet4Pktinfo{Addr: [4]byte{192, 0, 2, 2}}))
	f.Add(unix.PktInfo6(&unix.Inet6Pktinfo{Addr: [16]byte{0x20, 0x01, 15: 1}}))
	f.Fuzz(func(t *testing.T, oob []byte) {
		out := appendReplySource(nil, oob)
		if out == nil {
			return
		}
		if _, _, _, _, ok := nextCmsg(out); !ok {
			t.Fatalf("appendReplySource built an unreadable control message %x", out)
		}
	})
}
