package proxy

import (
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchSize is how many datagrams one read takes at most. A read returns
// what has arrived, one datagram or many, and never waits for more: a lone
// query is not delayed, and a burst costs one system call per batch.
const batchSize = 32

// readSlot is the room for one datagram: a byte more than the largest query
// taken, so that a larger one shows as too large (the kernel drops the
// rest of it) without 64 KiB of buffer per slot.
const readSlot = MaxQuerySize + 1

// mmsghdr is struct mmsghdr: a msghdr and the length received. Go pads it
// as C does on both 32- and 64-bit platforms.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// batchReader reads datagrams with recvmmsg(2) into its queries and hands
// each batch on. Its buffers are its own and reused: each datagram is
// copied out into its query.
type batchReader struct {
	rc       syscall.RawConn
	wildcard bool
	qs       []*udpQuery // batchSize queries to read into, refilled by batch
	batch    func(n int) // takes qs[:n]
	stopping func() bool // ends serve after a batch
	hdrs     [batchSize]mmsghdr
	iovs     [batchSize]unix.Iovec
	names    [batchSize]unix.RawSockaddrInet6 // room for either family
	oobs     [batchSize][oobSize]byte
	buf      []byte // batchSize datagrams of readSlot bytes

	recvFn func(fd uintptr) bool // r.recv
	errno  syscall.Errno         // the last read's error
}

func newBatchReader(l *udpListener, qs []*udpQuery, batch func(n int), stopping func() bool) (*batchReader, error) {
	rc, err := l.pc.SyscallConn()
	if err != nil {
		return nil, err
	}
	// The pages of buf are touched only as far as datagrams fill them.
	r := &batchReader{rc: rc, wildcard: l.wildcard, qs: qs, batch: batch, stopping: stopping,
		buf: make([]byte, batchSize*readSlot)}
	r.recvFn = r.recv
	r.reset(batchSize)
	for i := range r.hdrs {
		r.iovs[i].Base = &r.buf[i*readSlot]
		r.iovs[i].SetLen(readSlot)
		h := &r.hdrs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		if r.wildcard {
			h.Control = &r.oobs[i][0]
		}
	}
	return r, nil
}

// serve reads datagrams, as many as have arrived at each read and never
// waiting for more, and hands each batch on, until a read fails (the
// socket closed, or its read deadline passed) or, after a batch, stopping
// reports true; then it returns the error, or nil.
func (r *batchReader) serve() error {
	r.errno = 0
	if err := r.rc.Read(r.recvFn); err != nil {
		return err
	}
	if r.errno != 0 {
		return &net.OpError{Op: "read", Net: "udp", Err: r.errno}
	}
	return nil
}

// recv runs inside RawConn.Read and reads and hands on batches for as long
// as the socket has datagrams. It returns false to wait until the socket is
// readable again: after EAGAIN, and also after a batch smaller than
// batchSize, which means that the read found the socket empty. In that case
// the datagram that comes next marks the socket readable, and
// RawConn.Read, which clears the mark only before its first call of recv,
// waits for it: one system call fewer per wake-up than reading once more
// to be told EAGAIN. It is a method value made once, so that a read
// allocates no closure.
func (r *batchReader) recv(fd uintptr) bool {
	for {
		// Raw: MSG_DONTWAIT never blocks, and a call through
		// entersyscall would wake Go's system monitor (see send).
		n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), batchSize,
			unix.MSG_DONTWAIT, 0, 0)
		switch {
		case e == unix.EAGAIN || e == unix.EWOULDBLOCK:
			return false
		case e != 0:
			r.errno = e
			return true
		}
		r.copyOut(int(n))
		r.reset(int(n))
		r.batch(int(n))
		switch {
		case r.stopping():
			return true
		case int(n) < batchSize:
			return false
		}
	}
}

// reset makes the first n headers, which a read filled in, ready for the
// next read; the kernel writes back only the headers of the datagrams it
// returns.
func (r *batchReader) reset(n int) {
	for i := range n {
		h := &r.hdrs[i].hdr
		h.Namelen = unix.SizeofSockaddrInet6
		if r.wildcard {
			h.SetControllen(oobSize)
		}
		h.Flags = 0
	}
}

// copyOut copies the n datagrams read into r.qs, with their clients and
// reply control messages.
func (r *batchReader) copyOut(n int) {
	for i := range n {
		h := &r.hdrs[i]
		q := r.qs[i]
		q.msg = append(q.msg[:0], r.buf[i*readSlot:i*readSlot+int(h.n)]...)
		q.client = sockaddrAddrPort(&r.names[i])
		q.peer.name, q.peer.namelen = r.names[i], h.hdr.Namelen
		q.replyOOB = q.replyBuf[:0]
		if r.wildcard {
			q.replyOOB = appendReplySource(q.replyOOB, r.oobs[i][:h.hdr.Controllen])
		}
	}
}

// sockaddrAddrPort reads the client's address that recvmmsg wrote. An IPv4
// client of a dual-stack socket comes as an IPv4-mapped IPv6 address, as
// from net.UDPConn.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), networkOrder(sa4.Port))
	case unix.AF_INET6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			// A link-local client: the reply needs the interface.
			a = a.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10))
		}
		return netip.AddrPortFrom(a, networkOrder(sa.Port))
	}
	return netip.AddrPort{}
}

// networkOrder reads a port as the kernel stores it, big-endian, whatever
// the host's order.
func networkOrder(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}
