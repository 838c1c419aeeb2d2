package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

// udpListener is one UDP socket. On a wildcard address it learns each
// query's destination address from the kernel, so that the reply leaves from
// the address the client asked: on a host with several addresses the kernel
// would otherwise choose the source by route, and a client whose socket is
// connected to the address it queried would drop the reply.
type udpListener struct {
	pc       *net.UDPConn
	rc       syscall.RawConn // pc's, for the raw replies of send_linux.go
	wildcard bool
}

func newUDPListener(pc *net.UDPConn) *udpListener {
	l := &udpListener{pc: pc}
	l.rc, _ = pc.SyscallConn() // a UDPConn always has one
	if a, ok := pc.LocalAddr().(*net.UDPAddr); ok && a.IP.IsUnspecified() {
		l.wildcard = enablePktinfo(pc)
	}
	return l
}

// oobSize holds the IP_PKTINFO and the IPV6_PKTINFO that an IPv4 query on a
// dual-stack socket brings, with room to spare: a truncated buffer would drop
// the second.
const oobSize = 128

// write sends reply with Go's own calls, which send_linux.go's raw send
// falls back on, and which serve every other platform.
func (l *udpListener) write(reply, oob []byte, client netip.AddrPort) error {
	if len(oob) == 0 {
		_, err := l.pc.WriteToUDPAddrPort(reply, client)
		return err
	}
	_, _, err := l.pc.WriteMsgUDPAddrPort(reply, oob, client)
	return err
}

// udpQuery is one datagram on its way through: copied out of the
// listener's read buffer, handled and answered, then put back in udpQueries
// for the next. The copy is the query's own while the resolver reads it.
type udpQuery struct {
	msg      []byte // the query; its capacity is kept for the next
	client   netip.AddrPort
	arrived  time.Time
	replyOOB []byte // into replyBuf
	replyBuf [oobSize]byte
	peer     peer // the client's address as the kernel gave it, where the reply goes

	// Set as the query is started on the resolver, which answers it
	// through Resolved.
	s        *Server
	l        *udpListener
	slots    <-chan struct{}
	parsed   dnsmsg.Query
	deadline time.Time
}

// queryCap is a pooled query's capacity: the largest UDP payload that
// RFC 8467 and DNS Flag Day 2020 advise, which holds any usual query. A
// larger one grows its buffer once.
const queryCap = 1232

var udpQueries = sync.Pool{New: func() any {
	q := &udpQuery{msg: make([]byte, 0, queryCap)}
	q.replyOOB = q.replyBuf[:0]
	return q
}}

// putQuery recycles q, unless a large query grew its buffer: the pool keeps
// only buffers of the usual size, so that a burst of large queries leaves
// nothing behind.
func putQuery(q *udpQuery) {
	if cap(q.msg) <= queryCap {
		udpQueries.Put(q)
	}
}

// release ends q's stay in the server: its slot, its charge on the memory
// budget, its buffer.
func (s *Server) release(q *udpQuery, slots <-chan struct{}) {
	<-slots
	s.mem.give(len(q.msg))
	putQuery(q)
}

// serveUDP reads queries and starts each on the resolver, whose answer is
// written back by the goroutine that got it (see startUDP). Query buffers
// are reused, so that a query in steady state costs no goroutine start and
// no allocation.
func (s *Server) serveUDP(pc *net.UDPConn) {
	defer s.wg.Done()
	u := &udpLoop{
		s:     s,
		l:     newUDPListener(pc),
		slots: make(chan struct{}, s.cfg.UDPMaxInFlight),
		qs:    make([]*udpQuery, batchSize),
	}
	u.refill()
	defer func() {
		for _, q := range u.qs {
			putQuery(q)
		}
	}()
	r, err := newBatchReader(u.l, u.qs, u.batch, s.isStopping)
	if err != nil {
		s.log.Error("udp listener failed", "addr", pc.LocalAddr().String(), "err", err.Error())
		return
	}
	for {
		err := r.serve()
		if s.isStopping() || errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			s.log.Warn("udp read failed", "addr", pc.LocalAddr().String(), "err", err.Error())
		}
	}
}

