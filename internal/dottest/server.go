package dottest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Options shape a Server's behaviour. The zero value answers every query in
// order, at once, with DefaultHandler.
type Options struct {
	// Addr is the address to listen on; default 127.0.0.1:0.
	Addr string
	// Cert is the server certificate; default a leaf for 127.0.0.1, ::1,
	// localhost and dns.test issued by the server's own CA.
	Cert *tls.Certificate
	// Handler builds the answer to a query; nil means DefaultHandler.
	// Returning nil sends nothing for that query.
	Handler func(q *dns.Msg) *dns.Msg
	// Delay, when set, holds each answer back for the duration it returns.
	Delay func(q *dns.Msg) time.Duration
	// Hold, when set, is called before each answer and may block it, for
	// tests that release answers on an event rather than after a time.
	Hold func(q *dns.Msg)
	// Concurrent answers each query in its own goroutine, so that answers
	// leave in the order their delays end rather than the order queries came.
	Concurrent bool
	// Reverse, when above 1, collects that many queries on a connection
	// before answering them all in reverse order.
	Reverse int
	// IdleClose closes a connection that has been idle this long.
	IdleClose time.Duration
	// CloseAfter closes a connection after answering this many queries on it.
	CloseAfter int
	// Silent reports, for the n-th accepted connection (from 0), whether the
	// server reads its queries but never answers and never closes it.
	Silent func(conn int) bool
	// Echo answers each query with its own bytes, QR set, without parsing
	// it: a server as cheap as can be, for benchmarks of the client side.
	Echo bool
	// ResetMidAnswer reports, for the n-th connection, whether the server
	// writes half of its first answer and then resets the connection.
	ResetMidAnswer func(conn int) bool
	// ResetOn reports, for each query, whether the server writes half of
	// its answer and then resets the connection.
	ResetOn func(q *dns.Msg) bool
	// SwapIDs reports, for the n-th connection, whether the server holds its
	// answers in pairs and sends each with the other's ID: a resolver that
	// mixes up its in-flight queries.
	SwapIDs func(conn int) bool
	// Tamper, when set, is called with the n-th connection's index and
	// each answer before it is sent, and may change it: another name or
	// type, QR unset.
	Tamper func(conn int, a *dns.Msg)
	// Stream, when set and returning messages, answers a query with them in
	// order, as a zone transfer is answered; a nil entry closes the
	// connection at that point.
	Stream func(q *dns.Msg) []*dns.Msg
	// Inspect, when set, is called with the bytes of each query as they
	// arrived (no length prefix), before they are parsed.
	Inspect func(raw []byte)
}

// Server is a DNS-over-TLS server on loopback. Its methods are safe for
// concurrent use.
type Server struct {
	// Addr is the host:port the server listens on.
	Addr string
	// CA issued the default certificate; trust CA.Pool to verify it.
	CA *CA

	opts    Options
	tls     *tls.Config // one for all connections, so that sessions resume
	ln      net.Listener
	queries atomic.Int64
	accepts atomic.Int64
	open    atomic.Int64

	// accepted and closed receive the index of each connection when it
	// starts and when it ends.
	accepted chan int
	closed   chan int

	mu    sync.Mutex
	raw   bytes.Buffer
	conns map[net.Conn]struct{}
	done  bool
	wg    sync.WaitGroup
}

// Start runs a server with opts until the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := &Server{
		opts:     opts,
		accepted: make(chan int, 4096),
		closed:   make(chan int, 4096),
		conns:    map[net.Conn]struct{}{},
	}
	if s.opts.Addr == "" {
		s.opts.Addr = "127.0.0.1:0"
	}
	if s.opts.Handler == nil {
		s.opts.Handler = DefaultHandler
	}
	s.CA = NewCA(tb)
	if s.opts.Cert == nil {
		c := s.CA.Leaf(tb, "127.0.0.1", "::1", "localhost", "dns.test")
		s.opts.Cert = &c
	}
	s.tls = &tls.Config{
		Certificates: []tls.Certificate{*s.opts.Cert},
		NextProtos:   []string{"dot"},
		MinVersion:   tls.VersionTLS12,
	}
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		tb.Fatal(err)
	}
	s.ln = ln
	s.Addr = ln.Addr().String()
	s.wg.Add(1)
	go s.serve()
	tb.Cleanup(s.Close)
	return s
}

