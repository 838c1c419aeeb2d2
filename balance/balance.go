package balance

import (
	"context"
	"errors"
	"sync/atomic"
)

// Upstream is one resolver as balance sees it. *upstream.Pool implements it.
type Upstream interface {
	// Exchange sends query and returns the answer, with the query's ID.
	// It must not modify query.
	Exchange(ctx context.Context, query []byte) ([]byte, error)
	// String names the upstream in logs and metrics.
	String() string
}

// Observer receives balance's events. Its methods must not block.
type Observer interface {
	// Retried reports a query sent again to upstream after an attempt on
	// another one failed.
	Retried(upstream string)
	// Hedged reports a second copy of a slow query sent to upstream.
	Hedged(upstream string)
	// HealthChanged reports an upstream marked up or down.
	HealthChanged(upstream string, up bool)
}

// NopObserver is an Observer that discards every event.
type NopObserver struct{}

var _ Observer = NopObserver{}

// Retried implements [Observer].
func (NopObserver) Retried(string) {}

// Hedged implements [Observer].
func (NopObserver) Hedged(string) {}

// HealthChanged implements [Observer].
func (NopObserver) HealthChanged(string, bool) {}

// Config configures a Balancer.
type Config struct {
	// MaxRetries is how many more upstreams a query may try after its first
	// attempt failed. Zero means no retry.
	MaxRetries int
	// Observer receives events; nil means NopObserver.
	Observer Observer
}

// Balancer chooses an upstream for each query. It is safe for concurrent use.
type Balancer struct {
	ups  []Upstream
	cfg  Config
	next atomic.Uint64
}

// ErrNoUpstream is returned by New when given no upstream.
var ErrNoUpstream = errors.New("balance: no upstream")

// New returns a Balancer over ups, which must not be empty.
func New(ups []Upstream, cfg Config) (*Balancer, error) {
	if len(ups) == 0 {
		return nil, ErrNoUpstream
	}
	if cfg.Observer == nil {
		cfg.Observer = NopObserver{}
	}
	return &Balancer{ups: ups, cfg: cfg}, nil
}

// Resolve sends query to the upstreams in round-robin order, moving to the
// next one when an attempt fails, until one answers, MaxRetries is spent or
// ctx is done. It satisfies proxy.Resolver.
func (b *Balancer) Resolve(ctx context.Context, query []byte) ([]byte, string, error) {
	start := b.next.Add(1) - 1
	var err error
	for i := 0; i <= b.cfg.MaxRetries; i++ {
		u := b.ups[(start+uint64(i))%uint64(len(b.ups))]
		if i > 0 {
			b.cfg.Observer.Retried(u.String())
		}
		var ans []byte
		if ans, err = u.Exchange(ctx, query); err == nil {
			return ans, u.String(), nil
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
	}
	return nil, "", err
}

// Close stops background work. The upstreams are the caller's to close.
func (b *Balancer) Close() error { return nil }
