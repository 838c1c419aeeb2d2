package balance

import (
	"time"
)

// maxLevel bounds the backoff exponent far above any useful cap, so that
// the shift cannot overflow.
const maxLevel = 30

// fail records a failed exchange with h and, if h was up, marks it down and
// schedules its first probe.
func (b *Balancer) fail(h *host) {
	h.lastFail.Store(time.Now().UnixNano())
	h.slowRun.Store(0)
	if h.state.Load() == stateDown {
		return
	}
	h.mu.Lock()
	switch h.state.Load() {
	case stateDown:
		h.mu.Unlock()
		return
	case stateProbation:
		// Failed again soon after coming back: wait longer this time.
		h.level = min(h.level+1, maxLevel)
	default:
		h.level = 0
	}
	h.setStateLocked(stateDown)
	gen := h.gen
	b.scheduleLocked(h, b.backoff(h.level), func() { b.probe(h, gen) })
	h.mu.Unlock()
	h.obs.HealthChanged(false)
}

// answeredWhileDown brings h back after a client query that was sent to it
// while it was down (every upstream being down) got an answer.
func (b *Balancer) answeredWhileDown(h *host) {
	h.mu.Lock()
	if h.state.Load() != stateDown {
		h.mu.Unlock()
		return
	}
	b.recoverLocked(h)
	h.mu.Unlock()
	h.obs.HealthChanged(true)
}

// probeAnswered brings h back after the probe started in generation gen got
// an answer, unless h's health has changed since.
func (b *Balancer) probeAnswered(h *host, gen uint64) {
	h.mu.Lock()
	if h.gen != gen || h.state.Load() != stateDown {
		h.mu.Unlock()
		return
	}
	b.recoverLocked(h)
	h.mu.Unlock()
	h.obs.HealthChanged(true)
}

// recoverLocked moves h from down into probation. h.mu must be held.
func (b *Balancer) recoverLocked(h *host) {
	h.setStateLocked(stateProbation)
	gen := h.gen
	b.scheduleLocked(h, b.cfg.ProbeResetAfter, func() { b.endProbation(h, gen) })
}

// endProbation clears h's record once it has worked for ProbeResetAfter.
func (b *Balancer) endProbation(h *host, gen uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen == gen && h.state.Load() == stateProbation {
		h.level = 0
		h.setStateLocked(stateUp)
	}
}

// probe sends the probe query to h, which is down; probed takes its end.
// The probe counts in b.wg until then, so that Close waits for it.
func (b *Balancer) probe(h *host, gen uint64) {
	b.wg.Add(1)
	h.up.Start(b.probeMsg, time.Now().Add(b.cfg.ProbeTimeout), &prober{b: b, h: h, gen: gen})
}

// prober is the Done of one probe.
type prober struct {
	b   *Balancer
	h   *host
	gen uint64
}

// ExchangeDone brings the probed upstream back on any answer, or schedules
// the next probe with a doubled wait.
func (p *prober) ExchangeDone(_ []byte, err error) {
	defer p.b.wg.Done()
	p.b.probed(p.h, p.gen, err)
}

func (b *Balancer) probed(h *host, gen uint64, err error) {
	if err == nil {
		b.probeAnswered(h, gen)
		return
	}
	h.lastFail.Store(time.Now().UnixNano())
	h.noteError(err)
	h.mu.Lock()
	if h.gen != gen || h.state.Load() != stateDown {
		h.mu.Unlock()
		return
	}
	h.unreachable.Store(true)
	h.level = min(h.level+1, maxLevel)
	wait := b.backoff(h.level)
	allDown := b.allUnreachable()
	if allDown {
		wait = min(wait, AllDownProbeEvery)
	}
	b.scheduleLocked(h, wait, func() { b.probe(h, gen) })
	h.mu.Unlock()
	if allDown {
		b.hurryProbes()
	}
}

// allUnreachable reports whether every upstream is down with a failed
// probe since: no client query can go anywhere, and only the probes can
// bring one back.
func (b *Balancer) allUnreachable() bool {
	for i := range b.hosts {
		if !b.hosts[i].unreachable.Load() {
			return false
		}
	}
	return true
}

// hurryProbes brings forward to AllDownProbeEvery from now each pending
// probe due later, scheduled before every upstream was unreachable. A probe
// under way is left alone: its end schedules the next one at that pace.
func (b *Balancer) hurryProbes() {
	soon := time.Now().Add(AllDownProbeEvery)
	for i := range b.hosts {
		h := &b.hosts[i]
		h.mu.Lock()
		// Stop fails if the timer has fired: its probe is starting.
		if h.state.Load() == stateDown && h.timer != nil && h.due.After(soon) && h.timer.Stop() {
			b.wg.Done() // the stopped timer's count
			h.timer = nil
			gen := h.gen
			b.scheduleLocked(h, AllDownProbeEvery, func() { b.probe(h, gen) })
		}
		h.mu.Unlock()
	}
}

// backoff returns the wait before the probe at the given level.
func (b *Balancer) backoff(level int) time.Duration {
	d := FirstBackoff << level
	if d <= 0 || d > b.cfg.ProbeMaxBackoff {
		return b.cfg.ProbeMaxBackoff
	}
	return d
}

// setStateLocked moves h to state s, starting a new generation and dropping
// the timer of the old one. h.mu must be held.
func (h *host) setStateLocked(s int32) {
	h.gen++
	h.state.Store(s)
	h.changedLocked()
	h.unreachable.Store(false)
}

// scheduleLocked replaces h's pending timer with one that runs f after d,
// unless the Balancer is closed. The timer's run is counted in b.wg until f
// returns or the timer is stopped. h.mu must be held.
func (b *Balancer) scheduleLocked(h *host, d time.Duration, f func()) {
	b.stopTimerLocked(h)
	if b.closed.Load() {
		return
	}
	b.wg.Add(1)
	h.due = time.Now().Add(d)
	h.timer = time.AfterFunc(d, func() {
		defer b.wg.Done()
		f()
	})
}

// stopTimerLocked stops h's pending timer, if any. h.mu must be held.
func (b *Balancer) stopTimerLocked(h *host) {
	if h.timer != nil && h.timer.Stop() {
		b.wg.Done()
	}
	h.timer = nil
}
