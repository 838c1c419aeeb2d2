package proxy

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// replyWriter writes framed replies to one client TCP connection from any
// goroutine, without ever waiting on the client: an upstream connection's
// reader hands replies on through it, and a client that reads slowly must
// not stall the queries of others. A reply that the socket takes at once
// leaves from the calling goroutine; the rest is queued for a writer
// goroutine of the connection's own, which runs only while something is
// queued and waits for the client with a write deadline.
type replyWriter struct {
	c       net.Conn
	rc      syscall.RawConn // c's; nil: every reply goes through the queue
	timeout time.Duration

	mu      sync.Mutex
	written sync.Cond // signalled as the writer goroutine stops
	queued  []byte    // frames waiting for the writer goroutine
	spare   []byte    // its last buffer, for reuse
	writing bool      // the writer goroutine runs
	err     error     // the write error that broke the connection
	raw     rawWrite  // for tryWrite
	hdr     [2]byte   // the frame's length, kept here so that it does not escape
}

var errWriterClosed = errors.New("proxy: client connection closed")

// maxQueuedReplies is how many bytes of replies may wait for a client before
// its connection's reader stops reading queries: a client that sends and
// never reads would otherwise have the proxy hold every answer it asked
// for. A query's slot is freed once its reply is queued, so this, not
// DOTPROXY_CLIENT_TCP_MAX_INFLIGHT, is what bounds those replies.
const maxQueuedReplies = 16 << 10

func newReplyWriter(c net.Conn, timeout time.Duration) *replyWriter {
	w := &replyWriter{c: c, timeout: timeout}
	w.written.L = &w.mu
	if sc, ok := c.(syscall.Conn); ok {
		w.rc, _ = sc.SyscallConn()
	}
	return w
}

// send queues msg as one frame, or writes it at once when nothing is
// queued and the socket takes it whole. It never blocks on the client.
func (w *replyWriter) send(msg []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return
	}
	hdr := w.hdr[:]
	binary.BigEndian.PutUint16(hdr, uint16(len(msg)))
	if !w.writing && len(w.queued) == 0 && w.rc != nil {
		n := w.tryWrite(hdr, msg)
		if n == len(hdr)+len(msg) {
			return
		}
		// Part or none of it left: the rest goes first in the queue.
		if n < len(hdr) {
			w.queued = append(w.queued, hdr[n:]...)
			n = len(hdr)
		}
		w.queued = append(w.queued, msg[n-len(hdr):]...)
	} else {
		w.queued = append(append(w.queued, hdr...), msg...)
	}
	if !w.writing {
		w.writing = true
		go w.drain()
	}
}

// drain writes what is queued until nothing is, waiting for the client up
// to the write deadline; a client that takes nothing in that time is gone,
// and its connection is closed.
func (w *replyWriter) drain() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.queued) > 0 && w.err == nil {
		buf := w.queued
		w.queued = w.spare[:0]
		w.mu.Unlock()
		err := w.c.SetWriteDeadline(time.Now().Add(w.timeout))
		if err == nil {
			_, err = w.c.Write(buf)
		}
		w.mu.Lock()
		w.spare = buf
		if err != nil {
			w.err = err
			w.c.Close()
		}
		w.written.Broadcast() // room, for waitRoom
	}
	w.writing = false
	w.written.Broadcast()
}

// hasRoomLocked reports whether the replies waiting for the client leave
// room for more queries to be read. w.mu must be held.
func (w *replyWriter) hasRoomLocked() bool {
	return len(w.queued) <= maxQueuedReplies || w.err != nil
}

// waitRoom waits until the replies waiting for the client are few enough
// that another query may be read (see maxQueuedReplies), and returns the
// error that broke the connection, if one did.
func (w *replyWriter) waitRoom() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for !w.hasRoomLocked() {
		w.written.Wait()
	}
	return w.err
}

// waitWritten waits until every reply queued so far has left, and returns
// the error that broke the connection, if one did.
func (w *replyWriter) waitWritten() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.writing {
		w.written.Wait()
	}
	return w.err
}

// close closes the connection: no more replies leave.
func (w *replyWriter) close() {
	w.mu.Lock()
	if w.err == nil {
		w.err = errWriterClosed
	}
	w.mu.Unlock()
	w.c.Close()
}
