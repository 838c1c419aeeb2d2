package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
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

// serveTCPConn reads framed queries and starts each on the resolver; each
// answer is written as soon as it is ready, in whatever order that is (RFC
// 7766 §6.2.1.1), by the goroutine that got it, through the connection's
// replyWriter, which never waits on the client. No goroutine waits for a
// query; only a zone transfer, which streams, gets one of its own.
func (s *Server) serveTCPConn(c net.Conn) {
	defer s.untrack(c)
	defer c.Close()
	client := remoteAddr(c)
	w := newReplyWriter(c, s.cfg.TCPIdleTimeout)
	defer w.waitWritten() // the last replies leave before the close
	slots := make(chan struct{}, s.cfg.TCPMaxInFlight)
	var queries sync.WaitGroup
	defer queries.Wait() // answer what was asked before closing

	r := bufio.NewReaderSize(c, tcpReadBuffer)
	for {
		if err := w.waitRoom(); err != nil {
			return // the client took no reply for TCPIdleTimeout: gone
		}
		if err := c.SetReadDeadline(time.Now().Add(s.cfg.TCPIdleTimeout)); err != nil {
			return
		}
		q := tcpQueries.Get().(*tcpQuery)
		msg, err := readQueryFrame(r, q.msg)
		arrived := time.Now()
		if msg != nil {
			q.msg = msg // the buffer, grown or not, stays with q
		}
		switch {
		case errors.Is(err, errBadFrame):
			putTCPQuery(q)
			s.obs.Dropped(TCP, DropBadFrame)
			return
		case errors.Is(err, errTooLarge):
			// msg is the header alone: enough for a reply that says so.
			w.send(s.refuse(client, msg, dnsmsg.RcodeFormErr, arrived))
			putTCPQuery(q)
			continue
		case err != nil:
			putTCPQuery(q)
			return // EOF, idle timeout or shutdown
		case !s.mem.take(len(msg) + tcpQueryExtra):
			s.obs.Dropped(TCP, DropOverload)
			w.send(s.refuse(client, msg, dnsmsg.RcodeRefused, arrived))
			putTCPQuery(q)
			continue
		}
		slots <- struct{}{}
		queries.Add(1)
		q.s, q.w, q.client, q.arrived, q.slots, q.queries = s, w, client, arrived, slots, &queries
		s.startTCP(q)
	}
}

// tcpQuery is one query read from a client's TCP connection, on its way
// through; it is the query's Finisher.
type tcpQuery struct {
	s        *Server
	w        *replyWriter
	client   netip.Addr
	msg      []byte
	arrived  time.Time
	deadline time.Time
	parsed   dnsmsg.Query
	slots    <-chan struct{}
	queries  *sync.WaitGroup
}

var _ Finisher = (*tcpQuery)(nil)

// startTCP answers at once a query that goes no further than check, passes
// a zone transfer on in a goroutine of its own, and starts any other on the
// resolver, to be answered through Resolved.
func (s *Server) startTCP(q *tcpQuery) {
	if reply, done := s.check(TCP, q.client, q.msg, q.arrived, &q.parsed); done {
		if reply != nil {
			q.w.send(reply)
		}
		q.release()
		return
	}
	if dnsmsg.IsTransfer(&q.parsed) {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.transfer(q.w, q.client, &q.parsed, q.msg, q.arrived)
			q.release()
		}()
		return
	}
	q.deadline = q.arrived.Add(s.cfg.QueryTimeout)
	s.cfg.Resolver.Start(q.msg, q.deadline, q)
}

// Resolved implements [Finisher]: it queues the reply for the client.
func (q *tcpQuery) Resolved(answer []byte, from fmt.Stringer, err error) {
	q.w.send(q.s.finish(TCP, q.client, &q.parsed, len(q.msg), q.arrived, q.deadline, answer, from, err))
	q.release()
}

