package emit

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/DataDog/datadog-go/v5/statsd"
)

// sink is the part of a statsd client that emit sends through. The Datadog
// client implements it, and so does plainSink. Every method must return at
// once, buffering or dropping rather than waiting for the network.
type sink interface {
	Count(name string, value int64, tags []string, rate float64) error
	Gauge(name string, value float64, tags []string, rate float64) error
	Histogram(name string, value float64, tags []string, rate float64) error
	TimeInMilliseconds(name string, value float64, tags []string, rate float64) error
}

// flushCloser is the part of a client that sends what it holds and shuts it.
type flushCloser interface {
	Flush() error
	Close() error
}

// client is a connected statsd client: the Datadog one or plainSink.
type client interface {
	sink
	flushCloser
}

var _ client = (*statsd.Client)(nil)

// ddNoAgent is the message of the error that the Datadog client returns when
// it was given no address and found none in the DD_* variables. It has no
// sentinel; TestNew_off pins it, so an upgrade that changes it
// fails a test rather than turning metrics on or off by surprise.
const ddNoAgent = "No address passed and autodetection from environment failed"

// Emitter sends dotproxy's metrics to one statsd or DogStatsD server. It is
// safe for concurrent use. Build it with [New] and stop it with Close.
type Emitter struct {
	names  namer
	sink   atomic.Pointer[sinkRef] // the client, or nopSink when off or closed
	client flushCloser             // nil when metrics are off
	errs   *errorLog

	// lifeMu is held shared by Flush and exclusively by Close, so that the
	// client is never flushed once closed: the Datadog client's Flush
	// would wait forever.
	lifeMu sync.RWMutex
	closed bool // guarded by lifeMu

	proxy ProxyMetrics

	// upsMu serialises additions to ups. Readers load ups without it; a map
	// in ups is never written after it is stored.
	upsMu sync.Mutex
	ups   atomic.Pointer[map[upstreamKey]*UpstreamMetrics]

	stop         chan struct{} // closed by Close to stop the gauge loop
	done         chan struct{} // closed when the gauge loop has returned
	closeTimeout time.Duration
	closeErr     error // guarded by lifeMu
}

// sinkRef boxes a sink for an atomic.Pointer.
type sinkRef struct{ sink }

// out returns where metrics go now.
func (e *Emitter) out() sink { return e.sink.Load().sink }

// New validates cfg and returns an Emitter that sends to cfg.Addr, or one
// that discards everything when metrics are off (see [Config.Addr]). It
// starts the Emitter's gauge goroutine when metrics are on. Every error it
// returns wraps [ErrConfig] and names the variable to fix.
func New(cfg Config) (*Emitter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	e := &Emitter{
		names: namer{format: cfg.Format, prefix: cfg.Prefix},
		errs:  &errorLog{log: cfg.Logger, every: errorLogInterval},
		stop:  make(chan struct{}),
		done:  make(chan struct{}),

		closeTimeout: cfg.CloseTimeout,
	}
	c, err := e.dial(cfg)
	if err != nil {
		return nil, err
	}
	e.sink.Store(&sinkRef{nopSink{}})
	if c != nil {
		e.sink.Store(&sinkRef{c})
		e.client = c
	}
	e.ups.Store(&map[upstreamKey]*UpstreamMetrics{})
	e.proxy = newProxyMetrics(e)
	if e.client == nil {
		close(e.done)
		return e, nil
	}
	go e.run(cfg.FlushInterval)
	return e, nil
}

// dial returns the client for cfg, or nil when metrics are off.
func (e *Emitter) dial(cfg Config) (client, error) {
	if cfg.Format == StatsD {
		if cfg.Addr == "" {
			return nil, nil
		}
		s, err := newPlainSink(cfg.Addr, cfg.FlushInterval, e.errs.handle)
		if err != nil {
			return nil, fmt.Errorf("%w: Addr %q: %w", ErrConfig, cfg.Addr, err)
		}
		return s, nil
	}
	opts := []statsd.Option{
		statsd.WithTags(slices.Clip(slices.Clone(cfg.Tags))),
		statsd.WithClientSideAggregation(),
		statsd.WithAggregationInterval(cfg.FlushInterval),
		statsd.WithErrorHandler(e.errs.handle),
	}
	if !cfg.SingleValue {
		opts = append(opts, statsd.WithExtendedClientSideAggregation())
	}
	c, err := statsd.New(cfg.Addr, opts...)
	switch {
	case err == nil:
		return c, nil
	case cfg.Addr == "" && err.Error() == ddNoAgent:
		return nil, nil
	case cfg.Addr == "":
		return nil, fmt.Errorf("%w: Addr is empty and the agent named by DD_AGENT_HOST or DD_DOGSTATSD_URL is unusable: %w",
			ErrConfig, err)
	default:
		return nil, fmt.Errorf("%w: Addr %q: %w", ErrConfig, cfg.Addr, err)
	}
}

// Enabled reports whether metrics are sent anywhere.
func (e *Emitter) Enabled() bool { return e.client != nil }

// Proxy returns the observer of the client-facing side.
func (e *Emitter) Proxy() *ProxyMetrics { return &e.proxy }

