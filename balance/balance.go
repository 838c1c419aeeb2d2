package balance

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

// Upstream is one resolver as balance sees it. *upstream.Pool implements
// it. Its methods must be safe for concurrent use.
type Upstream interface {
	// Start sends query and returns at once; done is told the answer,
	// with the query's ID, or the error, exactly once, by deadline, from
	// whichever goroutine ends the query (possibly this one, before Start
	// returns). Start never declines: an upstream with no room queues. It
	// must not modify query, which stays unchanged until done is told.
	// The upstream owns the recovery of a single query (sending it again
	// when a connection dies or a query is lost), within
	// Config.AttemptTimeout, the least time balance gives an attempt. An
	// error that reports Timeout (on the error itself, not a cause it
	// wraps) means that this query was slow or lost, not that the
	// upstream is broken: it does not mark the upstream down. Any other
	// error does.
	Start(query []byte, deadline time.Time, done Done)
	// StartHeld is Start, except that the query may wait unwritten until
	// Flush.
	StartHeld(query []byte, deadline time.Time, done Done)
	// Flush writes the queries that StartHeld left waiting.
	Flush()
	// InFlight reports the queries waiting for an answer from the
	// upstream: the one count that least_outstanding compares.
	InFlight() int
}

// Done receives the end of one attempt, as an Upstream tells it; the same
// type as upstream.Done.
type Done = interface {
	ExchangeDone(answer []byte, err error)
}

// Member is one upstream with what is bound to it when it is built: the
// Observer of its events, which also names it, and which Resolved hands
// back as the upstream that answered a query.
type Member struct {
	Upstream Upstream
	// Observer receives this upstream's events and names it. Nil means
	// NopObserver, named after the Upstream if it is a fmt.Stringer.
	Observer Observer
}

// Balancer sends each query to an upstream chosen by its policy, keeps track
// of the upstreams' health, and retries and hedges as configured. It is safe
// for concurrent use and must not be copied. Close stops its background
// probes; the upstreams themselves remain the caller's to close.
//
// Health works the same under every policy. An attempt that fails with an
// error that is not a timeout (see Upstream) marks its upstream down at once:
// its connections fail, so it is broken, not slow. Slow attempts (timed out,
// or answered after AttemptTimeout) mark it down only when maxSlowRun come
// in a row, with no quicker answer in between. A down upstream gets no
// client queries; it is probed in the background after FirstBackoff, then
// after waits that double up to ProbeMaxBackoff, and comes back on the first
// answer to a probe.
//
// When every upstream is down, a query goes to the one whose last failure
// is the oldest, among those not yet probed in vain since they went down:
// right after a failure, before any probe has confirmed it, a blip must not
// fail every query. Once every upstream is down with a failed probe since,
// no new query goes anywhere: each fails at once with ErrAllDown instead of
// waiting on an unreachable resolver until its deadline. (The retries of a
// query sent before still go out: it has waited already, and a resolver
// too busy to answer a probe in time looks unreachable too.) Probes then
// come at least every AllDownProbeEvery, and the first one answered brings
// its upstream, and the queries, back.
type Balancer struct {
	hosts    []host
	policy   Policy
	cfg      Config
	probeMsg []byte

	// next is the round-robin position.
	next atomic.Uint64
	// rnd returns uniformly random bits; it must be safe for concurrent use.
	rnd func() uint64

	// hedging is set when a slow query may go to a second upstream.
	hedging bool

	// made and changes serve Status and Changes (status.go).
	made    time.Time
	changes chan struct{}

	closed atomic.Bool
	// wg counts the scheduled health timers and the probes running.
	wg sync.WaitGroup
}

// New returns a Balancer over members, which must hold between 1 and
// MaxUpstreams upstreams, in the order Failover uses. It fails if
// cfg.Validate does.
func New(members []Member, cfg Config) (*Balancer, error) {
	return newBalancer(members, cfg, rand.Uint64)
}

