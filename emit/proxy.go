package emit

import (
	"fmt"
	"time"

	"github.com/dotproxy/dotproxy/proxy"
)

// ProxyMetrics records the client-facing side. It implements the
// [proxy.Observer] interface. It is safe for concurrent use; its methods
// allocate nothing and do not block.
type ProxyMetrics struct {
	e *Emitter
	// self holds the series of replies the proxy made itself.
	self *UpstreamMetrics

	requestSize  []series   // by transportIndex
	responseSize []series   // by transportIndex
	dropped      [][]series // by transportIndex, dropIndex
	malformed    []series   // by transportIndex
	refused      []series   // by transportIndex
	servfail     [][]series // by transportIndex, failIndex
	limited      [][]series // by transportIndex, limitIndex
	truncated    series
}

var _ proxy.Observer = (*ProxyMetrics)(nil)

func newProxyMetrics(e *Emitter) ProxyMetrics {
	n := e.names
	p := ProxyMetrics{
		e:         e,
		self:      e.Upstream(""),
		truncated: n.series(mTruncated),
	}
	for _, t := range transports {
		tt := tag{"transport", t}
		p.requestSize = append(p.requestSize, n.series(mRequestSize, tt))
		p.responseSize = append(p.responseSize, n.series(mResponseSize, tt))
		p.malformed = append(p.malformed, n.series(mMalformed, tt))
		p.refused = append(p.refused, n.series(mRefused, tt))
		var dropped, servfail, limited []series
		for _, r := range dropReasons {
			dropped = append(dropped, n.series(mDropped, tt, tag{"reason", r}))
		}
		for _, r := range failReasons {
			servfail = append(servfail, n.series(mServfail, tt, tag{"reason", r}))
		}
		for _, a := range limitActions {
			limited = append(limited, n.series(mRateLimited, tt, tag{"action", a}))
		}
		p.dropped = append(p.dropped, dropped)
		p.limited = append(p.limited, limited)
		p.servfail = append(p.servfail, servfail)
	}
	return p
}

// Answered implements [proxy.Observer]. upstream is, as main wires it, the
// upstream's own UpstreamMetrics (see [Emitter.upstreamOf]).
func (p *ProxyMetrics) Answered(t proxy.Transport, upstream fmt.Stringer, rcode int, rtt time.Duration, querySize, answerSize int) {
	m := p.self
	if upstream != nil {
		m = p.e.upstreamOf(upstream)
	}
	ti := transportIndex(t)
	sk := p.e.out()
	q := m.query[ti][rcodeIndex(rcode)]
	_ = sk.Count(q.name, 1, q.tags, 1)
	r := m.rtt[ti]
	_ = sk.TimeInMilliseconds(r.name, ms(rtt), r.tags, 1)
	qs, as := p.requestSize[ti], p.responseSize[ti]
	_ = sk.Histogram(qs.name, float64(querySize), qs.tags, 1)
	_ = sk.Histogram(as.name, float64(answerSize), as.tags, 1)
}

// Dropped implements [proxy.Observer].
func (p *ProxyMetrics) Dropped(t proxy.Transport, reason proxy.DropReason) {
	p.count(p.dropped[transportIndex(t)][dropIndex(reason)])
}

// Malformed implements [proxy.Observer].
func (p *ProxyMetrics) Malformed(t proxy.Transport) { p.count(p.malformed[transportIndex(t)]) }

// Refused implements [proxy.Observer].
func (p *ProxyMetrics) Refused(t proxy.Transport) { p.count(p.refused[transportIndex(t)]) }

// Truncated implements [proxy.Observer].
func (p *ProxyMetrics) Truncated() { p.count(p.truncated) }

// Failed implements [proxy.Observer].
func (p *ProxyMetrics) Failed(t proxy.Transport, reason proxy.FailReason) {
	p.count(p.servfail[transportIndex(t)][failIndex(reason)])
}

// Limited implements [proxy.Observer].
func (p *ProxyMetrics) Limited(t proxy.Transport, action proxy.LimitAction) {
	p.count(p.limited[transportIndex(t)][limitIndex(action)])
}

func (p *ProxyMetrics) count(s series) { _ = p.e.out().Count(s.name, 1, s.tags, 1) }
