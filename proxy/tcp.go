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

	r := bufio.NewReaderSize(c, tcpReadBuffer)
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
		case !s.mem.take(len(msg) + tcpQueryExtra):
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
			defer s.mem.give(len(msg) + tcpQueryExtra)
			s.answerTCP(w, client, msg, arrived)
		}()
	}
}

// answerTCP answers one query read from a client's TCP connection: a zone
// transfer message by message, any other query with its one answer.
func (s *Server) answerTCP(w *frameWriter, client netip.Addr, msg []byte, arrived time.Time) {
	var q dnsmsg.Query
	if reply, done := s.check(TCP, client, msg, arrived, &q); done {
		if reply != nil {
			w.write(reply)
		}
		return
	}
	if dnsmsg.IsTransfer(&q) {
		s.transfer(w, client, &q, msg, arrived)
		return
	}
	w.write(s.forward(TCP, client, &q, msg, arrived))
}

// transfer passes a zone transfer on, on an upstream connection of its own,
// every message of the answer as it comes, until the transfer ends, within
// TransferTimeout and QueryTimeout per message. A transfer that fails
// before its first message gets SERVFAIL; one that fails later has its
// client connection closed, so that the client cannot take the part it got
// for a whole transfer.
func (s *Server) transfer(w *frameWriter, client netip.Addr, q *dnsmsg.Query, msg []byte, arrived time.Time) {
	if s.xfr == nil {
		w.write(s.reply(TCP, client, q, nil, dnsmsg.Reply(q, dnsmsg.RcodeNotImp), arrived, len(msg)))
		return
	}
	deadline := arrived.Add(s.cfg.TransferTimeout)
	var first []byte
	size := 0
	from, err := s.xfr.Transfer(msg, deadline, s.cfg.QueryTimeout, func(m []byte) error {
		if first == nil {
			first = m
		}
		size += len(m)
		return w.writeFrame(m)
	})
	switch {
	case first == nil:
		if err == nil {
			err = errNoTransferAnswer // a Transferer that handed nothing on
		}
		w.write(s.finish(TCP, client, q, len(msg), arrived, deadline, nil, nil, err))
	case err != nil:
		s.obs.Failed(TCP, FailUpstream)
		if s.debug {
			s.log.Debug("zone transfer broken off", "client", client, "question", dnsmsg.QuestionString(q.Question),
				"upstream", upstreamName(from), "err", err.Error())
		}
		w.c.Close()
	default:
		rcode := dnsmsg.Rcode(first)
		s.obs.Answered(TCP, from, rcode, time.Since(arrived), len(msg), size)
		if s.debug {
			s.log.Debug("zone transfer", "client", client, "question", dnsmsg.QuestionString(q.Question),
				"rcode", dnsmsg.RcodeName(rcode), "upstream", upstreamName(from), "rtt", time.Since(arrived), "size", size)
		}
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
	errNoTransferAnswer = errors.New("proxy: zone transfer ended with no message")
	errBadFrame         = errors.New("proxy: frame shorter than a DNS header")
	errTooLarge         = errors.New("proxy: query larger than MaxQuerySize")
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

func (w *frameWriter) write(msg []byte) { _ = w.writeFrame(msg) }

// writeFrame writes msg as one frame and says whether it left.
func (w *frameWriter) writeFrame(msg []byte) error {
	var hdr [2]byte
	binary.BigEndian.PutUint16(hdr[:], uint16(len(msg)))
	bufs := net.Buffers{hdr[:], msg}
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.c.SetWriteDeadline(time.Now().Add(w.timeout))
	if err == nil {
		_, err = bufs.WriteTo(w.c)
	}
	if err != nil {
		w.c.Close() // a client that cannot take its answers is gone
	}
	return err
}

func remoteAddr(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr()
	}
	return netip.Addr{}
}