// release ends q's stay in the server: its slot, its charge on the memory
// budget, its count among its connection's queries, its buffer.
func (q *tcpQuery) release() {
	q.s.mem.give(len(q.msg) + tcpQueryExtra)
	<-q.slots
	q.queries.Done()
	putTCPQuery(q)
}

// tcpQueries holds TCP queries and their buffers for reuse, as udpQueries
// does for datagrams.
var tcpQueries = sync.Pool{New: func() any { return &tcpQuery{msg: make([]byte, 0, queryCap)} }}

// putTCPQuery recycles q, unless a large query grew its buffer past the
// usual size, so that a burst of large queries leaves nothing behind.
func putTCPQuery(q *tcpQuery) {
	msg := q.msg
	*q = tcpQuery{msg: msg[:0]}
	if cap(msg) <= queryCap {
		tcpQueries.Put(q)
	}
}

// transfer passes a zone transfer on, on an upstream connection of its own,
// every message of the answer as it comes, until the transfer ends, within
// TransferTimeout and QueryTimeout per message. A transfer that fails
// before its first message gets SERVFAIL; one that fails later has its
// client connection closed, so that the client cannot take the part it got
// for a whole transfer.
func (s *Server) transfer(w *replyWriter, client netip.Addr, q *dnsmsg.Query, msg []byte, arrived time.Time) {
	if s.xfr == nil {
		w.send(s.reply(TCP, client, q, nil, dnsmsg.ReplyEDE(q, dnsmsg.RcodeNotImp, dnsmsg.EDETransferNotSupported), arrived, len(msg)))
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
		// Each message waits for the one before to leave: a client that
		// reads slowly slows the transfer rather than filling memory.
		w.send(m)
		return w.waitWritten()
	})
	switch {
	case first == nil:
		if err == nil {
			err = errNoTransferAnswer // a Transferer that handed nothing on
		}
		w.send(s.finish(TCP, client, q, len(msg), arrived, deadline, nil, from, err))
	case err != nil:
		s.obs.Failed(TCP, FailUpstream)
		if s.debug {
			s.log.Debug("zone transfer broken off", "client", client, "question", dnsmsg.QuestionString(q.Question),
				"upstream", upstreamName(from), "err", err.Error())
		}
		w.close()
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
		q.UDPSize, q.OPTTTL, q.EDNS = dnsmsg.MalformedEDNS(msg)
	}
	why := dnsmsg.EDEOverloaded
	switch {
	case !s.allowed(client):
		s.obs.Refused(TCP)
		rcode, why = dnsmsg.RcodeRefused, dnsmsg.EDEProhibited
	case rcode == dnsmsg.RcodeFormErr:
		s.obs.Malformed(TCP)
		why = dnsmsg.EDEMalformed
	}
	return s.reply(TCP, client, &q, nil, dnsmsg.ReplyEDE(&q, rcode, why), arrived, len(msg))
}

var (
	errNoTransferAnswer = errors.New("proxy: zone transfer ended with no message")
	errBadFrame         = errors.New("proxy: frame shorter than a DNS header")
	errTooLarge         = errors.New("proxy: query larger than MaxQuerySize")
)

// readQueryFrame reads one length-prefixed message (RFC 1035 §4.2.2) into
// dst, grown if it is too small, and returns it. A length too small for a
// DNS header is a broken stream. A message over MaxQuerySize is read off
// the stream without being kept, and only its header is returned, with
// errTooLarge. The length is read byte by byte: an array handed to
// io.ReadFull would escape and cost an allocation per query.
func readQueryFrame(r *bufio.Reader, dst []byte) ([]byte, error) {
	hi, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	lo, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	n := int(hi)<<8 | int(lo)
	if n < dnsmsg.HeaderLen {
		return nil, errBadFrame
	}
	keep := min(n, MaxQuerySize)
	if n > MaxQuerySize {
		keep = dnsmsg.HeaderLen
	}
	msg := slices.Grow(dst[:0], keep)[:keep]
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

func remoteAddr(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr()
	}
	return netip.Addr{}
}
