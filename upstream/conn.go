package upstream

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

// readBufferSize holds many answers per read syscall under load.
const readBufferSize = 32 << 10

// maxPending bounds the IDs in use on one connection, resent copies and
// liveness probes included, below the 65536 a 16-bit ID allows, so that a
// free ID always exists.
const maxPending = 65535

// conn is one TLS connection carrying many queries at once. Queries are
// written by whichever caller finds no write under way, batching whatever is
// queued into a single TLS write, and answers are read by one goroutine that
// hands each to its caller by ID.
//
// Each query watches its own connection: a query unanswered for a quarter of
// an attempt timeout on a connection that has read nothing since it was sent
// has a probe query sent behind it; at half, a connection that still has
// read nothing is retired (ErrSilent), and a query that is unanswered while
// the connection answers others is sent once more.
type conn struct {
	p   *Pool
	raw net.Conn
	tc  *tls.Conn

	// Guarded by p.mu.
	inflight  int       // slots reserved by acquire
	idleSince time.Time // when inflight last fell to zero

	// dead is set as the connection starts to end, so that acquire stops
	// choosing it before it is out of the pool.
	dead atomic.Bool

	// progress is when the connection last read a frame, in nanoseconds
	// since epoch.
	progress atomic.Int64
	epoch    time.Time

	// keepalive is the idle timeout the resolver last advertised on this
	// connection (RFC 7828), in nanoseconds, or -1 while it has said none.
	keepalive atomic.Int64

	mu      sync.Mutex // guards the fields below
	pending map[uint16]*call
	nextID  uint16
	probing bool   // a liveness probe is in flight
	wbuf    []byte // framed queries waiting to be written
	spare   []byte // the previous write's buffer, for reuse
	writing bool   // a goroutine is in flushLocked
	ended   bool
}

// call is one query waiting for its answer. Calls are pooled: a call and
// its timer and channels are made once and reused by many queries.
type call struct {
	ch    chan result // capacity 1; receives exactly one result per use
	slot  chan slot   // capacity 1; hands a reserved slot to a waiter in acquire
	timer *time.Timer

	// Written under the mu of the conn the call is on. ids and nids are
	// written only by the query's own goroutine, which may read them
	// without the lock.
	answered bool      // a result was put into ch
	ids      [2]uint16 // the IDs the query is pending under
	nids     int
}

type result struct {
	msg []byte
	err error
}

// probeCall marks a liveness probe in conn.pending: its answer is read for
// the sign of life and handed to nobody.
var probeCall = &call{}

var callPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &call{ch: make(chan result, 1), slot: make(chan slot, 1), timer: t}
}}

func getCall() *call { return callPool.Get().(*call) }

// putCall recycles cl, which must hold no result and be on no connection.
func putCall(cl *call) {
	cl.timer.Stop()
	cl.answered = false
	cl.nids = 0
	callPool.Put(cl)
}

// arm sets cl's timer to fire after d. The timer is stopped or has fired
// and been drained; since Go 1.23 Reset discards any stale tick.
func (cl *call) arm(d time.Duration) { cl.timer.Reset(max(d, 0)) }

func newConn(p *Pool, raw net.Conn, tc *tls.Conn) *conn {
	c := &conn{
		p:         p,
		raw:       raw,
		tc:        tc,
		epoch:     time.Now(),
		idleSince: time.Now(),
		pending:   make(map[uint16]*call),
		nextID:    uint16(rand.Uint32()),
	}
	c.keepalive.Store(-1)
	return c
}

// idleLimit is how long the connection may stay idle before the pool closes
// it: the configured idle timeout, unless the resolver advertised its own
// (RFC 7828 §3.2.2), which is then what counts. The pool closes a quarter
// and one janitor tick early, so that its close comes before the resolver's
// and no query is written into a connection the resolver is closing.
func (c *conn) idleLimit(tick time.Duration) time.Duration {
	ka := c.keepalive.Load()
	if ka < 0 {
		return c.p.cfg.IdleTimeout
	}
	return max(time.Duration(ka)*3/4-tick, 0)
}

// start runs the reader. The caller holds p.mu.
func (c *conn) start() {
	c.p.wg.Add(1)
	go c.readLoop()
}

func (c *conn) now() int64 { return int64(time.Since(c.epoch)) }

// readSince reports whether the connection has read a frame since t, a
// value of c.now().
func (c *conn) readSince(t int64) bool { return c.progress.Load() > t }

