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
// ends each query's call by ID. Each call watches the connection for its
// own query (see call).
type conn struct {
	p   *Pool
	raw net.Conn
	tc  *tls.Conn

	// Guarded by p.mu.
	inflight  int       // slots reserved for calls
	idleSince time.Time // when inflight last fell to zero

	// dead is set as the connection starts to end, so that the pool stops
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
	strikes int    // mismatched answers, weighted; see strikeLocked
	wbuf    []byte // framed queries waiting to be written
	spare   []byte // the previous write's buffer, for reuse
	writing bool   // a goroutine is in flushLocked
	ended   bool
}

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

// startLocked runs the reader. The caller holds p.mu, under which the
// connection joined the pool.
func (c *conn) startLocked() {
	c.p.wg.Add(1)
	go c.readLoop()
}

func (c *conn) now() int64 { return int64(time.Since(c.epoch)) }

// since returns the time elapsed from t, a value of c.now().
func (c *conn) since(t int64) time.Duration { return time.Duration(c.now() - t) }

// readSince reports whether the connection has read a frame since t, a
// value of c.now().
func (c *conn) readSince(t int64) bool { return c.progress.Load() > t }

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

// unlockAndWrite lets c.mu go, which the caller holds, and writes every
// queued query, including those queued by others while it writes, unless
// another goroutine is writing already, which then takes them too.
// Whoever finds no write under way does the writing, so an idle connection
// sends a query with no hand-off to another goroutine, and a busy one sends
// all that queued during a write in one TLS write.
func (c *conn) unlockAndWrite() {
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
		msg, err := readFrame(r, c.p.room)
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
		if cl != nil && !cl.answered && !dnsmsg.AnswerMatches(c.sentLocked(cl), msg) {
			// Not the answer to what was asked under this ID: never
			// handed on. The query stays pending for its own answer,
			// and its timer resends it if none comes.
			retire := c.strikeLocked()
			var asked []byte
			if c.p.debug {
				asked = dnsmsg.FirstQuestion(c.sentLocked(cl))
			}
			c.mu.Unlock()
			c.mismatched(asked, msg, retire)
			if retire {
				c.shut(CloseError, errMismatch)
				return
			}
			continue
		}
		delete(c.pending, id)
		if c.strikes > 0 {
			c.strikes--
		}
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
			if cl.nids > 1 {
				c.forgetLocked(cl) // the other copy of a query sent twice
			}
			c.mu.Unlock()
			cl.end(result{msg: msg}, false)
		}
	}
}

// strikeWeight and maxStrikes retire a connection whose answers keep failing
// to match their queries: a mismatch adds strikeWeight, a good answer takes
// one away, and maxStrikes retires it. So four mismatches in a row retire
// it, and so does a steady share of more than one answer in seventeen; a
// stray one, such as a very late answer to an ID since reused, does not.
const (
	strikeWeight = 16
	maxStrikes   = 4 * strikeWeight
)

// strikeLocked counts a mismatched answer and reports whether the
// connection has earned retirement. The caller holds c.mu.
func (c *conn) strikeLocked() bool {
	c.strikes += strikeWeight
	return c.strikes >= maxStrikes
}

// sentLocked returns the query as cl sent it, to check answers against.
// The caller holds c.mu and cl has not ended.
func (c *conn) sentLocked(cl *call) []byte {
	if cl == probeCall {
		return c.p.probe
	}
	return cl.query
}

// mismatched reports an answer dropped for not answering asked, the
// question of the query pending under its ID (read only when logging at
// debug level).
func (c *conn) mismatched(asked, msg []byte, retire bool) {
	c.p.obs.Mismatched()
	if c.p.debug {
		c.p.log.Debug("upstream answer does not match its query: dropped",
			"id", dnsmsg.ID(msg), "asked", dnsmsg.QuestionString(asked),
			"answered", dnsmsg.QuestionString(dnsmsg.FirstQuestion(msg)),
			"qr", dnsmsg.IsResponse(msg), "retire_connection", retire)
	}
}

// readFrame reads one length-prefixed message (RFC 1035 §4.2.2) into a new
// slice that the caller owns, with room bytes of spare capacity. The length
// is read byte by byte: an array handed to io.ReadFull would escape and cost
// an allocation per answer.
func readFrame(r *bufio.Reader, room int) ([]byte, error) {
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
	n := int(hi)<<8 | int(lo)
	msg := make([]byte, n, n+room)
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
// errConnLost, so that it goes elsewhere; then closeSocket closes it.
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
	var ending []*call
	for _, cl := range c.pending {
		if cl != probeCall && !cl.answered {
			cl.answered = true
			ending = append(ending, cl)
		}
	}
	c.pending = nil
	c.mu.Unlock()

	c.p.remove(c)
	for _, cl := range ending {
		cl.end(result{err: tell}, false)
	}
	c.closeSocket(reason, err, "upstream connection closed")
}

// closeSocket closes the connection's socket and reports why, logging msg
// at debug level. A polite close (idle, shutdown) sends a TLS close_notify,
// bounded in time; a broken one just drops the socket, which might
// otherwise block on a peer that no longer reads.
func (c *conn) closeSocket(reason CloseReason, err error, msg string) {
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
		c.p.log.Debug(msg, "reason", string(reason), "err", err.Error())
	} else {
		c.p.log.Debug(msg, "reason", string(reason))
	}
}
