package upstream

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/lmittmann/tint"
)

// wireBufs holds the buffers queries are rewritten into. 512 bytes hold any
// usual query once padded; a larger one grows its buffer, which putWire
// then lets go, so that a burst of large queries leaves nothing behind.
var wireBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, 512)
	return &b
}}

// maxPooledWire is the largest buffer putWire keeps.
const maxPooledWire = 1024

func putWire(buf *[]byte) {
	if cap(*buf) <= maxPooledWire {
		wireBufs.Put(buf)
	}
}

// maxAttempts bounds how many connections one query tries when the ones
// it was on die under it.
const maxAttempts = 3

// Pool multiplexes queries to one resolver over a few TLS connections. It is
// safe for concurrent use. Close releases it.
type Pool struct {
	cfg    Config
	tls    *tls.Config
	dialer net.Dialer
	obs    Observer
	log    *slog.Logger
	debug  bool // log at debug level: checked once, not per answer

	ctx    context.Context // cancelled by Close: aborts dials
	cancel context.CancelFunc
	stop   chan struct{} // closed by Close: stops the janitor
	wg     sync.WaitGroup

	inflight atomic.Int64  // queries started and not yet ended
	probe    []byte        // the liveness probe query, ID set per send
	rewrite  bool          // cfg.Rewrite asks for a change to queries
	room     int           // spare capacity of each answer's buffer, for CleanAnswer
	tick     time.Duration // how often the janitor looks at the connections

	// checkpoints are when, after a query is written, its call looks at
	// the connection: a quarter of an attempt timeout (probe a connection
	// that has read nothing since), a half (retire it if it still has not,
	// or else send the query once more). Both come well before the
	// attempt's share of the query's deadline that balance gives, so that
	// this cheaper recovery runs first.
	checkpoints [2]time.Duration

	// held is set when StartHeld has left a query unwritten, until Flush.
	held     atomic.Bool
	flushMu  sync.Mutex // serialises Flush, which owns flushing
	flushing []*conn

	mu       sync.Mutex // guards the fields below and conn.inflight/idleSince
	conns    []*conn    // open connections, oldest first
	dialing  bool       // a connection is being opened
	waitq    []*call    // queries waiting for a slot, first come first served
	closed   bool
	failures int       // consecutive failed dials
	nextWarm time.Time // earliest next background dial after a failure
	lastErr  string    // last dial error logged, to log each cause once

	transfers map[*conn]struct{} // connections of zone transfers under way
}

// Stats is a snapshot of a pool's state.
type Stats struct {
	// Open is the number of open connections.
	Open int
	// InFlight is the number of queries waiting for an answer.
	InFlight int
}

// New returns a pool for cfg and starts its background upkeep. It opens no
// connection before the first query unless cfg.WarmConns asks it to.
func New(cfg Config) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	probe, err := dnsmsg.NewQuery(0, cfg.ProbeName, dnsmsg.TypeNS)
	if err != nil {
		return nil, err
	}
	// Padded like any query, so that probes look like the rest.
	probe, _, _ = dnsmsg.AppendUpstreamQuery(nil, probe, cfg.Rewrite)
	p := &Pool{
		cfg:         cfg,
		obs:         cfg.Observer,
		log:         cfg.Logger.With("upstream", cfg.Addr),
		debug:       cfg.Logger.Enabled(context.Background(), slog.LevelDebug),
		stop:        make(chan struct{}),
		probe:       probe,
		rewrite:     cfg.Rewrite != (dnsmsg.Rewrite{}),
		room:        answerRoom(cfg.Rewrite),
		tick:        max(min(cfg.IdleTimeout, cfg.AttemptTimeout)/4, 5*time.Millisecond),
		checkpoints: [2]time.Duration{cfg.AttemptTimeout / 4, cfg.AttemptTimeout / 2},
		dialer: net.Dialer{
			Timeout:   cfg.ConnectTimeout,
			KeepAlive: 30 * time.Second,
			Resolver:  cfg.Resolver,
		},
	}
	if cfg.FastOpen {
		p.dialer.Control = fastOpenControl
	}
	p.tls = &tls.Config{
		ServerName:         cfg.ServerName,
		RootCAs:            cfg.RootCAs,
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"dot"},
		ClientSessionCache: tls.NewLRUClientSessionCache(cfg.MaxConns * 2),
	}
	if len(cfg.Pins) > 0 {
		pins := cfg.Pins
		p.tls.VerifyConnection = func(cs tls.ConnectionState) error { return checkPins(cs, pins) }
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.janitor()
	return p, nil
}

// String returns the upstream's address, which names it in logs and metrics.
func (p *Pool) String() string { return p.cfg.Addr }

// InFlight returns the number of queries waiting for this upstream.
func (p *Pool) InFlight() int { return int(p.inflight.Load()) }