// exchange sends one query on this connection and waits for its answer, a
// sign that the connection died (errConnLost, ErrSilent, ErrClosed), or the
// deadline. cl comes from getCall and goes back to the pool here.
//
// added reports that the query's OPT record was added by the rewrite, and so
// is taken out of the answer again.
func (c *conn) exchange(cl *call, query []byte, added bool, deadline time.Time) ([]byte, error) {
	clientID := dnsmsg.ID(query) // read now: query may be reused once we return
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		putCall(cl)
		return nil, errConnLost
	}
	c.enqueueLocked(cl, query)
	sentAt := c.now()
	c.flushLocked()

	sent := time.Now()
	attempt := c.p.cfg.AttemptTimeout
	// Checkpoints after sending: a quarter of an attempt timeout (probe a
	// connection that has read nothing since), a half (retire it if it
	// still has not, or else send the query once more), then the deadline.
	// Both come well before the attempt's share of the query's deadline
	// that balance gives, so that this cheaper recovery runs first.
	checkpoints := [...]time.Duration{attempt / 4, attempt / 2}
	stage := 0
	cl.arm(min(time.Until(deadline), checkpoints[0]))
	for {
		select {
		case r := <-cl.ch:
			return c.finish(cl, r, clientID, added, len(query), sent)
		case <-cl.timer.C:
		}
		now := time.Now()
		c.mu.Lock()
		if cl.answered {
			// The answer came as the timer fired.
			c.mu.Unlock()
			return c.finish(cl, <-cl.ch, clientID, added, len(query), sent)
		}
		var err error
		switch {
		case !now.Before(deadline) || stage >= len(checkpoints):
			err = ErrDeadline
		case stage == 0:
			if !c.readSince(sentAt) && !c.probing && !c.ended {
				c.probeLocked()
			}
		case stage == 1 && !c.readSince(sentAt):
			// Nothing read for half an attempt timeout, the probe
			// included: the connection is dead. shut hands every
			// pending query, this one too, ErrSilent.
			c.mu.Unlock()
			c.shut(CloseError, ErrSilent)
			continue
		case stage == 1:
			// The connection answers others: this query was lost, or
			// is slow. Ask again; either answer will do.
			if cl.nids < len(cl.ids) && len(c.pending) < maxPending && !c.ended {
				c.p.obs.Resent()
				c.enqueueLocked(cl, query)
				c.flushLocked()
				c.mu.Lock()
			}
		}
		if err != nil {
			c.forgetLocked(cl)
			c.mu.Unlock()
			putCall(cl)
			return nil, err
		}
		c.mu.Unlock()
		stage++
		next := time.Until(deadline)
		if stage < len(checkpoints) {
			next = min(next, checkpoints[stage]-time.Since(sent))
		}
		cl.arm(next)
	}
}

// finish completes an exchange that got its result.
func (c *conn) finish(cl *call, r result, clientID uint16, added bool, querySize int, sent time.Time) ([]byte, error) {
	// The reader took the answered ID out of pending, and shut all of
	// them: only the other copy of a query sent twice is left to forget.
	if cl.nids > 1 {
		c.mu.Lock()
		c.forgetLocked(cl)
		c.mu.Unlock()
	}
	putCall(cl)
	if r.err != nil {
		return nil, r.err
	}
	dnsmsg.SetID(r.msg, clientID)
	if c.p.rewrite {
		var ka time.Duration
		var ok bool
		if r.msg, ka, ok = dnsmsg.CleanAnswer(r.msg, added); ok {
			c.keepalive.Store(int64(ka))
		}
	}
	c.p.obs.Exchanged(time.Since(sent), querySize, len(r.msg))
	return r.msg, nil
}

// enqueueLocked gives query a fresh ID on this connection, registers cl
// under it and queues the framed query for writing. The caller holds c.mu.
func (c *conn) enqueueLocked(cl *call, query []byte) {
	id := c.nextFreeIDLocked()
	c.pending[id] = cl
	if cl != probeCall {
		cl.ids[cl.nids] = id
		cl.nids++
	}
	n := len(c.wbuf)
	c.wbuf = binary.BigEndian.AppendUint16(c.wbuf, uint16(len(query)))
	c.wbuf = append(c.wbuf, query...)
	dnsmsg.SetID(c.wbuf[n+2:], id)
}

// forgetLocked removes cl's IDs that are still pending, so that a late
// answer to them counts as unmatched. The caller holds c.mu.
func (c *conn) forgetLocked(cl *call) {
	for _, id := range cl.ids[:cl.nids] {
		if c.pending[id] == cl {
			delete(c.pending, id)
		}
	}
	cl.nids = 0
}

// probeLocked sends the pool's probe query on this connection, so that a
// connection with nothing else to answer shows whether it is alive. The
// caller holds c.mu, which is released and taken again.
func (c *conn) probeLocked() {
	c.probing = true
	c.enqueueLocked(probeCall, c.p.probe)
	c.flushLocked()
	c.mu.Lock()
}

