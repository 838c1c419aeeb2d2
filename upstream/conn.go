package upstream

import (
	"bufio"
	"context"
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

// conn is one TLS connection carrying many queries at once. Queries are
// written by whichever caller finds no write under way, batching whatever is
// queued into a single TLS write, and answers are read by one goroutine that
// hands each to its caller by ID.
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

	// progress is when the connection last showed life (an answer read, or
	// a first query while it owed nothing), in nanoseconds since epoch.
	progress atomic.Int64
	epoch    time.Time

	// keepalive is the idle timeout the resolver last advertised on this
	// connection (RFC 7828), in nanoseconds, or -1 while it has said none.
	keepalive atomic.Int64

	done chan struct{} // closed when the connection ends

	mu      sync.Mutex // guards the fields below
	pending map[uint16]*call
	nextID  uint16
	wbuf    []byte // framed queries waiting to be written
	spare   []byte // the previous write's buffer, for reuse
	writing bool   // a goroutine is in flushLocked
	ended   bool
}

// call is one query waiting for its answer.
type call struct {
	ch chan result // capacity 1: the reader never blocks on a caller
}

type result struct {
	msg []byte
	err error
}

var callPool = sync.Pool{New: func() any { return &call{ch: make(chan result, 1)} }}

func newConn(p *Pool, raw net.Conn, tc *tls.Conn) *conn {
	c := &conn{
		p:         p,
		raw:       raw,
		tc:        tc,
		epoch:     time.Now(),
		idleSince: time.Now(),
		done:      make(chan struct{}),
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

// markBusy records that the connection starts to owe an answer. The caller
// holds p.mu and has just raised inflight from zero.
func (c *conn) markBusy() { c.progress.Store(c.now()) }

// owesSince returns how long a connection that owes answers has shown no
// life.
func (c *conn) owesSince(now time.Time) time.Duration {
	return time.Duration(int64(now.Sub(c.epoch)) - c.progress.Load())
}

// exchange sends one query on this connection and waits for its answer.
//
// added reports that the query's OPT record was added by the rewrite, and so
// is taken out of the answer again.
func (c *conn) exchange(ctx context.Context, query []byte, added bool) ([]byte, error) {
	clientID := dnsmsg.ID(query) // read now: query may be reused once we return
	cl := callPool.Get().(*call)
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		callPool.Put(cl)
		return nil, errConnLost
	}
	id := c.nextFreeIDLocked()
	c.pending[id] = cl
	n := len(c.wbuf)
	c.wbuf = binary.BigEndian.AppendUint16(c.wbuf, uint16(len(query)))
	c.wbuf = append(c.wbuf, query...)
	dnsmsg.SetID(c.wbuf[n+2:], id)
	if c.writing {
		c.mu.Unlock() // the goroutine writing now will take this query too
	} else {
		c.writing = true
		c.flushLocked()
	}

	sent := time.Now()
	select {
	case r := <-cl.ch:
		callPool.Put(cl)
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
		c.p.obs.Exchanged(time.Since(sent), len(query), len(r.msg))
		return r.msg, nil
	case <-ctx.Done():
		c.mu.Lock()
		mine := c.pending[id] == cl
		if mine {
			delete(c.pending, id)
		}
		c.mu.Unlock()
		if mine {
			callPool.Put(cl) // nobody else holds it; otherwise a result is on its way into it
		}
		return nil, ctx.Err()
	}
}

// nextFreeIDLocked returns an ID not in flight on this connection. IDs run in
// sequence from a random start; MaxInFlight < 65536 guarantees a free one.
func (c *conn) nextFreeIDLocked() uint16 {
	for {
		c.nextID++
		if _, busy := c.pending[c.nextID]; !busy {
			return c.nextID
		}
	}
}

// flushLocked writes every queued query, including those queued by others
// while it writes, then clears c.writing. It is called with c.mu held and
// returns with it released. Whoever finds no write under way does the
// writing, so an idle connection sends a query with no hand-off to another
// goroutine, and a busy one sends all that queued during a write in one TLS
// write.
func (c *conn) flushLocked() {
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
		c.mu.Unlock()
		if cl == nil {
			c.p.obs.Unmatched()
			continue
		}
		cl.ch <- result{msg: msg}
	}
}

// readFrame reads one length-prefixed message (RFC 1035 §4.2.2) into a new
// slice that the caller owns.
func readFrame(r io.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(hdr[:]))
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
// closed, and every query still on it is told to go elsewhere. A polite close
// (idle, shutdown) sends a TLS close_notify; a broken one just drops the
// socket, which might otherwise block on a peer that no longer reads.
func (c *conn) shut(reason CloseReason, err error) {
	c.dead.Store(true)
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()

	close(c.done)
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
	for _, cl := range pending {
		cl.ch <- result{err: errConnLost}
	}
	if err != nil {
		c.p.log.Debug("upstream connection closed", "reason", string(reason), "err", err.Error())
	}
}