// Stats returns the pool's current state.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	open := len(p.conns)
	p.mu.Unlock()
	return Stats{Open: open, InFlight: p.InFlight()}
}

// Exchange sends query to the resolver and returns its answer, carrying the
// query's own ID: Start, waited for. query is not modified and may be
// reused once Exchange returns.
func (p *Pool) Exchange(query []byte, deadline time.Time) ([]byte, error) {
	w := waiters.Get().(*waiter)
	p.Start(query, deadline, w)
	r := <-w.ch
	waiters.Put(w)
	return r.msg, r.err
}

// Start sends query to the resolver and returns at once; done is told the
// answer, carrying the query's own ID, or the error, exactly once, by
// whichever goroutine ends the query: the connection's reader, a timer, or
// this one before Start returns. query must stay unchanged until then. It
// is the only way a query enters the pool: it never declines, and when
// every connection is full the query waits in line, first come first
// served, for a slot that an answer frees or a new connection opens.
//
// The pool owns the recovery of a single query: when the connection it was
// on is closed or reset by the server, it is sent again on another
// connection; when it goes unanswered on a connection that answers others,
// it is sent once more on it. It fails with ErrSilent when its connection
// stops answering anything, a probe included (the upstream or the path to
// it is broken); with ErrDeadline at deadline (it reports Timeout: the
// query was slow or lost, the upstream is not broken); with a *DialError
// when no connection can be opened; with ErrShortQuery for a query shorter
// than a header; with dnsmsg.ErrBadClientSubnet or
// dnsmsg.ErrClientSubnetKept, before Start returns and without sending it
// anywhere, for a query whose client subnet Config.Rewrite must hide and
// cannot (a caller that answers such queries itself first, as the proxy
// does with dnsmsg.CheckClientSubnet, never sees these); and with ErrClosed
// once the pool is closed.
func (p *Pool) Start(query []byte, deadline time.Time, done Done) {
	p.start(query, deadline, done, false)
}

// StartHeld is Start, except that the query may wait in its connection's
// buffer until Flush, so that queries started together leave in one TLS
// write. The caller must call Flush before it waits for anything.
func (p *Pool) StartHeld(query []byte, deadline time.Time, done Done) {
	p.start(query, deadline, done, true)
}

// Flush writes the queries that StartHeld left waiting.
func (p *Pool) Flush() {
	if !p.held.Swap(false) {
		return
	}
	p.flushMu.Lock()
	defer p.flushMu.Unlock()
	p.mu.Lock()
	p.flushing = append(p.flushing[:0], p.conns...)
	p.mu.Unlock()
	for _, c := range p.flushing {
		c.mu.Lock()
		c.unlockAndWrite() // unless a write is under way, which then takes them
	}
	clear(p.flushing)
}

func (p *Pool) start(query []byte, deadline time.Time, done Done, hold bool) {
	if len(query) < dnsmsg.HeaderLen {
		done.ExchangeDone(nil, ErrShortQuery)
		return
	}
	// Rewritten once, sent as is on every attempt.
	wire, sent, buf, err := p.wire(query)
	if err != nil {
		done.ExchangeDone(nil, err) // sent nowhere: see Start
		return
	}
	p.inflight.Add(1)
	cl := newCall(p, query, wire, sent, deadline, done)
	cl.wireBuf = buf
	p.send(cl, hold)
}

// send gives cl a slot on a connection with room and writes it there, or
// with hold queues it for Flush; when none has room, cl waits in line for
// one (see handSlotsLocked), its timer armed for its deadline.
func (p *Pool) send(cl *call, hold bool) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		cl.end(result{err: ErrClosed}, false)
		return
	}
	c := p.pickLocked()
	if c == nil {
		cl.waiting = true
		p.waitq = append(p.waitq, cl)
		p.growLocked()
		cl.timer.Reset(max(time.Until(cl.deadline), 0))
		p.mu.Unlock()
		return
	}
	c.inflight++
	p.mu.Unlock()
	if hold {
		c.hold(cl)
		p.held.Store(true)
		return
	}
	c.send(cl)
}

// wire returns query as it goes to the resolver, and what the rewrite
// changed in it. A rewritten query is in buf, from wireBufs, for the caller
// to put back once no send can use it; buf is nil when the pool rewrites
// nothing and wire is query itself. An error (a client subnet the rewrite
// must hide and cannot) means the query must not be sent.
func (p *Pool) wire(query []byte) (wire []byte, sent dnsmsg.Sent, buf *[]byte, err error) {
	if !p.rewrite {
		return query, sent, nil, nil
	}
	buf = wireBufs.Get().(*[]byte)
	*buf, sent, err = dnsmsg.AppendUpstreamQuery((*buf)[:0], query, p.cfg.Rewrite)
	if err != nil {
		putWire(buf)
		return nil, sent, nil, err
	}
	return *buf, sent, buf, nil
}

