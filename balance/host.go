package balance

import (
	"sync"
	"sync/atomic"
	"time"
)

// The health states of an upstream, kept in host.state.
const (
	// stateUp: answering, with no failure since ProbeResetAfter.
	stateUp int32 = iota
	// stateProbation: answering again after being down, not yet for
	// ProbeResetAfter. Every policy uses it; Availability prefers the
	// upstreams that are in stateUp.
	stateProbation
	// stateDown: failed and not yet answered a probe. No policy chooses
	// it; it gets client queries only when every candidate is down, and
	// then only until a probe of it has failed (see host.unreachable).
	stateDown
)

// maxSlowRun is how many attempts in a row may be slow (time out, or
// answer after Config.AttemptTimeout), with no quicker answer from the upstream
// in between, before it counts as failed. One slow name is normal at a
// recursive resolver; a run of them with nothing answered means that it is
// overloaded or stalled behind connections that still answer the pool's
// probes.
const maxSlowRun = 4

// latencyWeight is the inverse weight of a new sample in the moving average
// of latency: each sample moves the average 1/8 of the way to itself.
const latencyWeight = 8

// host is one upstream and the state balance keeps for it. The counters are
// read on every query and written without a lock; the health fields below
// mu change only on failures and recoveries. A host must not be copied.
type host struct {
	up  Upstream
	obs Observer // bound to up; names it

	state    atomic.Int32
	served   atomic.Int64 // attempts ever started, probes excluded
	latency  atomic.Int64 // moving average, in ns; 0 until measured
	lastFail atomic.Int64 // Unix ns of the last failure; 0 if none
	slowRun  atomic.Int32 // slow attempts in a row, with no quick answer since
	// unreachable is set while h is down and the last of its probes since
	// it went down has failed: it gets no client query at all then. It is
	// written under mu and cleared with every change of state.
	unreachable atomic.Bool

	// What Status reports and nothing decides on (status.go): the
	// counts cost one atomic add per attempt, the last error is stored
	// only when one fails.
	answers  atomic.Int64            // attempts answered, whatever the rcode
	failures atomic.Int64            // attempts failed or timed out
	lastErr  atomic.Pointer[failure] // the last attempt or probe that failed
	changes  chan<- struct{}         // the Balancer's, told of each health change

	mu sync.Mutex
	// level is the backoff exponent: the next wait is FirstBackoff<<level.
	level int
	// gen counts health transitions, so that a timer or probe started
	// under an older state does nothing.
	gen uint64
	// timer is the pending probe (while down) or the end of probation,
	// due at due.
	timer *time.Timer
	// changed is when state last changed; zero if it never has.
	changed time.Time
	due     time.Time

	// pad keeps the next host's hot counters off this one's cache line.
	_ [64]byte
}

// metric returns the value least compares.
func (h *host) metric(m metric) int64 {
	switch m {
	case byServed:
		return h.served.Load()
	case byLatency:
		return h.latency.Load()
	default:
		return int64(h.up.InFlight())
	}
}

// observe folds one latency sample into the moving average.
func (h *host) observe(d time.Duration) {
	sample := max(int64(d), 1)
	for {
		old := h.latency.Load()
		avg := sample
		if old != 0 {
			avg = max(old+(sample-old)/latencyWeight, 1)
		}
		if h.latency.CompareAndSwap(old, avg) {
			return
		}
	}
}
