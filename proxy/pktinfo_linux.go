package proxy

import (
	"encoding/binary"
	"net"
	"slices"

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

// appendReplySource appends to dst the control message that sends the
// reply from the query's destination address, found in the control messages
// oob received with the query, and returns dst unchanged when they name
// none. An IPv4 query on a dual-stack socket brings both kinds; the IPv4 one
// is used, which Linux honours on an IPv6 socket too. It does not allocate
// when dst has room for a control message (oobSize bytes).
func appendReplySource(dst, oob []byte) []byte {
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
			// destination in the datagram's header. The reply's
			// in_pktinfo names it as spec_dst, with no ifindex.
			if [4]byte(data[8:12]) != [4]byte{} {
				var info [unix.SizeofInet4Pktinfo]byte
				copy(info[4:8], data[8:12])
				return appendCmsg(dst, unix.IPPROTO_IP, unix.IP_PKTINFO, info[:])
			}
		case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			dst6, ifIndex6, have6 = [16]byte(data[:16]), binary.NativeEndian.Uint32(data[16:20]), true
		}
	}
	ip := net.IP(dst6[:])
	if !have6 || ip.IsUnspecified() || ip.To4() != nil {
		return dst
	}
	// struct in6_pktinfo: the address, then the interface index, which a
	// link-local source needs, being only valid on its link.
	var info [unix.SizeofInet6Pktinfo]byte
	copy(info[:16], dst6[:])
	if ip.IsLinkLocalUnicast() {
		binary.NativeEndian.PutUint32(info[16:], ifIndex6)
	}
	return appendCmsg(dst, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, info[:])
}

// appendCmsg appends one control message: the header nextCmsg reads, then
// data, padded to the alignment of a size_t.
func appendCmsg(dst []byte, level, typ int32, data []byte) []byte {
	start := len(dst)
	dst = slices.Grow(dst, unix.CmsgSpace(len(data)))[:start+unix.CmsgSpace(len(data))]
	m := dst[start:]
	clear(m)
	if unix.SizeofCmsghdr == 16 {
		binary.NativeEndian.PutUint64(m, uint64(unix.CmsgLen(len(data))))
	} else {
		binary.NativeEndian.PutUint32(m, uint32(unix.CmsgLen(len(data))))
	}
	binary.NativeEndian.PutUint32(m[unix.SizeofCmsghdr-8:], uint32(level))
	binary.NativeEndian.PutUint32(m[unix.SizeofCmsghdr-4:], uint32(typ))
	copy(m[unix.CmsgLen(0):], data)
	return dst
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
