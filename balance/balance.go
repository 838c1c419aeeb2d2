package balance

import (
	"context"
	"errors"
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
	// must not modify query, and must return promptly once ctx is done.
	Exchange(ctx context.Context, query []byte) ([]byte, error)
	// String names the upstream in logs and metrics.
	String() string
}

// Balancer sends each query to an upstream chosen by its policy, keeps track
// of the upstreams' health, and retries and hedges as configured. It is safe
// for concurrent use and must not be copied. Close stops its background
// probes; the upstreams themselves remain the caller's to close.
//
// Health works the same under every policy. An attempt that fails (any
// error from Upstream.Exchange, a timeout included, unless the caller
// cancelled the query) marks its upstream down at once. A down upstream gets
// no client queries; it is probed in the background after FirstBackoff, then
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

	// ctx bounds the probes; cancel ends it at Close.
	ctx    context.Context
	cancel context.CancelFunc
	closed atomic.Bool
	// wg counts the scheduled timers and running probes.
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
	for i, u := range ups {
		b.hosts[i].up = u
		b.hosts[i].name = u.String()
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b, nil
}

// Policy returns the policy in use, in its canonical name.
func (b *Balancer) Policy() Policy { return b.policy }

// Resolve sends query to an upstream chosen by the policy and returns the
// answer and the name of the upstream that gave it. An answer is returned
// whatever its rcode; SERVFAIL from an upstream is not retried. When an
// attempt fails, the query goes to another upstream, up to MaxRetries times,
// as long as ctx allows; with HedgeAfter set, a query still unanswered after
// that long also goes to a second upstream. It implements proxy.Resolver.
func (b *Balancer) Resolve(ctx context.Context, query []byte) ([]byte, string, error) {
	if b.cfg.HedgeAfter > 0 && len(b.hosts) > 1 {
		return b.resolveHedged(ctx, query)
	}
	var tried uint64
	var err error
	for n := 0; n <= b.cfg.MaxRetries; n++ {
		if ctx.Err() != nil {
			break
		}
		h := b.choose(&tried)
		if n > 0 {
			b.obs.Retried(h.name)
		}
		var ans []byte
		if ans, err = b.attempt(ctx, h, query, b.cfg.MaxRetries-n); err == nil {
			return ans, h.name, nil
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	return nil, "", err
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

// attempt sends query to h once and does the bookkeeping: in-flight and
// served counts, latency, and health. left is the number of attempts that may
// still follow this one: when ctx has a deadline, the attempt gets an equal
// share of the time that is left among itself and them. An attempt whose ctx
// was cancelled with errHedgeLost lost to another attempt of the same query;
// one cancelled otherwise was given up by the caller.
func (b *Balancer) attempt(ctx context.Context, h *host, query []byte, left int) ([]byte, error) {
	actx := ctx
	if dl, ok := ctx.Deadline(); ok && left > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(dl)/time.Duration(left+1)))
		defer cancel()
	}
	wasDown := h.state.Load() == stateDown
	h.inflight.Add(1)
	h.served.Add(1)
	start := time.Now()
	ans, err := h.up.Exchange(actx, query)
	elapsed := time.Since(start)
	h.inflight.Add(-1)
	if err == nil {
		h.observe(elapsed)
		if h.losses.Load() != 0 {
			h.losses.Store(0)
		}
		if wasDown {
			b.answeredWhileDown(h)
		}
		return ans, nil
	}
	if errors.Is(context.Cause(actx), errHedgeLost) {
		// This attempt lost to a hedge. It was at least this slow, and
		// too many such losses with no answer between them mean that the
		// upstream is stalled.
		h.observe(elapsed)
		if h.losses.Add(1) >= maxLosses {
			b.fail(h)
		}
		return nil, fmt.Errorf("%s: %w", h.name, err)
	}
	if errors.Is(actx.Err(), context.Canceled) {
		// The caller gave up: no fault of the upstream.
		return nil, fmt.Errorf("%s: %w", h.name, err)
	}
	if actx.Err() != nil {
		// Timed out: the upstream was at least this slow, and down.
		h.observe(elapsed)
	}
	b.fail(h)
	return nil, fmt.Errorf("%s: %w", h.name, err)
}

// Close stops the background probes and waits for them. Resolve still works
// after Close, without probes. The upstreams are the caller's to close.
func (b *Balancer) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.cancel()
	for i := range b.hosts {
		h := &b.hosts[i]
		h.mu.Lock()
		b.stopTimerLocked(h)
		h.mu.Unlock()
	}
	b.wg.Wait()
	return nil
}
