package balance

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

// Upstream is one resolver as balance sees it. *upstream.Pool implements it.
// Its methods must be safe for concurrent use.
type Upstream interface {
	// Exchange sends query and returns the answer, with the query's ID. It
	// must not modify query nor read it once it has returned, and must
	// return by deadline. The upstream owns the recovery of a single query
	// (sending it again when a connection dies or a query is lost), within
	// Config.AttemptTimeout, the least time balance gives an attempt. An error
	// that reports Timeout (on the error itself, not a cause it wraps)
	// means that this query was slow or lost, not that the upstream is
	// broken: it does not mark the upstream down. Any other error does.
	Exchange(query []byte, deadline time.Time) ([]byte, error)
	// InFlight reports the queries waiting for an answer from the
	// upstream: the one count that least_outstanding compares.
	InFlight() int
	// String names the upstream in logs and metrics.
	String() string
}

// Balancer sends each query to an upstream chosen by its policy, keeps track
// of the upstreams' health, and retries and hedges as configured. It is safe
// for concurrent use and must not be copied. Close stops its background
// probes; the upstreams themselves remain the caller's to close.
//
// Health works the same under every policy. An attempt that fails with an
// error that is not a timeout (see Upstream) marks its upstream down at once:
// its connections fail, so it is broken, not slow. Slow attempts (timed out,
// or answered after AttemptTimeout) mark it down only when maxSlowRun come in a
// row, with no quicker answer in between. A down upstream gets no
// client queries; it is probed in the background after FirstBackoff, then
// after waits that double up to ProbeMaxBackoff, and comes back on the first
// answer to a probe. When every upstream a query could go to is down, it
// goes to the one whose last failure is the oldest rather than fail.
type Balancer struct {
	hosts    []host
	policy   Policy
	cfg      Config
	obs      Observer
	probeMsg []byte

	// next is the round-robin position.
	next atomic.Uint64
	// rnd returns uniformly random bits; it must be safe for concurrent use.
	rnd func() uint64

	// canStart reports that Start can send queries: hedging is off and
	// every upstream is a starter.
	canStart bool

	closed atomic.Bool
	// wg counts the scheduled timers, running probes and hedged attempts.
	wg sync.WaitGroup
}

// New returns a Balancer over ups, which must hold between 1 and
// MaxUpstreams upstreams, in the order Failover uses. It fails if
// cfg.Validate does.
func New(ups []Upstream, cfg Config) (*Balancer, error) {
	return newBalancer(ups, cfg, rand.Uint64)
}

// newBalancer is New with the source of random numbers chosen.
func newBalancer(ups []Upstream, cfg Config, rnd func() uint64) (*Balancer, error) {
	switch {
	case len(ups) == 0:
		return nil, ErrNoUpstream
	case len(ups) > MaxUpstreams:
		return nil, fmt.Errorf("%w: %d, at most %d", ErrTooManyUpstreams, len(ups), MaxUpstreams)
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
		hosts:    make([]host, len(ups)),
		policy:   cfg.Policy,
		cfg:      cfg,
		obs:      cfg.Observer,
		probeMsg: probe,
		rnd:      rnd,
	}
	b.canStart = cfg.HedgeAfter == 0 || len(ups) == 1
	for i, u := range ups {
		b.hosts[i].up = u
		b.hosts[i].name = u.String()
		b.hosts[i].starter, _ = u.(starter)
		b.hosts[i].holder, _ = u.(holder)
		b.canStart = b.canStart && b.hosts[i].starter != nil
	}
	return b, nil
}

// Resolve sends query to an upstream chosen by the policy and returns the
// answer and the upstream that gave it, as given to New, so that a caller
// can find what it keeps per upstream on the value itself rather than by
// its name. An answer is returned
// whatever its rcode; SERVFAIL from an upstream is not retried. When an
// attempt fails, the query goes to another upstream, up to MaxRetries times,
// until deadline; with HedgeAfter set, a query still unanswered after that
// long also goes to a second upstream. It implements proxy.Resolver.
func (b *Balancer) Resolve(query []byte, deadline time.Time) ([]byte, fmt.Stringer, error) {
	if b.cfg.HedgeAfter > 0 && len(b.hosts) > 1 {
		return b.resolveHedged(query, deadline)
	}
	var tried uint64
	return b.resolveFrom(query, deadline, &tried, 0, errDeadline)
}

// resolveFrom makes a query's attempts from the n-th on, given the
// upstreams it tried and the error of its last attempt.
func (b *Balancer) resolveFrom(query []byte, deadline time.Time, tried *uint64, n int, err error) ([]byte, fmt.Stringer, error) {
	for ; n <= b.cfg.MaxRetries; n++ {
		now := time.Now()
		if !now.Before(deadline) {
			break
		}
		h := b.choose(tried)
		if n > 0 {
			b.obs.Retried(h.name)
		}
		var ans []byte
		if ans, err = b.attempt(h, query, b.share(now, deadline, b.cfg.MaxRetries-n)); err == nil {
			return ans, h.up, nil
		}
	}
	return nil, nil, err
}

// choose returns the upstream for the next attempt of a query that has
// tried those in tried, and adds it there. It prefers one that is up and not
// yet tried; then the least recently failed of those not tried; once every
// upstream has been tried, it starts again from all of them.
func (b *Balancer) choose(tried *uint64) *host {
	if *tried == b.all() {
		*tried = 0
	}
	i := b.pick(*tried)
	if i < 0 {
		i = b.leastRecentlyFailed(*tried)
	}
	*tried |= uint64(1) << i
	return &b.hosts[i]
}

// all returns the set of every upstream.
func (b *Balancer) all() uint64 {
	return (uint64(1) << len(b.hosts)) - 1
}

// attempt sends query to h once and does the bookkeeping: served count,
// latency, and health. A timeout (see Upstream), or an answer after
// AttemptTimeout, leaves h up unless it is the maxSlowRun-th such attempt in a
// row: a slow name at a resolver that answers others is normal for a cold
// cache, a run of them is an overloaded resolver.
func (b *Balancer) attempt(h *host, query []byte, deadline time.Time) ([]byte, error) {
	wasDown := h.state.Load() == stateDown
	h.served.Add(1)
	start := time.Now()
	ans, err := h.up.Exchange(query, deadline)
	return ans, b.settle(h, wasDown, time.Since(start), err)
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
		return fmt.Errorf("%s: %w", h.name, err)
	}
	b.fail(h)
	return fmt.Errorf("%s: %w", h.name, err)
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

// Close stops the background probes and waits for the probes and hedged
// attempts still running, which end by their deadlines, or at once when the
// upstreams are closed first. Resolve still works after Close, without
// probes. The upstreams are the caller's to close.
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
