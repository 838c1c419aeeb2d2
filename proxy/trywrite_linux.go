package proxy

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawWrite is what replyWriter's non-blocking write keeps between calls, so
// that a reply written at once allocates nothing.
type rawWrite struct {
	iov  [2]unix.Iovec
	hdr  unix.Msghdr
	n    int
	call func(fd uintptr) bool // sendmsg, made once per writer
}

// tryWrite writes hdr and msg with one raw sendmsg that never waits, and
// returns how many bytes left: all, some, or none when the socket's buffer
// is full or the connection broke (the queued path then finds out). Like
// the UDP replies, it skips the runtime's entersyscall.
func (w *replyWriter) tryWrite(hdr, msg []byte) int {
	r := &w.raw
	if r.call == nil {
		r.call = r.sendmsg
	}
	r.iov[0].Base, r.iov[1].Base = &hdr[0], &msg[0]
	r.iov[0].SetLen(len(hdr))
	r.iov[1].SetLen(len(msg))
	r.hdr.Iov = &r.iov[0]
	r.hdr.SetIovlen(2)
	r.n = 0
	_ = w.rc.Write(r.call)
	r.iov[0].Base, r.iov[1].Base = nil, nil // neither is the writer's to keep
	return r.n
}

// sendmsg is tryWrite's callback; it always reports done, since a reply
// that cannot leave now is queued rather than waited for.
func (r *rawWrite) sendmsg(fd uintptr) bool {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&r.hdr)), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		if e == unix.EINTR {
			continue
		}
		if e == 0 {
			r.n = int(n)
		}
		return true
	}
}