// answerRoom is the spare capacity each answer is read into, so that
// CleanAnswer puts the client's subnet back without a second allocation.
func answerRoom(r dnsmsg.Rewrite) int {
	if r.HideClientSubnet {
		return dnsmsg.MaxCleanGrowth
	}
	return 0
}

// Close closes every connection, failing the queries still on them, and
// waits for the pool's goroutines. It is safe to call more than once.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	conns := p.conns
	p.conns = nil
	waiting := p.takeWaitersLocked()
	for c := range p.transfers {
		c.raw.Close() // the transfer's read fails, and it ends itself
	}
	p.mu.Unlock()
	endAll(waiting, ErrClosed)
	p.cancel()
	close(p.stop)
	for _, c := range conns {
		c.shut(CloseShutdown, nil)
	}
	p.wg.Wait()
	return nil
}

// unqueueLocked takes cl out of the wait queue and reports whether it was
// there.
func (p *Pool) unqueueLocked(cl *call) bool {
	for i, x := range p.waitq {
		if x == cl {
			p.waitq = append(p.waitq[:i], p.waitq[i+1:]...)
			cl.waiting = false
			return true
		}
	}
	return false
}

// handSlotsLocked gives the waiting queries, first come first served, the
// free slots of the open connections, then opens another connection if some
// are still waiting and the cap allows. It returns the calls handed a slot,
// linked through next, for the caller to send once it has let p.mu go.
func (p *Pool) handSlotsLocked() (handed *call) {
	var last *call
	for len(p.waitq) > 0 {
		c := p.pickLocked()
		if c == nil {
			break
		}
		cl := p.waitq[0]
		n := copy(p.waitq, p.waitq[1:])
		p.waitq[n] = nil
		p.waitq = p.waitq[:n]
		cl.waiting = false
		if !cl.timer.Stop() {
			continue // its deadline has come: its timer ends it
		}
		c.inflight++
		cl.c = c
		if last == nil {
			handed = cl
		} else {
			last.next = cl
		}
		last = cl
	}
	p.growLocked()
	return handed
}

// sendHanded sends the calls that handSlotsLocked handed a slot.
func sendHanded(cl *call) {
	for cl != nil {
		next := cl.next
		cl.next = nil
		cl.c.send(cl)
		cl = next
	}
}

// takeWaitersLocked empties the wait queue and returns the calls that the
// caller must end, linked through next; a call whose deadline timer has
// fired is left to it.
func (p *Pool) takeWaitersLocked() (ending *call) {
	for i, cl := range p.waitq {
		p.waitq[i] = nil
		cl.waiting = false
		if cl.timer.Stop() {
			cl.next = ending
			ending = cl
		}
	}
	p.waitq = p.waitq[:0]
	return ending
}

// endAll ends the calls of a list from takeWaitersLocked with err.
func endAll(cl *call, err error) {
	for cl != nil {
		next := cl.next
		cl.next = nil
		cl.end(result{err: err}, false)
		cl = next
	}
}

// growLocked starts a dial when queries wait and no connection is being
// opened already.
func (p *Pool) growLocked() {
	if len(p.waitq) > 0 && !p.dialing && !p.closed && len(p.conns) < p.cfg.MaxConns {
		p.dialLocked()
	}
}

// pickLocked returns the oldest connection with room. Filling the oldest
// first keeps the number of busy connections as small as the load allows, so
// that the others go idle and close.
func (p *Pool) pickLocked() *conn {
	for _, c := range p.conns {
		if c.inflight < p.cfg.MaxInFlight && !c.dead.Load() {
			return c
		}
	}
	return nil
}

func (p *Pool) release(c *conn) {
	p.mu.Lock()
	c.inflight--
	if c.inflight == 0 {
		c.idleSince = time.Now()
	}
	var handed *call
	if len(p.waitq) > 0 {
		handed = p.handSlotsLocked()
	}
	p.mu.Unlock()
	sendHanded(handed)
}

// dialLocked starts opening a connection. The dial runs on the pool's own
// context, not a query's: a connection that a query gave up waiting for is
// still pooled for the next one.
func (p *Pool) dialLocked() {
	p.dialing = true
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		c, err := p.open()
		var handed, failed *call
		p.mu.Lock()
		p.dialing = false
		if p.closed {
			err = ErrClosed // whatever the dial said, Close cut it short
		}
		if err == nil {
			p.conns = append(p.conns, c)
			c.startLocked()
			p.failures = 0
			handed = p.handSlotsLocked()
		} else {
			p.failures++
			p.nextWarm = time.Now().Add(backoff(p.failures))
			// The queries waiting for room fail now and go elsewhere,
			// rather than wait on an upstream that cannot be reached.
			failed = p.takeWaitersLocked()
		}
		p.mu.Unlock()
		sendHanded(handed)
		endAll(failed, err)
		if err != nil && c != nil {
			c.shut(CloseShutdown, nil)
		}
		p.logDial(err)
	}()
}

