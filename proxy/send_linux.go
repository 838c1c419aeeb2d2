package proxy

import (
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peer is a query's client address as recvmmsg wrote it, with what a raw
// sendmsg of the reply needs, kept in the pooled query so that a reply
// allocates nothing.
type peer struct {
	name    unix.RawSockaddrInet6 // room for either family
	namelen uint32                // 0: not read by recvmmsg
	hdr     unix.Msghdr
	iov     unix.Iovec
	errno   syscall.Errno
	sendF   func(fd uintptr) bool // p.sendmsg, made once per pooled query
}

// send writes reply to q's client, from the query's destination address on
// a wildcard listener, with a raw sendmsg inside a RawConn callback: an
// ordinary send goes through the runtime's entersyscall and, after an idle
// spell, wakes Go's system monitor (see upstream's rawTCP for why that
// matters). The socket is non-blocking, so the call never blocks; when its
// buffer is full, the poller waits.
func (l *udpListener) send(q *udpQuery, reply []byte) error {
	p := &q.peer
	if p.namelen == 0 || l.rc == nil {
		return l.write(reply, q.replyOOB, q.client)
	}
	if p.sendF == nil {
		p.sendF = p.sendmsg
	}
	p.iov.Base = &reply[0]
	p.iov.SetLen(len(reply))
	p.hdr.Name = (*byte)(unsafe.Pointer(&p.name))
	p.hdr.Namelen = p.namelen
	p.hdr.Iov = &p.iov
	p.hdr.SetIovlen(1)
	p.hdr.Control = nil
	p.hdr.SetControllen(0)
	if len(q.replyOOB) > 0 {
		p.hdr.Control = &q.replyOOB[0]
		p.hdr.SetControllen(len(q.replyOOB))
	}
	p.errno = 0
	err := l.rc.Write(p.sendF)
	p.iov.Base = nil // the reply is not the pooled query's to keep
	if err == nil && p.errno != 0 {
		err = os.NewSyscallError("sendmsg", p.errno)
	}
	return err
}

// sendmsg is send's callback: false asks the poller to wait.
func (p *peer) sendmsg(fd uintptr) bool {
	for {
		_, _, e := unix.RawSyscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&p.hdr)), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		switch e {
		case 0:
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		p.errno = e
		return true
	}
}
