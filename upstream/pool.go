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

// wireBufs holds the buffers queries are rewritten into, sized for the
// largest query a client can send over TCP, so that none is grown per query.
var wireBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, 512)
	return &b
}}

// maxAttempts bounds how many connections one Exchange tries when the ones
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

	ctx    context.Context // cancelled by Close: aborts dials
	cancel context.CancelFunc
	stop   chan struct{} // closed by Close: stops the janitor
	wg     sync.WaitGroup

	inflight atomic.Int64  // queries inside Exchange
	rewrite  bool          // cfg.Rewrite asks for a change to queries
	tick     time.Duration // how often the janitor looks at the connections

	mu       sync.Mutex // guards the fields below and conn.inflight/idleSince
	conns    []*conn    // open connections, oldest first
	dialing  *dialCall  // the connection being opened, if any
	wake     chan struct{}
	waiters  int // Exchange calls waiting on wake
	closed   bool
	failures int       // consecutive failed dials
	nextWarm time.Time // earliest next background dial after a failure
	lastErr  string    // last dial error logged, to log each cause once
}

// dialCall is one connection being opened; done is closed when it ends.
type dialCall struct {
	done chan struct{}
	err  error
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
	cfg.setDefaults()
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, err
	}
	p := &Pool{
		cfg:     cfg,
		obs:     cfg.Observer,
		log:     cfg.Logger.With("upstream", cfg.Addr),
		stop:    make(chan struct{}),
		wake:    make(chan struct{}),
		rewrite: cfg.Rewrite != (dnsmsg.Rewrite{}),
		tick:    max(min(cfg.IdleTimeout, cfg.AttemptTimeout)/4, 5*time.Millisecond),
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
// query's own ID. query is not modified and may be reused once Exchange
// returns. When the connection the query was on dies or falls silent before
// the answer, the query is sent again on another connection, as long as ctx
// allows.
func (p *Pool) Exchange(ctx context.Context, query []byte) ([]byte, error) {
	if len(query) < dnsmsg.HeaderLen {
		return nil, ErrShortQuery
	}
	p.inflight.Add(1)
	defer p.inflight.Add(-1)
	wire, added := query, false
	if p.rewrite {
		// Rewritten once, sent as is on every attempt.
		buf := wireBufs.Get().(*[]byte)
		*buf, added = dnsmsg.AppendUpstreamQuery((*buf)[:0], query, p.cfg.Rewrite)
		wire = *buf
		defer wireBufs.Put(buf)
	}
	var err error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			p.obs.Resent()
		}
		var c *conn
		if c, err = p.acquire(ctx); err != nil {
			return nil, err
		}
		var ans []byte
		ans, err = c.exchange(ctx, wire, added)
		p.release(c)
		if err == nil {
			return ans, nil
		}
		if !errors.Is(err, errConnLost) {
			return nil, err
		}
	}
	return nil, err
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
	p.wakeLocked()
	p.mu.Unlock()
	p.cancel()
	close(p.stop)
	for _, c := range conns {
		c.shut(CloseShutdown, nil)
	}
	p.wg.Wait()
	return nil
}

// acquire reserves a slot on a connection with room, opening a new
// connection when all are full and the cap allows.
func (p *Pool) acquire(ctx context.Context) (*conn, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		if c := p.pickLocked(); c != nil {
			if c.inflight == 0 {
				c.markBusy()
			}
			c.inflight++
			p.mu.Unlock()
			return c, nil
		}
		d := p.dialing
		if d == nil && len(p.conns) < p.cfg.MaxConns {
			d = p.dialLocked()
		}
		var dialDone chan struct{}
		if d != nil {
			dialDone = d.done
		}
		wake := p.wake
		p.waiters++
		p.mu.Unlock()

		var err error
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-wake:
		case <-dialDone:
			err = d.err
		}
		p.mu.Lock()
		p.waiters--
		p.mu.Unlock()
		if err == nil && d != nil {
			select {
			case <-d.done:
				err = d.err // the dial this query waited for failed
			default:
			}
		}
		if err != nil {
			return nil, err
		}
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
	if p.waiters > 0 {
		p.wakeLocked()
	}
	p.mu.Unlock()
}

// wakeLocked wakes every acquire waiting for room.
func (p *Pool) wakeLocked() {
	close(p.wake)
	p.wake = make(chan struct{})
}

// dialLocked starts opening a connection. The dial runs on the pool's own
// context, not a query's: a connection that a query gave up waiting for is
// still pooled for the next one.
func (p *Pool) dialLocked() *dialCall {
	d := &dialCall{done: make(chan struct{})}
	p.dialing = d
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		c, err := p.open()
		p.mu.Lock()
		p.dialing = nil
		if p.closed {
			err = ErrClosed // whatever the dial said, Close cut it short
		}
		if err == nil {
			p.conns = append(p.conns, c)
			c.start()
			p.failures = 0
		} else {
			p.failures++
			p.nextWarm = time.Now().Add(backoff(p.failures))
		}
		d.err = err
		close(d.done) // before the wake-up, so that waiters see the error
		p.wakeLocked()
		p.mu.Unlock()
		if err != nil && c != nil {
			c.shut(CloseShutdown, nil)
		}
		p.logDial(err)
	}()
	return d
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
		return nil, &DialError{Upstream: p.cfg.Addr, Stage: StageConnect, Err: err}
	}
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
		return nil, &DialError{Upstream: p.cfg.Addr, Stage: stage, Err: err}
	}
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
	p.wakeLocked()
	p.mu.Unlock()
}

// janitor closes idle connections, retires silent ones and keeps the warm
// ones open. It never does I/O while holding the lock.
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
	var idle, silent []*conn
	p.mu.Lock()
	for _, c := range p.conns {
		switch {
		case c.inflight == 0 && now.Sub(c.idleSince) >= c.idleLimit(p.tick):
			idle = append(idle, c)
		case c.inflight > 0 && c.owesSince(now) >= p.cfg.AttemptTimeout:
			silent = append(silent, c)
		}
	}
	open := len(p.conns) - len(idle) - len(silent)
	if !p.closed && p.dialing == nil && open < p.cfg.WarmConns && !now.Before(p.nextWarm) {
		p.dialLocked()
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.shut(CloseIdle, nil)
	}
	for _, c := range silent {
		p.log.Debug("retiring silent upstream connection")
		c.shut(CloseError, errSilent)
	}
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