// Queries returns how many queries the server has read.
func (s *Server) Queries() int { return int(s.queries.Load()) }

// Accepted returns how many TCP connections the server has accepted.
func (s *Server) Accepted() int { return int(s.accepts.Load()) }

// Open returns how many connections are open now.
func (s *Server) Open() int { return int(s.open.Load()) }

// ConnAccepted delivers the index of every connection the server accepts.
func (s *Server) ConnAccepted() <-chan int { return s.accepted }

// ConnClosed delivers the index of every connection that ends.
func (s *Server) ConnClosed() <-chan int { return s.closed }

// Raw returns every byte the server received from clients, before TLS
// decryption: what an eavesdropper on the wire would see.
func (s *Server) Raw() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.raw.Bytes())
}

// Close stops the server, closes its connections and waits for them.
func (s *Server) Close() {
	s.mu.Lock()
	s.done = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	s.wg.Wait()
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.done {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		idx := int(s.accepts.Add(1) - 1)
		s.open.Add(1)
		select {
		case s.accepted <- idx:
		default:
		}
		go s.serveConn(c.(*net.TCPConn), idx)
	}
}

// recorder copies what the client sends into the server's raw log.
type recorder struct {
	net.Conn
	s *Server
}

func (r recorder) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.s.mu.Lock()
	r.s.raw.Write(p[:n])
	r.s.mu.Unlock()
	return n, err
}

type serverConn struct {
	s    *Server
	idx  int
	tcp  *net.TCPConn
	tls  *tls.Conn
	wmu  sync.Mutex
	sent int
	wg   sync.WaitGroup
}

func (s *Server) serveConn(tcp *net.TCPConn, idx int) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, tcp)
		s.mu.Unlock()
		s.open.Add(-1)
		select {
		case s.closed <- idx:
		default:
		}
		s.wg.Done()
	}()
	defer tcp.Close()
	tc := tls.Server(recorder{tcp, s}, s.tls)
	tcp.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		return
	}
	tcp.SetDeadline(time.Time{})
	if s.opts.Echo {
		s.echo(tc)
		return
	}
	sc := &serverConn{s: s, idx: idx, tcp: tcp, tls: tc}
	defer sc.wg.Wait()
	silent := s.opts.Silent != nil && s.opts.Silent(idx)
	reset := s.opts.ResetMidAnswer != nil && s.opts.ResetMidAnswer(idx)
	swap := s.opts.SwapIDs != nil && s.opts.SwapIDs(idx)
	r := bufio.NewReader(tc)
	var batch []*dns.Msg
	for {
		if s.opts.IdleClose > 0 {
			tc.SetReadDeadline(time.Now().Add(s.opts.IdleClose))
		}
		q, err := readMsg(r, s.opts.Inspect)
		if err != nil {
			if q == nil {
				return // EOF, deadline or closed
			}
			continue // unparsable query: ignore it, as a lax server would
		}
		s.queries.Add(1)
		switch {
		case silent:
			continue
		case reset || (s.opts.ResetOn != nil && s.opts.ResetOn(q)):
			sc.resetMidAnswer(q)
			return
		case swap:
			batch = append(batch, q)
			if len(batch) == 2 {
				batch[0].Id, batch[1].Id = batch[1].Id, batch[0].Id
				sc.answer(batch[0])
				sc.answer(batch[1])
				batch = batch[:0]
			}
		case s.opts.Reverse > 1:
			batch = append(batch, q)
			if len(batch) == s.opts.Reverse {
				for i := len(batch) - 1; i >= 0; i-- {
					sc.answer(batch[i])
				}
				batch = batch[:0]
			}
		case s.opts.Concurrent:
			sc.wg.Add(1)
			go func() {
				defer sc.wg.Done()
				sc.answer(q)
			}()
		default:
			if !sc.answer(q) {
				return
			}
		}
	}
}

// readMsg reads one framed message. It returns (nil, err) when the stream
// ended, and (non-nil, err) when a frame arrived but did not parse.
func readMsg(r *bufio.Reader, inspect func([]byte)) (*dns.Msg, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	if inspect != nil {
		inspect(buf)
	}
	q := new(dns.Msg)
	return q, q.Unpack(buf)
}

