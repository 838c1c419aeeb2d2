package balance

import (
	"time"
)

// State is an upstream's health, as Status reports it.
type State string

// The health states an upstream goes through (see Balancer).
const (
	// StateUp: answering, with no failure for ProbeResetAfter.
	StateUp State = "up"
	// StateProbation: answering again after being down, not yet for
	// ProbeResetAfter; it gets queries, and a failure sends it back down
	// with a longer wait before its next probe.
	StateProbation State = "probation"
	// StateDown: failed and not yet answered a probe; it gets no queries
	// unless every upstream is down.
	StateDown State = "down"
)

// stateNames maps host.state to its State.
var stateNames = [...]State{stateUp: StateUp, stateProbation: StateProbation, stateDown: StateDown}

// UpstreamStatus is one upstream as the Balancer sees it, for an operator
// who asks: is it up, since when, how fast, how often did it fail, and why
// last.
type UpstreamStatus struct {
	// Name is the upstream's name, its Observer's String.
	Name string
	// State is its health now.
	State State
	// Since is when it entered State: the Balancer's making if it never
	// changed.
	Since time.Time
	// Latency is the moving average of its answered attempts' time
	// (each new one weighs 1/8); zero until one was answered.
	Latency time.Duration
	// Answers counts the attempts it answered since the Balancer was made,
	// whatever the rcode; Failures those that failed or timed out. Probes
	// are in neither, nor are zone transfers.
	Answers, Failures int64
	// LastError is the error of its last failed attempt or probe; nil if
	// none failed. LastErrorAt is when it came.
	LastError   error
	LastErrorAt time.Time
}

// failure is a failed attempt or probe, kept for Status.
type failure struct {
	err error
	at  time.Time
}

// Status returns every upstream's status, in the order New was given them.
// It reads each upstream's counters and takes its health lock for a
// moment: it is for operators and health checks, not for every query.
func (b *Balancer) Status() []UpstreamStatus {
	out := make([]UpstreamStatus, len(b.hosts))
	for i := range b.hosts {
		h := &b.hosts[i]
		st := &out[i]
		st.Name = h.obs.String()
		h.mu.Lock()
		st.State = stateNames[h.state.Load()]
		st.Since = h.changed
		h.mu.Unlock()
		if st.Since.IsZero() {
			st.Since = b.made
		}
		st.Latency = time.Duration(h.latency.Load())
		st.Answers, st.Failures = h.answers.Load(), h.failures.Load()
		if f := h.lastErr.Load(); f != nil {
			st.LastError, st.LastErrorAt = f.err, f.at
		}
	}
	return out
}

// Changes returns a channel that receives a value after an upstream's
// health changes, for one reader that then calls Status: changes that come
// while a value waits unread are folded into it, and none ever blocks the
// Balancer.
func (b *Balancer) Changes() <-chan struct{} { return b.changes }

// tally counts the end of an attempt on h, and keeps its error if it
// failed. It costs an answered attempt one atomic add.
func (h *host) tally(err error) {
	if err == nil {
		h.answers.Add(1)
		return
	}
	h.failures.Add(1)
	h.noteError(err)
}

// noteError keeps err as h's last error.
func (h *host) noteError(err error) {
	h.lastErr.Store(&failure{err: err, at: time.Now()})
}

// changedLocked notes that h's state has just changed, and tells the
// reader of Changes without waiting for it. h.mu must be held.
func (h *host) changedLocked() {
	h.changed = time.Now()
	select {
	case h.changes <- struct{}{}:
	default:
	}
}
