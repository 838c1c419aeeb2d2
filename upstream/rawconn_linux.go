package upstream

import (
	"io"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawTCP is a TCP connection whose reads and writes, once the TLS
// handshake is over, are raw system calls on its non-blocking socket, made
// inside syscall.RawConn callbacks, which let the poller wait when a call
// would block. An ordinary read or write goes through the runtime's
// entersyscall, and the first one after an idle spell wakes Go's system
// monitor thread: at a moderate query rate that is every query, and a third
// of dotproxy's CPU (docs/benchmarks.md, "The sysmon tax"). A raw call does
// not; it is safe only because the socket never blocks. Deadlines, Close
// and errors behave as the net.Conn's do. The handshake, not on the query
// path, keeps the ordinary calls, and TCP Fast Open with them.
//
// One goroutine reads at a time and one writes at a time (crypto/tls holds
// a lock for each), so each side keeps its own state, and the callbacks
// are method values made once: a call allocates nothing.
type rawTCP struct {
	*net.TCPConn
	rc syscall.RawConn
	on bool // raw calls in use: set once the handshake is done

	rbuf  []byte
	rn    int
	rerr  syscall.Errno
	readF func(fd uintptr) bool

	wbuf    []byte
	wn      int
	werr    syscall.Errno
	blocked bool                  // the last try found the socket's buffer full
	tryF    func(fd uintptr) bool // r.try
	writeF  func(fd uintptr) bool // r.write
	// wdl is the write deadline last set, armed on the socket only when a
	// write must wait: arming a runtime timer on every write wakes an idle
	// thread (runtime.wakeNetPoller), which costs as much as the system
	// monitor did.
	wdl time.Time
}

// wrapRaw returns c ready for raw calls after the handshake, or c itself
// where that cannot be.
func wrapRaw(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawTCP{TCPConn: tc, rc: rc}
	r.readF, r.tryF, r.writeF = r.read, r.try, r.write
	return r
}

// useRaw switches c to raw calls; it is called once the handshake is done,
// before the connection is shared.
func useRaw(c net.Conn) {
	if r, ok := c.(*rawTCP); ok {
		r.on = true
	}
}

func (r *rawTCP) Read(b []byte) (int, error) {
	if !r.on || len(b) == 0 {
		return r.TCPConn.Read(b)
	}
	r.rbuf, r.rn, r.rerr = b, 0, 0
	err := r.rc.Read(r.readF)
	n, errno := r.rn, r.rerr
	r.rbuf = nil
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, r.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// read is the callback of Read: false asks the poller to wait.
func (r *rawTCP) read(fd uintptr) bool {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&r.rbuf[0])), uintptr(len(r.rbuf)))
		switch e {
		case 0:
			r.rn = int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		r.rerr = e
		return true
	}
}

// SetDeadline sets the read deadline on the socket and keeps the write
// deadline for a write that must wait.
func (r *rawTCP) SetDeadline(t time.Time) error {
	if !r.on {
		return r.TCPConn.SetDeadline(t)
	}
	r.wdl = t
	return r.TCPConn.SetReadDeadline(t)
}

// SetWriteDeadline keeps t for a write that must wait.
func (r *rawTCP) SetWriteDeadline(t time.Time) error {
	if !r.on {
		return r.TCPConn.SetWriteDeadline(t)
	}
	r.wdl = t
	return nil
}

func (r *rawTCP) Write(b []byte) (int, error) {
	if !r.on || len(b) == 0 {
		return r.TCPConn.Write(b)
	}
	r.wbuf, r.wn, r.werr, r.blocked = b, 0, 0, false
	err := r.rc.Write(r.tryF)
	if err == nil && r.blocked && r.werr == 0 {
		// The socket's buffer is full: wait for room, until the
		// deadline, then disarm it, so that the next write that need
		// not wait is not failed by a deadline now past.
		if !r.wdl.IsZero() && !time.Now().Before(r.wdl) {
			err = os.ErrDeadlineExceeded
		} else if err = r.TCPConn.SetWriteDeadline(r.wdl); err == nil {
			err = r.rc.Write(r.writeF)
			if derr := r.TCPConn.SetWriteDeadline(time.Time{}); err == nil {
				err = derr
			}
		}
	}
	n, errno := r.wn, r.werr
	r.wbuf = nil
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return n, r.opError("write", errno)
	}
	return n, nil
}

// try is Write's first callback: it writes all it can and never waits,
// noting whether the socket's buffer filled.
func (r *rawTCP) try(fd uintptr) bool {
	r.blocked = !r.write(fd)
	return true
}

// write writes all it can, and asks the poller to wait (false) when the
// socket's buffer is full.
func (r *rawTCP) write(fd uintptr) bool {
	for r.wn < len(r.wbuf) {
		n, _, e := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&r.wbuf[r.wn])), uintptr(len(r.wbuf)-r.wn),
			unix.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			r.wn += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			r.werr = e
			return true
		}
	}
	return true
}

func (r *rawTCP) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: r.LocalAddr(), Addr: r.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}