// answer writes the answer to q; it reports false once the connection should
// end because CloseAfter was reached.
func (sc *serverConn) answer(q *dns.Msg) bool {
	if d := sc.s.opts.Delay; d != nil {
		time.Sleep(d(q))
	}
	if h := sc.s.opts.Hold; h != nil {
		h(q)
	}
	if st := sc.s.opts.Stream; st != nil {
		if msgs := st(q); msgs != nil {
			return sc.stream(msgs)
		}
	}
	a := sc.s.opts.Handler(q)
	if a == nil {
		return true
	}
	if t := sc.s.opts.Tamper; t != nil {
		t(sc.idx, a)
	}
	out, err := a.Pack()
	if err != nil {
		return true
	}
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	frame := binary.BigEndian.AppendUint16(nil, uint16(len(out)))
	sc.tls.Write(append(frame, out...))
	sc.sent++
	if n := sc.s.opts.CloseAfter; n > 0 && sc.sent >= n {
		sc.tls.Close()
		return false
	}
	return true
}

// stream writes msgs in order; a nil one closes the connection.
func (sc *serverConn) stream(msgs []*dns.Msg) bool {
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	for _, m := range msgs {
		if m == nil {
			sc.tls.Close()
			return false
		}
		out, err := m.Pack()
		if err != nil {
			return true
		}
		frame := binary.BigEndian.AppendUint16(nil, uint16(len(out)))
		if _, err := sc.tls.Write(append(frame, out...)); err != nil {
			return false
		}
	}
	return true
}

func (sc *serverConn) resetMidAnswer(q *dns.Msg) {
	out, err := sc.s.opts.Handler(q).Pack()
	if err != nil {
		return
	}
	frame := binary.BigEndian.AppendUint16(nil, uint16(len(out)))
	frame = append(frame, out...)
	sc.tls.Write(frame[:len(frame)/2])
	sc.tcp.SetLinger(0) // close with RST
}

// DefaultHandler answers every A query with 192.0.2.1, every query for a name
// under "big." with TXT records totalling about 3,000 bytes, and anything
// else with an empty NOERROR. It echoes an OPT record when the query has one.
func DefaultHandler(q *dns.Msg) *dns.Msg {
	a := new(dns.Msg)
	a.SetReply(q)
	if len(q.Question) == 1 {
		qq := q.Question[0]
		switch {
		case strings.HasPrefix(qq.Name, "big."):
			for i := 0; i < 12; i++ {
				a.Answer = append(a.Answer, &dns.TXT{
					Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
					Txt: []string{strings.Repeat(string(rune('a'+i)), 250)},
				})
			}
		case qq.Qtype == dns.TypeA:
			a.Answer = append(a.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.IPv4(192, 0, 2, 1),
			})
		}
	}
	if opt := q.IsEdns0(); opt != nil {
		a.SetEdns0(4096, opt.Do())
	}
	return a
}

// echo returns every frame with the QR bit set, flushing whenever no more
// input is buffered, so that answers to pipelined queries share records.
func (s *Server) echo(tc *tls.Conn) {
	r := bufio.NewReaderSize(tc, 32<<10)
	w := bufio.NewWriterSize(tc, 32<<10)
	buf := make([]byte, 65535+2)
	for {
		if _, err := io.ReadFull(r, buf[:2]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(buf))
		if _, err := io.ReadFull(r, buf[2:2+n]); err != nil {
			return
		}
		s.queries.Add(1)
		if n >= 3 {
			buf[4] |= 0x80
		}
		w.Write(buf[:2+n])
		if r.Buffered() == 0 && w.Flush() != nil {
			return
		}
	}
}

// Dial opens a DoT connection to the server, trusting its CA, closed when the
// test ends: the direct path that benchmarks compare the proxy with.
func (s *Server) Dial(tb testing.TB) *tls.Conn {
	tb.Helper()
	c, err := tls.Dial("tcp", s.Addr, &tls.Config{ServerName: "dns.test", RootCAs: s.CA.Pool})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// Exchange writes one framed query on c and reads one framed answer into
// ans, which must be large enough; it returns the answer's length.
func Exchange(c io.ReadWriter, query, ans []byte) (int, error) {
	frame := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(query)), uint16(len(query)))
	if _, err := c.Write(append(frame, query...)); err != nil {
		return 0, err
	}
	if _, err := io.ReadFull(c, ans[:2]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(ans))
	_, err := io.ReadFull(c, ans[:n])
	return n, err
}

// Await receives from ch, or fails the test after a bound generous enough
// for a loaded machine. what names the awaited event in the failure.
func Await[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		tb.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}