// newBalancer is New with the source of random numbers chosen.
func newBalancer(members []Member, cfg Config, rnd func() uint64) (*Balancer, error) {
	switch {
	case len(members) == 0:
		return nil, ErrNoUpstream
	case len(members) > MaxUpstreams:
		return nil, fmt.Errorf("%w: %d, at most %d", ErrTooManyUpstreams, len(members), MaxUpstreams)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	probe, err := dnsmsg.NewQuery(uint16(rnd()), cfg.ProbeName, dnsmsg.TypeNS)
	if err != nil {
		return nil, err
	}
	b := &Balancer{
		hosts:    make([]host, len(members)),
		policy:   cfg.Policy,
		cfg:      cfg,
		probeMsg: probe,
		rnd:      rnd,
		hedging:  cfg.HedgeAfter > 0 && len(members) > 1,
		made:     time.Now(),
		changes:  make(chan struct{}, 1),
	}
	for i, m := range members {
		h := &b.hosts[i]
		h.up, h.obs, h.changes = m.Upstream, m.Observer, b.changes
		if h.obs == nil {
			h.obs = nopNamed(m.Upstream)
		}
	}
	return b, nil
}

// Resolve is Start, waited for: it returns the answer and the Observer of
// the upstream that gave it, or the error. query may be reused once it
// returns. It is for callers that may block, such as tests and tools; the
// proxy uses Start.
func (b *Balancer) Resolve(query []byte, deadline time.Time) ([]byte, fmt.Stringer, error) {
	// A channel of its own, not a pooled one: a caller inside a
	// testing/synctest bubble may wait only on the bubble's channels.
	w := waiter{ch: make(chan resolution, 1)}
	b.Start(query, deadline, w)
	r := <-w.ch
	return r.answer, r.from, r.err
}

// waiter is the Finisher of a query sent by Resolve, which waits for it.
type waiter struct{ ch chan resolution }

type resolution struct {
	answer []byte
	from   fmt.Stringer
	err    error
}

func (w waiter) Resolved(answer []byte, from fmt.Stringer, err error) {
	w.ch <- resolution{answer, from, err}
}

// choose returns the upstream for the next attempt of a query that has
// tried those in tried, and adds it there. It prefers one that is up and not
// yet tried; then the least recently failed of those not tried, leaving out
// the unreachable ones; once every other upstream has been tried, it starts
// again from all of them. It returns nil when every upstream is
// unreachable.
func (b *Balancer) choose(tried *uint64) *host {
	i := b.pick(*tried)
	if i < 0 {
		if i = b.fallBack(tried); i < 0 {
			return nil
		}
	}
	*tried |= uint64(1) << i
	return &b.hosts[i]
}

// fallBack is choose's choice when no upstream in tried's complement is
// up: the least recently failed of them that is not unreachable or, with
// none, the choice among all upstreams again, tried emptied; -1 when every
// upstream is unreachable. It is off the path of a healthy query, which
// pick alone serves.
func (b *Balancer) fallBack(tried *uint64) int {
	if i := b.leastRecentlyFailed(*tried, false); i >= 0 || *tried == 0 {
		return i
	}
	*tried = 0
	if i := b.pick(0); i >= 0 {
		return i
	}
	return b.leastRecentlyFailed(0, false)
}

// lastResort returns the least recently failed upstream not in tried,
// unreachable or not, starting again from all of them once every one has
// been tried, and adds it to tried: the retry of a query sent before every
// upstream was found unreachable.
func (b *Balancer) lastResort(tried *uint64) *host {
	i := b.leastRecentlyFailed(*tried, true)
	if i < 0 {
		*tried = 0
		i = b.leastRecentlyFailed(0, true)
	}
	*tried |= uint64(1) << i
	return &b.hosts[i]
}

// settle does the bookkeeping of an attempt on h that took elapsed and
// ended with err, and returns err named after h.
func (b *Balancer) settle(h *host, wasDown bool, elapsed time.Duration, err error) error {
	if err == nil {
		h.observe(elapsed)
		if elapsed >= b.cfg.AttemptTimeout {
			b.slow(h)
		} else if h.slowRun.Load() != 0 {
			h.slowRun.Store(0)
		}
		if wasDown {
			b.answeredWhileDown(h)
		}
		return nil
	}
	if isTimeout(err) {
		h.observe(elapsed) // at least this slow
		b.slow(h)
		return fmt.Errorf("%s: %w", h.obs, err)
	}
	b.fail(h)
	return fmt.Errorf("%s: %w", h.obs, err)
}

// share returns the deadline of an attempt that left more attempts may
// follow: an equal share of the time to the query's deadline, so that an
// overloaded upstream cannot use it all up, but at least AttemptTimeout, so that
// the upstream's own recovery of a lost query or a dead connection (which
// runs well inside AttemptTimeout) comes first and a slow name gets its answer.
func (b *Balancer) share(now, deadline time.Time, left int) time.Time {
	if left <= 0 {
		return deadline
	}
	d := max(deadline.Sub(now)/time.Duration(left+1), b.cfg.AttemptTimeout)
	if end := now.Add(d); end.Before(deadline) {
		return end
	}
	return deadline
}

// slow counts an attempt that timed out or answered after AttemptTimeout, and
// marks h down at the maxSlowRun-th in a row.
func (b *Balancer) slow(h *host) {
	if h.slowRun.Add(1) >= maxSlowRun {
		b.fail(h)
	}
}

// isTimeout reports whether err itself says that time ran out. Causes are
// not searched: a dial that timed out is wrapped in an error of its own,
// and is a failure of the upstream, not a slow answer.
func isTimeout(err error) bool {
	t, ok := err.(interface{ Timeout() bool })
	return ok && t.Timeout()
}

// Close stops the background probes and waits for the probes still
// running, which end by their deadlines, or at once when the upstreams are
// closed first. Start still works after Close, without probes. The
// upstreams are the caller's to close.
func (b *Balancer) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	for i := range b.hosts {
		h := &b.hosts[i]
		h.mu.Lock()
		b.stopTimerLocked(h)
		h.mu.Unlock()
	}
	b.wg.Wait()
	return nil
}