// nextFreeIDLocked returns an ID not in flight on this connection. IDs run in
// sequence from a random start; maxPending < 65536 guarantees a free one.
func (c *conn) nextFreeIDLocked() uint16 {
	for {
		c.nextID++
		if _, busy := c.pending[c.nextID]; !busy {
			return c.nextID
		}
	}
}

// flushLocked writes every queued query, including those queued by others
// while it writes, unless another goroutine is writing already, which then
// takes them too. It is called with c.mu held and returns with it released.
// Whoever finds no write under way does the writing, so an idle connection
// sends a query with no hand-off to another goroutine, and a busy one sends
// all that queued during a write in one TLS write.
func (c *conn) flushLocked() {
	if c.writing {
		c.mu.Unlock()
		return
	}
	c.writing = true
	for len(c.wbuf) > 0 && !c.ended {
		buf := c.wbuf
		c.wbuf = c.spare[:0]
		c.mu.Unlock()
		err := c.tc.SetWriteDeadline(time.Now().Add(c.p.cfg.AttemptTimeout))
		if err == nil {
			_, err = c.tc.Write(buf)
		}
		if err != nil {
			c.mu.Lock()
			c.writing = false
			c.mu.Unlock()
			c.shut(closeReason(err), err)
			return
		}
		c.mu.Lock()
		c.spare = buf
	}
	c.writing = false
	c.mu.Unlock()
}

func (c *conn) readLoop() {
	defer c.p.wg.Done()
	r := bufio.NewReaderSize(c.tc, readBufferSize)
	for {
		msg, err := readFrame(r)
		if err != nil {
			c.shut(closeReason(err), err)
			return
		}
		c.progress.Store(c.now())
		if len(msg) < dnsmsg.HeaderLen {
			c.shut(CloseError, errShortAnswer)
			return
		}
		id := dnsmsg.ID(msg)
		c.mu.Lock()
		cl := c.pending[id]
		delete(c.pending, id)
		switch {
		case cl == nil:
			c.mu.Unlock()
			c.p.obs.Unmatched()
		case cl == probeCall:
			c.probing = false
			c.mu.Unlock()
		case cl.answered:
			// The other copy of a resent query was answered first.
			c.mu.Unlock()
		default:
			cl.answered = true
			cl.ch <- result{msg: msg} // never blocks: one result per use
			c.mu.Unlock()
		}
	}
}

// readFrame reads one length-prefixed message (RFC 1035 §4.2.2) into a new
// slice that the caller owns. The length is read byte by byte: an array
// handed to io.ReadFull would escape and cost an allocation per answer.
func readFrame(r *bufio.Reader) ([]byte, error) {
	hi, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	lo, err := r.ReadByte()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	msg := make([]byte, int(hi)<<8|int(lo))
	if _, err := io.ReadFull(r, msg); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return msg, nil
}

// closeReason tells a server that hung up from one that broke.
func closeReason(err error) CloseReason {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
		return CloseServerClosed
	}
	return CloseError
}

// shut ends the connection once: it is removed from the pool, its socket is
// closed, and every query still on it is told why: ErrSilent if the
// connection fell silent, ErrClosed if the pool is closing, and otherwise
// errConnLost, so that it goes elsewhere. A polite close (idle, shutdown)
// sends a TLS close_notify; a broken one just drops the socket, which might
// otherwise block on a peer that no longer reads.
func (c *conn) shut(reason CloseReason, err error) {
	c.dead.Store(true)
	tell := errConnLost
	switch {
	case errors.Is(err, ErrSilent):
		tell = ErrSilent
	case reason == CloseShutdown:
		tell = ErrClosed
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	for _, cl := range c.pending {
		if cl != probeCall && !cl.answered {
			cl.answered = true
			cl.ch <- result{err: tell} // never blocks: one result per use
		}
	}
	c.pending = nil
	c.mu.Unlock()

	c.p.remove(c)
	if reason == CloseIdle || reason == CloseShutdown {
		_ = c.raw.SetDeadline(time.Now().Add(100 * time.Millisecond))
		_ = c.tc.Close()
	} else {
		_ = c.raw.Close()
	}
	if reason == CloseError {
		c.p.obs.ConnFailed(StageIO)
	}
	c.p.obs.ConnClosed(reason)
	if err != nil {
		c.p.log.Debug("upstream connection closed", "reason", string(reason), "err", err.Error())
	} else {
		c.p.log.Debug("upstream connection closed", "reason", string(reason))
	}
}
