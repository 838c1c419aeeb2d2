package emit

import (
	"sync/atomic"
	"time"

	"github.com/dotproxy/dotproxy/balance"
	"github.com/dotproxy/dotproxy/upstream"
)

// PoolStats is what the gauge goroutine reads from one upstream's pool.
// *upstream.Pool implements it.
type PoolStats interface {
	// Stats returns the connections open now and the queries in flight.
	// It is called from the Emitter's goroutine and must not block.
	Stats() upstream.Stats
}

// UpstreamMetrics records the events of one upstream, from every layer: it
// implements [upstream.Observer] and [balance.Observer], names the upstream
// (String), and holds the per-upstream series that [ProxyMetrics] sends for
// the answers it gave. It is safe for concurrent use; its methods allocate
// nothing and do not block.
type UpstreamMetrics struct {
	e    *Emitter
	name string

	// stats is the pool read for the gauges; nil until Watch.
	stats atomic.Pointer[poolStatsRef]
	// healthy is the last state balance reported; true until it reports.
	healthy atomic.Bool

	latency      series
	handshake    [2]series // by resumed
	cxOpen       series
	cxClose      []series // by closeIndex
	cxError      []series // by stageIndex
	resent       series
	unmatched    series
	mismatched   series
	retry        series
	hedge        series
	healthChange [2]series // by up

	query [][]series // by transportIndex, rcodeIndex
	rtt   []series   // by transportIndex

	cxActive series
	inflight series
	health   series
}

// poolStatsRef boxes a PoolStats for an atomic.Pointer.
type poolStatsRef struct{ PoolStats }

var (
	_ upstream.Observer = (*UpstreamMetrics)(nil)
	_ balance.Observer  = (*UpstreamMetrics)(nil)
)

func newUpstreamMetrics(e *Emitter, route, name string) *UpstreamMetrics {
	n := e.names.inRoute(route)
	up := tag{"upstream", name}
	m := &UpstreamMetrics{
		e:          e,
		name:       name,
		latency:    n.series(mLatency, up),
		cxOpen:     n.series(mCxOpen, up),
		resent:     n.series(mResent, up),
		unmatched:  n.series(mUnmatched, up),
		mismatched: n.series(mMismatched, up),
		retry:      n.series(mRetry, up),
		hedge:      n.series(mHedge, up),
		cxActive:   n.series(mCxActive, up),
		inflight:   n.series(mInflight, up),
		health:     n.series(mHealthy, up),
	}
	m.healthy.Store(true)
	for i, v := range []string{"false", "true"} {
		m.handshake[i] = n.series(mHandshake, up, tag{"resumed", v})
	}
	for i, v := range []string{"down", "up"} {
		m.healthChange[i] = n.series(mHealthChange, up, tag{"state", v})
	}
	for _, v := range closeReasons {
		m.cxClose = append(m.cxClose, n.series(mCxClose, up, tag{"reason", v}))
	}
	for _, v := range stages {
		m.cxError = append(m.cxError, n.series(mCxError, up, tag{"stage", v}))
	}
	for _, t := range transports {
		tt := tag{"transport", t}
		byRcode := make([]series, 0, len(rcodes))
		for _, rc := range rcodes {
			byRcode = append(byRcode, n.series(mQuery, tt, tag{"rcode", rc}, up))
		}
		m.query = append(m.query, byRcode)
		m.rtt = append(m.rtt, n.series(mQueryRTT, tt, up))
	}
	return m
}

// Watch makes the gauge goroutine read s for this upstream's open
// connections and queries in flight. A later call replaces s; nil stops
// those two gauges.
func (m *UpstreamMetrics) Watch(s PoolStats) {
	if s == nil {
		m.stats.Store(nil)
		return
	}
	m.stats.Store(&poolStatsRef{s})
}

// ConnOpened implements [upstream.Observer].
func (m *UpstreamMetrics) ConnOpened(handshake time.Duration, resumed bool) {
	m.count(m.cxOpen)
	s := m.handshake[boolIndex(resumed)]
	_ = m.e.out().TimeInMilliseconds(s.name, ms(handshake), s.tags, 1)
}

// ConnClosed implements [upstream.Observer].
func (m *UpstreamMetrics) ConnClosed(reason upstream.CloseReason) {
	m.count(m.cxClose[closeIndex(reason)])
}

// ConnFailed implements [upstream.Observer].
func (m *UpstreamMetrics) ConnFailed(stage upstream.Stage) {
	m.count(m.cxError[stageIndex(stage)])
}

// Exchanged implements [upstream.Observer]. The sizes are not sent: the
// client-side sizes that [ProxyMetrics.Answered] sends differ from them only
// by the padding and ID that the pool rewrites.
func (m *UpstreamMetrics) Exchanged(latency time.Duration, _, _ int) {
	_ = m.e.out().TimeInMilliseconds(m.latency.name, ms(latency), m.latency.tags, 1)
}

// Resent implements [upstream.Observer].
func (m *UpstreamMetrics) Resent() { m.count(m.resent) }

// Unmatched implements [upstream.Observer].
func (m *UpstreamMetrics) Unmatched() { m.count(m.unmatched) }

// Mismatched implements [upstream.Observer].
func (m *UpstreamMetrics) Mismatched() { m.count(m.mismatched) }

// String implements [balance.Observer]: the upstream's name, as the
// metrics tag it.
func (m *UpstreamMetrics) String() string { return m.name }

// Retried implements [balance.Observer].
func (m *UpstreamMetrics) Retried() { m.count(m.retry) }

// Hedged implements [balance.Observer].
func (m *UpstreamMetrics) Hedged() { m.count(m.hedge) }

// HealthChanged implements [balance.Observer]. It also sets the upstream's
// health gauge, sent at the next flush.
func (m *UpstreamMetrics) HealthChanged(up bool) {
	m.healthy.Store(up)
	m.count(m.healthChange[boolIndex(up)])
}

func (m *UpstreamMetrics) count(s series) { _ = m.e.out().Count(s.name, 1, s.tags, 1) }

// sendGauges sends the health gauge, and the pool gauges once Watch has
// been called. The upstream of the proxy's own replies, a route's included
// (unnamed), has no gauges.
func (m *UpstreamMetrics) sendGauges() {
	if m.name == "" {
		return
	}
	healthy := 0.0
	if m.healthy.Load() {
		healthy = 1
	}
	m.gauge(m.health, healthy)
	if ref := m.stats.Load(); ref != nil {
		st := ref.Stats()
		m.gauge(m.cxActive, float64(max(st.Open, 0)))
		m.gauge(m.inflight, float64(max(st.InFlight, 0)))
	}
}

// gauge sends v, which must not be negative: statsd reads a leading '-' in
// a gauge as a decrement.
func (m *UpstreamMetrics) gauge(s series, v float64) { _ = m.e.out().Gauge(s.name, v, s.tags, 1) }