// backoff spaces background dials after failures: 250 ms doubling to 30 s.
func backoff(failures int) time.Duration {
	d := 250 * time.Millisecond
	for i := 1; i < failures && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

// logDial logs a dial failure once per distinct cause, and the recovery.
func (p *Pool) logDial(err error) {
	p.mu.Lock()
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	changed := msg != p.lastErr
	p.lastErr = msg
	p.mu.Unlock()
	switch {
	case !changed || errors.Is(err, ErrClosed) || errors.Is(err, context.Canceled):
	case err != nil:
		p.log.Warn("cannot connect to upstream", tint.Err(err))
	default:
		p.log.Info("upstream reachable again")
	}
}

// open connects and completes the TLS handshake.
func (p *Pool) open() (*conn, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.ConnectTimeout)
	raw, err := p.dialer.DialContext(ctx, "tcp", p.cfg.Addr)
	cancel()
	if p.ctx.Err() != nil {
		if raw != nil {
			raw.Close()
		}
		return nil, ErrClosed
	}
	if err != nil {
		p.obs.ConnFailed(StageConnect)
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && p.cfg.ResolverName != "" {
			// The Go resolver names the server of resolv.conf, which a
			// custom Resolver may never have asked.
			dnsErr.Server = p.cfg.ResolverName
		}
		return nil, &DialError{Upstream: p.cfg.Addr, ServerName: p.cfg.ServerName, Stage: StageConnect, Err: err}
	}
	raw = wrapRaw(raw)
	tc := tls.Client(raw, p.tls)
	ctx, cancel = context.WithTimeout(p.ctx, p.cfg.HandshakeTimeout)
	err = tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		raw.Close()
		if p.ctx.Err() != nil {
			return nil, ErrClosed
		}
		stage := handshakeStage(err)
		p.obs.ConnFailed(stage)
		return nil, &DialError{Upstream: p.cfg.Addr, Remote: raw.RemoteAddr().String(),
			ServerName: p.cfg.ServerName, Stage: stage, Err: err}
	}
	useRaw(raw) // the query path's reads and writes skip entersyscall
	p.obs.ConnOpened(time.Since(start), tc.ConnectionState().DidResume)
	return newConn(p, raw, tc), nil
}

// remove forgets a connection that has ended.
func (p *Pool) remove(c *conn) {
	p.mu.Lock()
	for i, x := range p.conns {
		if x == c {
			p.conns = append(p.conns[:i], p.conns[i+1:]...)
			break
		}
	}
	p.growLocked()
	p.mu.Unlock()
}

// janitor closes idle connections and keeps the warm ones open. It never
// does I/O while holding the lock. Silence is not its business: each query
// watches its own connection (see conn).
func (p *Pool) janitor() {
	defer p.wg.Done()
	t := time.NewTicker(p.tick)
	defer t.Stop()
	for {
		p.upkeep(time.Now())
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
	}
}

func (p *Pool) upkeep(now time.Time) {
	var idle []*conn
	open := 0
	p.mu.Lock()
	for _, c := range p.conns {
		retired := c.dead.Load()
		if c.inflight == 0 && (retired || now.Sub(c.idleSince) >= c.idleLimit(p.tick)) {
			idle = append(idle, c)
		} else if !retired {
			open++
		}
	}
	if !p.closed && !p.dialing && open < p.cfg.WarmConns && !now.Before(p.nextWarm) {
		p.dialLocked()
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.shut(CloseIdle, nil)
	}
}

// Recycle retires every open connection: no query is sent on them any more,
// each closes once the queries it carries are answered, and the next
// connections are dialed afresh, looking the upstream's host name up again.
// It returns how many connections it retired.
func (p *Pool) Recycle() int {
	p.mu.Lock()
	for _, c := range p.conns {
		c.dead.Store(true)
	}
	n := len(p.conns)
	p.mu.Unlock()
	p.upkeep(time.Now()) // closes the idle ones now, and dials the warm ones
	return n
}

// checkPins accepts a verified chain that holds a certificate whose public
// key matches a pin.
func checkPins(cs tls.ConnectionState, pins [][sha256.Size]byte) error {
	for _, chain := range cs.VerifiedChains {
		for _, cert := range chain {
			if pinned(cert, pins) {
				return nil
			}
		}
	}
	return ErrPinMismatch
}

func pinned(cert *x509.Certificate, pins [][sha256.Size]byte) bool {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	for _, p := range pins {
		if p == sum {
			return true
		}
	}
	return false
}