// udpLoop is what a UDP listener's reader keeps: the queries being read
// into, and where each goes.
type udpLoop struct {
	s     *Server
	l     *udpListener
	slots chan struct{} // one per query answered at once
	qs    []*udpQuery   // the batch being read into, batchSize of them
}

// refill gives every slot of the batch a query to read into.
func (u *udpLoop) refill() {
	for i, q := range u.qs {
		if q == nil {
			u.qs[i] = udpQueries.Get().(*udpQuery)
		}
	}
}

// batch sends on the n queries just read into u.qs, then refills it.
func (u *udpLoop) batch(n int) {
	arrived := time.Now()
	// A burst leaves upstream in one write per connection, held
	// until the batch is through; a lone query is written at once.
	hold := n > 1
	held := false
	for i := range n {
		q := u.qs[i]
		u.qs[i] = nil
		q.arrived = arrived
		if reason, ok := u.s.admitUDP(q); !ok {
			u.s.obs.Dropped(UDP, reason)
			putQuery(q)
			continue
		}
		select {
		case u.slots <- struct{}{}:
		default:
			// Full: the answers that free a slot may be
			// waiting for the queries held.
			if held {
				u.s.cfg.Resolver.Flush()
				held = false
			}
			u.slots <- struct{}{}
		}
		held = u.s.startUDP(u.l, q, u.slots, hold) || held
	}
	if held {
		u.s.cfg.Resolver.Flush()
	}
	u.refill()
}

// admitUDP decides whether a datagram goes any further, and charges the
// memory budget for it if so; when not, it says why.
func (s *Server) admitUDP(q *udpQuery) (DropReason, bool) {
	switch {
	case len(q.msg) < dnsmsg.HeaderLen:
		return DropShort, false
	case len(q.msg) > MaxQuerySize:
		return DropTooLarge, false
	case !s.mem.take(len(q.msg)):
		return DropOverload, false
	}
	return "", true
}

// startUDP answers at once a query that goes no further than check, and
// sends any other to the resolver's Start, or with hold to its StartHeld,
// to be answered through Resolved, where its slot is freed. It reports
// whether it left a query held. Once the resolver has q, q may already be
// answered and reused: it is not touched again here.
//
// The listener's reader writes the query upstream itself, and the upstream
// connection's reader writes the reply, so that no goroutine is woken for
// the query in between.
func (s *Server) startUDP(l *udpListener, q *udpQuery, slots <-chan struct{}, hold bool) (held bool) {
	reply, done := s.check(UDP, q.client.Addr(), q.msg, q.arrived, &q.parsed)
	if done {
		if reply != nil {
			s.writeUDP(l, q, reply)
		}
		s.release(q, slots)
		return false
	}
	q.s, q.l, q.slots = s, l, slots
	q.deadline = q.arrived.Add(s.cfg.QueryTimeout)
	s.wg.Add(1)
	if hold {
		s.cfg.Resolver.StartHeld(q.msg, q.deadline, q)
		return true
	}
	s.cfg.Resolver.Start(q.msg, q.deadline, q)
	return false
}

var _ Finisher = (*udpQuery)(nil)

// Resolved implements [Finisher]: it writes the reply to a query that
// startUDP sent.
func (q *udpQuery) Resolved(answer []byte, from fmt.Stringer, err error) {
	s, slots := q.s, q.slots
	reply := s.finish(UDP, q.client.Addr(), &q.parsed, len(q.msg), q.arrived, q.deadline, answer, from, err)
	s.writeUDP(q.l, q, reply)
	s.release(q, slots)
	s.wg.Done()
}

func (s *Server) writeUDP(l *udpListener, q *udpQuery, reply []byte) {
	if err := l.send(q, reply); err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Debug("udp write failed", "client", q.client.String(), "err", err.Error())
	}
}
