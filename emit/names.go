package emit

import (
	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/proxy"
	"github.com/dotproxy/dotproxy/upstream"
)

// Metric names, without the prefix. docs/metrics.md describes each one.
const (
	mQuery        = "query"
	mQueryRTT     = "query.rtt"
	mRequestSize  = "query.request_size"
	mResponseSize = "query.response_size"
	mDropped      = "query.dropped"
	mMalformed    = "query.malformed"
	mRefused      = "query.refused"
	mTruncated    = "query.truncated"
	mServfail     = "query.servfail"
	mRateLimited  = "query.rate_limited"

	mLatency      = "upstream.latency"
	mHandshake    = "upstream.handshake"
	mCxOpen       = "upstream.cx_open"
	mCxClose      = "upstream.cx_close"
	mCxError      = "upstream.cx_error"
	mResent       = "upstream.resent"
	mUnmatched    = "upstream.unmatched"
	mMismatched   = "upstream.mismatched"
	mRetry        = "upstream.retry"
	mHedge        = "upstream.hedge"
	mHealthChange = "upstream.health_change"

	mCxActive = "upstream.cx_active"
	mInflight = "upstream.inflight"
	mHealthy  = "upstream.healthy"
)

// other is the tag value for an enum value that emit does not know, so that
// a new value cannot grow the number of series without bound.
const other = "other"

// noUpstream is the upstream tag of replies the proxy made itself.
const noUpstream = "none"

// The tag values of each enum, in index order; the last is always other.
var (
	transports  = []string{string(proxy.UDP), string(proxy.TCP), other}
	dropReasons = []string{string(proxy.DropShort), string(proxy.DropResponse), string(proxy.DropBadFrame), string(proxy.DropConnLimit),
		string(proxy.DropTooLarge), string(proxy.DropOverload), other}
	failReasons  = []string{string(proxy.FailDeadline), string(proxy.FailUpstream), string(proxy.FailUnreachable), other}
	limitActions = []string{string(proxy.LimitDrop), string(proxy.LimitSlip), string(proxy.LimitRefused), other}
	closeReasons = []string{string(upstream.CloseIdle), string(upstream.CloseServerClosed),
		string(upstream.CloseError), string(upstream.CloseShutdown), other}
	stages = []string{string(upstream.StageConnect), string(upstream.StageHandshake),
		string(upstream.StageVerify), string(upstream.StageIO), other}
	rcodes = rcodeNames()
)

// rcodeNames returns the tag value of each rcode from 0 to 23, then other.
// Rcodes 0 to 15 are named as dnsmsg names them everywhere else; those above
// 15 come from EDNS or TSIG.
func rcodeNames() []string {
	var names []string
	for rc := 0; rc < 16; rc++ {
		names = append(names, dnsmsg.RcodeName(rc))
	}
	names = append(names, "BADVERS", "BADKEY", "BADTIME", "BADMODE", "BADNAME", "BADALG", "BADTRUNC", "BADCOOKIE")
	return append(names, other)
}

func transportIndex(t proxy.Transport) int {
	switch t {
	case proxy.UDP:
		return 0
	case proxy.TCP:
		return 1
	}
	return len(transports) - 1
}

func dropIndex(r proxy.DropReason) int {
	switch r {
	case proxy.DropShort:
		return 0
	case proxy.DropResponse:
		return 1
	case proxy.DropBadFrame:
		return 2
	case proxy.DropConnLimit:
		return 3
	case proxy.DropTooLarge:
		return 4
	case proxy.DropOverload:
		return 5
	}
	return len(dropReasons) - 1
}

func failIndex(r proxy.FailReason) int {
	switch r {
	case proxy.FailDeadline:
		return 0
	case proxy.FailUpstream:
		return 1
	case proxy.FailUnreachable:
		return 2
	}
	return len(failReasons) - 1
}

func limitIndex(a proxy.LimitAction) int {
	switch a {
	case proxy.LimitDrop:
		return 0
	case proxy.LimitSlip:
		return 1
	case proxy.LimitRefused:
		return 2
	}
	return len(limitActions) - 1
}

func closeIndex(r upstream.CloseReason) int {
	switch r {
	case upstream.CloseIdle:
		return 0
	case upstream.CloseServerClosed:
		return 1
	case upstream.CloseError:
		return 2
	case upstream.CloseShutdown:
		return 3
	}
	return len(closeReasons) - 1
}

func stageIndex(s upstream.Stage) int {
	switch s {
	case upstream.StageConnect:
		return 0
	case upstream.StageHandshake:
		return 1
	case upstream.StageVerify:
		return 2
	case upstream.StageIO:
		return 3
	}
	return len(stages) - 1
}

func rcodeIndex(rcode int) int {
	if rcode < 0 || rcode >= len(rcodes)-1 {
		return len(rcodes) - 1
	}
	return rcode
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

// tag is one key:value pair of a series, before formatting.
type tag struct{ key, value string }

// series is one metric name with one set of tags, formatted for the sink
// when its observer is built so that sending it costs no allocation.
type series struct {
	name string
	tags []string // nil in statsd format
}

// namer formats series for one Format and prefix.
type namer struct {
	format Format
	prefix string
	// route, when set, is the route tag that goes just before every
	// upstream tag (see inRoute).
	route string
}

// inRoute returns n for the series of an upstream of the route called
// route: each gets a route tag just before its upstream tag, so that in
// statsd format the route's word comes before the upstream's. An empty
// route adds none, and nor does DefaultRoute in statsd format, so that the
// names of a dotproxy without routes stay as they were.
func (n namer) inRoute(route string) namer {
	if route == DefaultRoute && n.format == StatsD {
		route = ""
	}
	n.route = route
	return n
}

// series returns metric with tags, formatted. In dogstatsd format the tags
// become "key:value" strings. In statsd format each tag's value, sanitised,
// is appended to the name as one more dotted word, in the order given.
func (n namer) series(metric string, tags ...tag) series {
	if n.route != "" {
		tags = withRoute(tags, n.route)
	}
	name := n.prefix + "." + metric
	if n.format == StatsD {
		for _, t := range tags {
			name += "." + foldValue(t.value)
		}
		return series{name: name}
	}
	s := series{name: name, tags: make([]string, 0, len(tags))}
	for _, t := range tags {
		s.tags = append(s.tags, t.key+":"+tagValue(t.value))
	}
	return s
}

// withRoute returns tags with a route tag inserted before each upstream
// tag, in a new slice.
func withRoute(tags []tag, route string) []tag {
	out := make([]tag, 0, len(tags)+1)
	for _, t := range tags {
		if t.key == "upstream" {
			out = append(out, tag{"route", route})
		}
		out = append(out, t)
	}
	return out
}

// foldValue makes v one word of a statsd metric name: every byte other
// than a letter, digit, '_' or '-' becomes '_', so "dns.google:853" becomes
// "dns_google_853". Empty becomes "none".
func foldValue(v string) string {
	if v == "" {
		return noUpstream
	}
	b := []byte(v)
	for i, c := range b {
		if !nameByte(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

// tagValue makes v safe inside a DogStatsD tag list, replacing the bytes
// that delimit tags, fields and lines with '_'. Empty becomes "none".
func tagValue(v string) string {
	if v == "" {
		return noUpstream
	}
	b := []byte(v)
	for i, c := range b {
		switch c {
		case ',', '|', '#', '\n', ' ':
			b[i] = '_'
		}
	}
	return string(b)
}
