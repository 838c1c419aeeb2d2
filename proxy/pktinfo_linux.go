package proxy

import (
	"encoding/binary"
	"net"

	"golang.org/x/sys/unix"
)

// enablePktinfo asks the kernel to report each datagram's destination
// address. A dual-stack socket takes both options: IPv4 datagrams on it
// carry IP_PKTINFO, IPv6 ones IPV6_PKTINFO. It reports whether either took.
func enablePktinfo(pc *net.UDPConn) bool {
	rc, err := pc.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	_ = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1) == nil {
			ok = true
		}
		if unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1) == nil {
			ok = true
		}
	})
	return ok
}

// replySource turns the control messages received with a query into the one
// that sends the reply from the query's destination address, or nil when
// they name none. An IPv4 query on a dual-stack socket brings both kinds;
// the IPv4 one is used, which Linux honours on an IPv6 socket too.
func replySource(oob []byte) []byte {
	var dst6 [16]byte
	var ifIndex6 uint32
	have6 := false
	for len(oob) >= unix.SizeofCmsghdr {
		level, typ, data, rest, ok := nextCmsg(oob)
		if !ok {
			break
		}
		oob = rest
		switch {
		case level == unix.IPPROTO_IP && typ == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo: ifindex, spec_dst, then addr, the
			// destination in the datagram's header.
			dst := [4]byte(data[8:12])
			if dst != [4]byte{} {
				return unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: dst})
			}
		case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			dst6, ifIndex6, have6 = [16]byte(data[:16]), binary.NativeEndian.Uint32(data[16:20]), true
		}
	}
	ip := net.IP(dst6[:])
	if !have6 || ip.IsUnspecified() || ip.To4() != nil {
		return nil
	}
	info := unix.Inet6Pktinfo{Addr: dst6}
	if ip.IsLinkLocalUnicast() {
		info.Ifindex = ifIndex6 // a link-local source is only valid on its link
	}
	return unix.PktInfo6(&info)
}

// nextCmsg splits the first control message off oob: struct cmsghdr is the
// length (a size_t), the level and the type, then the data, padded to the
// alignment of a size_t. It reads the bytes as they are, with no pointer
// conversion, so a short or odd buffer is refused rather than trusted.
func nextCmsg(oob []byte) (level, typ int, data, rest []byte, ok bool) {
	var n uint64
	if unix.SizeofCmsghdr == 16 {
		n = binary.NativeEndian.Uint64(oob)
	} else {
		n = uint64(binary.NativeEndian.Uint32(oob))
	}
	hdr := unix.CmsgLen(0)
	if n < uint64(hdr) || n > uint64(len(oob)) {
		return 0, 0, nil, nil, false
	}
	level = int(int32(binary.NativeEndian.Uint32(oob[unix.SizeofCmsghdr-8:])))
	typ = int(int32(binary.NativeEndian.Uint32(oob[unix.SizeofCmsghdr-4:])))
	next := min(unix.CmsgSpace(int(n)-hdr), len(oob))
	return level, typ, oob[hdr:n], oob[next:], true
}
