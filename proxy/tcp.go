package proxy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

func (s *Server) serveTCP(ln net.Listener) {
	defer s.wg.Done()
	open := make(chan struct{}, s.cfg.TCPMaxConns)
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isStopping() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, most likely: let others close.
			s.log.Warn("tcp accept failed", "addr", ln.Addr().String(), "err", err.Error())
			time.Sleep(50 * time.Millisecond)
			continue
		}
		select {
		case open <- struct{}{}:
		default:
			s.obs.Dropped(TCP, DropConnLimit)
			c.Close()
			continue
		}
		if !s.track(c) {
			<-open
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-open }()
			s.serveTCPConn(c)
		}()
	}
}

// track registers a client connection so that Shutdown can reach it; it
// refuses once shutdown has begun.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// serveTCPConn reads framed queries and answers each as soon as its answer
// is ready, in whatever order that is (RFC 7766 §6.2.1.1).
func (s *Server) serveTCPConn(c net.Conn) {
	defer s.untrack(c)
	defer c.Close()
	client := remoteAddr(c)
	w := &frameWriter{c: c, timeout: s.cfg.TCPIdleTimeout}
	slots := make(chan struct{}, s.cfg.TCPMaxInFlight)
	var queries sync.WaitGroup
	defer queries.Wait() // answer what was asked before closing

	r := bufio.NewReader(c)
	for {
		if err := c.SetReadDeadline(time.Now().Add(s.cfg.TCPIdleTimeout)); err != nil {
			return
		}
		msg, err := readQueryFrame(r)
		arrived := time.Now()
		switch {
		case errors.Is(err, errBadFrame):
			s.obs.Dropped(TCP, DropBadFrame)
			return
		case errors.Is(err, errTooLarge):
			// msg is the header alone: enough for a reply that says so.
			w.write(s.refuse(client, msg, dnsmsg.RcodeFormErr, arrived))
			continue
		case err != nil:
			return // EOF, idle timeout or shutdown
		case !s.mem.take(len(msg)):
			s.obs.Dropped(TCP, DropOverload)
			w.write(s.refuse(client, msg, dnsmsg.RcodeRefused, arrived))
			continue
		}
		slots <- struct{}{}
		queries.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer queries.Done()
			defer func() { <-slots }()
			defer s.mem.give(len(msg))
			if reply := s.handle(TCP, client, msg, arrived); reply != nil {
				w.write(reply)
			}
		}()
	}
}

// refuse answers a TCP query that goes no further, with rcode: one too large to read (FORMERR, counted as malformed), or one
// that arrived while the memory for queries in flight was full (REFUSED).
// A client outside the access list gets REFUSED in either case.
func (s *Server) refuse(client netip.Addr, msg []byte, rcode int, arrived time.Time) []byte {
	q, err := dnsmsg.ParseQuery(msg)
	if err != nil {
		q = dnsmsg.Query{ID: q.ID, Flags: q.Flags} // echo none of what did not parse
	}
	switch {
	case !s.allowed(client):
		s.obs.Refused(TCP)
		rcode = dnsmsg.RcodeRefused
	case rcode == dnsmsg.RcodeFormErr:
		s.obs.Malformed(TCP)
	}
	return s.reply(TCP, client, &q, nil, dnsmsg.Reply(&q, rcode), arrived, len(msg))
}

var (
	errBadFrame = errors.New("proxy: frame shorter than a DNS header")
	errTooLarge = errors.New("proxy: query larger than MaxQuerySize")
)

// readQueryFrame reads one length-prefixed message (RFC 1035 §4.2.2). A
// length too small for a DNS header is a broken stream. A message over
// MaxQuerySize is read off the stream without being kept, and only its
// header is returned, with errTooLarge.
func readQueryFrame(r *bufio.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n < dnsmsg.HeaderLen {
		return nil, errBadFrame
	}
	msg := make([]byte, min(n, MaxQuerySize))
	if n > MaxQuerySize {
		msg = msg[:dnsmsg.HeaderLen]
	}
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	if n > MaxQuerySize {
		if _, err := r.Discard(n - len(msg)); err != nil {
			return nil, err
		}
		return msg, errTooLarge
	}
	return msg, nil
}

// frameWriter writes whole frames from concurrent goroutines.
type frameWriter struct {
	c       net.Conn
	timeout time.Duration

	mu sync.Mutex // one frame at a time
}

func (w *frameWriter) write(msg []byte) {
	var hdr [2]byte
	binary.BigEndian.PutUint16(hdr[:], uint16(len(msg)))
	bufs := net.Buffers{hdr[:], msg}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.c.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return
	}
	if _, err := bufs.WriteTo(w.c); err != nil {
		w.c.Close() // a client that cannot take its answers is gone
	}
}

func remoteAddr(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr()
	}
	return netip.Addr{}
}