// Upstream returns the observer of the upstream called name, building it on
// first use. It is the upstream's one identity: main binds it to the
// upstream's pool (upstream.Config.Observer) and to its place in the
// balancer (balance.Member.Observer), which hands it back with each answer,
// so that every layer's events land in the same series with no lookup.
// Call it while wiring, before queries flow: building an observer allocates
// its series. Its series carry no route tag; see RouteUpstream.
func (e *Emitter) Upstream(name string) *UpstreamMetrics { return e.RouteUpstream("", name) }

// DefaultRoute is the route tag of the upstreams that take the queries no
// route takes (DOTPROXY_UPSTREAMS). In statsd format it adds no word to a
// name, so that a dotproxy without routes keeps the names it had.
const DefaultRoute = "default"

// upstreamKey identifies an upstream's metrics: the same resolver in two
// routes is two upstreams, with a pool and health each.
type upstreamKey struct{ route, name string }

// RouteUpstream is Upstream for the upstream called name in the route
// called route, whose series carry a route tag: in statsd format, one more
// word before the upstream's, except for DefaultRoute. An empty route adds
// no tag. With an empty name it is the route's own: the series of the
// SERVFAILs that the proxy makes when none of the route's upstreams
// answered, which the route's balancer hands back with the error, so that
// they are counted against the route (tagged upstream:none); it sends no
// gauges.
func (e *Emitter) RouteUpstream(route, name string) *UpstreamMetrics {
	key := upstreamKey{route, name}
	if m, ok := (*e.ups.Load())[key]; ok {
		return m
	}
	e.upsMu.Lock()
	defer e.upsMu.Unlock()
	old := *e.ups.Load()
	if m, ok := old[key]; ok {
		return m
	}
	m := newUpstreamMetrics(e, route, name)
	next := make(map[upstreamKey]*UpstreamMetrics, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[key] = m
	e.ups.Store(&next)
	return m
}

// upstreamOf returns the metrics of u, the upstream that answered as the
// balancer hands it back: this Emitter's own UpstreamMetrics, as main binds
// it. Anything else, which only a caller wired otherwise hands in, is found
// by its name.
func (e *Emitter) upstreamOf(u fmt.Stringer) *UpstreamMetrics {
	if m, ok := u.(*UpstreamMetrics); ok && m.e == e {
		return m
	}
	return e.Upstream(u.String())
}

// Flush reads the gauges, then sends everything buffered, and returns when
// it is written to the socket. Tests and shutdown use it; the Emitter also
// flushes on its own. After Close it does nothing.
func (e *Emitter) Flush() error {
	e.lifeMu.RLock()
	defer e.lifeMu.RUnlock()
	if e.client == nil || e.closed {
		return nil
	}
	e.readGauges()
	return e.client.Flush()
}

// Close stops the gauge goroutine, sends what is buffered and closes the
// client, waiting at most [Config.CloseTimeout] for the statsd server to
// take it. Past that it returns [ErrCloseTimeout] while the client goes on
// sending in the background until it is done or the process exits: a
// server that does not read its socket must not hold up the exit. Events
// reported after Close, by queries still in flight, are dropped. Close is
// safe to call more than once; later calls return the first one's error.
func (e *Emitter) Close() error {
	e.lifeMu.Lock()
	defer e.lifeMu.Unlock()
	if e.client == nil || e.closed {
		return e.closeErr
	}
	e.closed = true
	close(e.stop)
	<-e.done
	e.readGauges()
	e.sink.Store(&sinkRef{nopSink{}})

	closed := make(chan error, 1)
	go func() { closed <- e.client.Close() }()
	t := time.NewTimer(e.closeTimeout)
	defer t.Stop()
	select {
	case e.closeErr = <-closed:
	case <-t.C:
		e.closeErr = fmt.Errorf("%w (%s)", ErrCloseTimeout, e.closeTimeout)
	}
	return e.closeErr
}

// run reads the gauges every interval until Close.
func (e *Emitter) run(interval time.Duration) {
	defer close(e.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			e.readGauges()
		case <-e.stop:
			return
		}
	}
}

// readGauges sends the gauges of every upstream.
func (e *Emitter) readGauges() {
	for _, m := range *e.ups.Load() {
		m.sendGauges()
	}
}

// errorLogInterval is the least time between two log lines about failed
// sends; a statsd server that is down would otherwise flood the log.
const errorLogInterval = 10 * time.Second

// errorLog logs the clients' send errors, at most one line per interval,
// with the number of errors it kept quiet about since the last line. It is
// safe for concurrent use.
type errorLog struct {
	log        *slog.Logger
	every      time.Duration
	last       atomic.Int64 // UnixNano of the last line, zero before the first
	suppressed atomic.Int64
}

// handle logs err unless a line was logged less than l.every ago.
func (l *errorLog) handle(err error) {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if last != 0 && now-last < int64(l.every) || !l.last.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return
	}
	l.log.Warn("emit: sending metrics failed", slog.Any("err", err),
		slog.Int64("suppressed", l.suppressed.Swap(0)))
}

// nopSink discards every metric. An Emitter with metrics off uses it.
type nopSink struct{}

func (nopSink) Count(string, int64, []string, float64) error                { return nil }
func (nopSink) Gauge(string, float64, []string, float64) error              { return nil }
func (nopSink) Histogram(string, float64, []string, float64) error          { return nil }
func (nopSink) TimeInMilliseconds(string, float64, []string, float64) error { return nil }

// ms converts d to the milliseconds that statsd timings carry.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
