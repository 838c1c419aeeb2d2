package balance

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The simulation behind the choice of DefaultPolicy. It runs the real
// Balancer on the fake clock of testing/synctest against three simulated
// upstreams in several scenarios, sends queries as a Poisson stream, and
// reports the latency clients see, the queries that failed and each
// upstream's share. Rerun it with
//
//	go test ./balance/ -run TestSimulation -v
//
// Every number comes from seeded generators and virtual time, so a rerun
// gives the same table give or take the order goroutines run in.

// simModel is how one simulated upstream handles a query sent at virtual
// time at (since the start) while inflight queries are outstanding on it: it
// answers after the returned delay, or fails after it when fail is set, or
// never answers when stall is set.
type simModel func(r *rand.Rand, at time.Duration, inflight int) (d time.Duration, fail, stall bool)

// lognormal returns a latency with the given median and spread.
func lognormal(r *rand.Rand, median time.Duration, sigma float64) time.Duration {
	return time.Duration(float64(median) * math.Exp(sigma*r.NormFloat64()))
}

func steady(median time.Duration) simModel {
	return func(r *rand.Rand, _ time.Duration, _ int) (time.Duration, bool, bool) {
		return lognormal(r, median, 0.5), false, false
	}
}

// spiky answers like steady, except that a share of queries takes about a
// second (a cache miss behind a slow authoritative server).
func spiky(median time.Duration, share float64) simModel {
	return func(r *rand.Rand, _ time.Duration, _ int) (time.Duration, bool, bool) {
		if r.Float64() < share {
			return lognormal(r, time.Second, 0.3), false, false
		}
		return lognormal(r, median, 0.5), false, false
	}
}

// loaded slows down with the queries it already holds: a resolver near its
// capacity.
func loaded(median time.Duration, perQuery float64) simModel {
	return func(r *rand.Rand, _ time.Duration, inflight int) (time.Duration, bool, bool) {
		return time.Duration(float64(lognormal(r, median, 0.5)) * (1 + perQuery*float64(inflight))), false, false
	}
}

// outage behaves like base except between from and to, when it refuses
// connections (after 1 ms) or, with silent set, never answers.
func outage(base simModel, from, to time.Duration, silent bool) simModel {
	return func(r *rand.Rand, at time.Duration, inflight int) (time.Duration, bool, bool) {
		if at >= from && at < to {
			return time.Millisecond, !silent, silent
		}
		return base(r, at, inflight)
	}
}

// flapping refuses connections for one second in every four.
func flapping(base simModel) simModel {
	return func(r *rand.Rand, at time.Duration, inflight int) (time.Duration, bool, bool) {
		if at%(4*time.Second) >= 3*time.Second {
			return time.Millisecond, true, false
		}
		return base(r, at, inflight)
	}
}

// simUpstream is an Upstream driven by a simModel.
type simUpstream struct {
	name  string
	model simModel
	start time.Time

	mu       sync.Mutex
	r        *rand.Rand
	inflight int
}

func (s *simUpstream) String() string { return s.name }

func (s *simUpstream) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight
}

func (s *simUpstream) Start(q []byte, deadline time.Time, done Done) {
	go func() { done.ExchangeDone(s.Exchange(q, deadline)) }()
}

func (s *simUpstream) StartHeld(q []byte, deadline time.Time, done Done) { s.Start(q, deadline, done) }

func (s *simUpstream) Flush() {}

func (s *simUpstream) Exchange(q []byte, deadline time.Time) ([]byte, error) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	s.mu.Lock()
	d, fail, stall := s.model(s.r, time.Since(s.start), s.inflight)
	s.inflight++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inflight--
		s.mu.Unlock()
	}()
	if stall {
		// A stalled resolver's connection is retired by the pool after
		// its attempt timeout, which fails the attempt.
		return silentFor(simAttemptTimeout)(ctx, q)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		if fail {
			return nil, errRefused
		}
		return reply(q, 0), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// countingObserver counts the attempts beyond the first, retries and
// hedges, of every upstream it is bound to.
type countingObserver struct {
	n *atomic.Int64
	NopObserver
}

func (c countingObserver) Retried() { c.n.Add(1) }
func (c countingObserver) Hedged()  { c.n.Add(1) }

type simScenario struct {
	name   string
	models [3]simModel
}

// In every scenario the odd upstream is u0, the first in the list, as an
// operator who does not know which resolver will misbehave might list it.
var simScenarios = []simScenario{
	{"equal", [3]simModel{steady(20 * ms), steady(20 * ms), steady(20 * ms)}},
	{"one_slow", [3]simModel{steady(80 * ms), steady(20 * ms), steady(20 * ms)}},
	{"mixed_rtt", [3]simModel{steady(40 * ms), steady(25 * ms), steady(10 * ms)}},
	{"spikes", [3]simModel{spiky(20*ms, 0.02), steady(20 * ms), steady(20 * ms)}},
	{"one_loaded", [3]simModel{loaded(15*ms, 0.3), steady(20 * ms), steady(20 * ms)}},
	{"one_flapping", [3]simModel{flapping(steady(20 * ms)), steady(20 * ms), steady(20 * ms)}},
	{"one_stalls", [3]simModel{outage(steady(20*ms), 3*time.Second, 7*time.Second, true), steady(20 * ms), steady(20 * ms)}},
}

const ms = time.Millisecond

// simResult is what one policy achieved in one scenario.
type simResult struct {
	p50, p99, p999 time.Duration
	failed         int
	extra          float64 // retries and hedges per query
	share          [3]float64
}

const (
	simRate     = 300 // queries per virtual second
	simDuration = 8 * time.Second
	// simTimeout is each query's deadline, DOTPROXY_QUERY_TIMEOUT's
	// default.
	simTimeout = 4 * time.Second
	// simAttemptTimeout is DOTPROXY_UPSTREAM_ATTEMPT_TIMEOUT's default:
	// how long the pool waits on a silent connection.
	simAttemptTimeout = 1500 * time.Millisecond
)

// simQuery is one client query of a simulation run.
type simQuery struct {
	at   time.Duration // when it was sent, since the start
	took time.Duration // until its answer or its error
	err  error
	by   int // the upstream that answered; -1 on error
}

// simulate runs one scenario under one policy and returns the outcome.
func simulate(t *testing.T, sc simScenario, cfg Config, seed uint64) simResult {
	var res simResult
	qs, extra := runSim(t, sc, cfg, seed)
	var lat []time.Duration
	var answeredBy [3]int
	for _, q := range qs {
		if q.err != nil {
			res.failed++
			continue
		}
		lat = append(lat, q.took)
		answeredBy[q.by]++
	}
	slices.Sort(lat)
	pct := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
	res.p50, res.p99, res.p999 = pct(0.5), pct(0.99), pct(0.999)
	res.extra = float64(extra) / float64(len(qs))
	for i, n := range answeredBy {
		res.share[i] = float64(n) / float64(len(lat))
	}
	return res
}

// runSim runs one scenario under one policy and returns every query, and
// the retries and hedges they took.
func runSim(t *testing.T, sc simScenario, cfg Config, seed uint64) (qs []simQuery, extraAttempts int64) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var extra atomic.Int64
		ms := make([]Member, 3)
		sims := make([]*simUpstream, 3)
		for i, m := range sc.models {
			sims[i] = &simUpstream{
				name: fmt.Sprintf("u%d", i), model: m, start: start,
				r: rand.New(rand.NewPCG(seed, uint64(i))),
			}
			ms[i] = Member{Upstream: sims[i], Observer: countingObserver{&extra, NopObserver{sims[i].name}}}
		}
		b, err := newBalancer(ms, cfg, seeded(seed))
		if err != nil {
			t.Fatal(err)
		}
		arrivals := rand.New(rand.NewPCG(seed, 99))
		var mu sync.Mutex
		var wg sync.WaitGroup
		for time.Since(start) < simDuration {
			time.Sleep(time.Duration(arrivals.ExpFloat64() * float64(time.Second) / simRate))
			wg.Go(func() {
				t0 := time.Now()
				_, up, err := b.Resolve(testQuery, t0.Add(simTimeout))
				q := simQuery{at: t0.Sub(start), took: time.Since(t0), err: err, by: -1}
				if err == nil {
					q.by = int(up.String()[1] - '0')
				}
				mu.Lock()
				defer mu.Unlock()
				qs = append(qs, q)
			})
		}
		wg.Wait()
		b.Close()
		extraAttempts = extra.Load()
	})
	return qs, extraAttempts
}

// TestSimulation runs every policy through every scenario, logs the table,
// and checks what every policy must achieve: no client query fails in any
// scenario, thanks to health and retries.
func TestSimulation(t *testing.T) {
	var table strings.Builder
	simHeader(&table, "policy")
	for _, sc := range simScenarios {
		for _, p := range Policies {
			r := simulate(t, sc, Config{Policy: p, MaxRetries: 2}, 7)
			simRow(&table, sc.name, string(p), r)
			if r.failed != 0 {
				t.Errorf("%s/%s: %d client queries failed", sc.name, p, r.failed)
			}
		}
	}
	t.Log(table.String())
}

// TestSimulationHedge runs the default policy with and without hedging.
func TestSimulationHedge(t *testing.T) {
	var table strings.Builder
	simHeader(&table, "hedge_after")
	for _, sc := range simScenarios {
		for _, h := range []time.Duration{0, 50 * ms, 100 * ms} {
			r := simulate(t, sc, Config{MaxRetries: 2, HedgeAfter: h}, 7)
			simRow(&table, sc.name, h.String(), r)
			if r.failed != 0 {
				t.Errorf("%s/hedge %v: %d client queries failed", sc.name, h, r.failed)
			}
		}
	}
	t.Log(table.String())
}

func simHeader(w *strings.Builder, what string) {
	fmt.Fprintf(w, "\n| %s | %s | %s | %s | %s | %s | %s | %s |\n|---|---|--:|--:|--:|--:|--:|---|\n",
		"scenario", what, "p50", "p99", "p99.9", "failed", "extra", "share u0/u1/u2")
}

func simRow(w *strings.Builder, scenario, what string, r simResult) {
	round := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(ms)) }
	fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %d | %.1f%% | %.2f/%.2f/%.2f |\n",
		scenario, what, round(r.p50), round(r.p99), round(r.p999), r.failed, 100*r.extra,
		r.share[0], r.share[1], r.share[2])
}

// The outage of TestSimulationAllDown: every upstream fails from 1 s to 5 s.
const (
	allDownFrom = 1 * time.Second
	allDownTo   = 5 * time.Second
)

// allDownScenarios take every upstream out at once, refusing connections
// or silent.
var allDownScenarios = []simScenario{
	{"all_refuse", [3]simModel{
		outage(steady(20*ms), allDownFrom, allDownTo, false),
		outage(steady(20*ms), allDownFrom, allDownTo, false),
		outage(steady(20*ms), allDownFrom, allDownTo, false),
	}},
	{"all_stall", [3]simModel{
		outage(steady(20*ms), allDownFrom, allDownTo, true),
		outage(steady(20*ms), allDownFrom, allDownTo, true),
		outage(steady(20*ms), allDownFrom, allDownTo, true),
	}},
}

// TestSimulationAllDown runs the default policy through an outage of every
// upstream at once and checks what clients see: answers before it; once
// every upstream has failed a probe, SERVFAIL at once (ErrAllDown, no
// virtual time at all) rather than at the query's deadline; answers again
// within a probe's time and AllDownProbeEvery of the upstreams' return.
func TestSimulationAllDown(t *testing.T) {
	var table strings.Builder
	fmt.Fprintf(&table, "\n| %s | %s | %s | %s | %s |\n|---|--:|--:|--:|--:|\n",
		"scenario", "failed", "at once", "slowest failure", "last failure after the return")
	// The last probe before the return may still fail, by the silence
	// detection's simAttemptTimeout at most; the next comes at most
	// AllDownProbeEvery later, and a query sent then is answered.
	recovered := allDownTo + simAttemptTimeout + AllDownProbeEvery
	for _, sc := range allDownScenarios {
		qs, _ := runSim(t, sc, Config{MaxRetries: 2}, 7)
		failed, atOnce := 0, 0
		var slowest, lastAfter time.Duration
		for _, q := range qs {
			if q.err == nil {
				continue
			}
			failed++
			slowest = max(slowest, q.took)
			lastAfter = max(lastAfter, q.at-allDownTo)
			if q.at < allDownFrom || q.at >= recovered {
				t.Errorf("%s: a query sent at %v failed (%v)", sc.name, q.at, q.err)
			}
			if q.err == ErrAllDown {
				atOnce++
				if q.took != 0 {
					t.Errorf("%s: ErrAllDown after %v, want at once", sc.name, q.took)
				}
			}
		}
		if atOnce == 0 {
			t.Errorf("%s: no query failed at once", sc.name)
		}
		fmt.Fprintf(&table, "| %s | %d | %d | %.1f ms | %.0f ms |\n", sc.name, failed, atOnce,
			float64(slowest)/float64(ms), float64(lastAfter)/float64(ms))
	}
	t.Log(table.String())
}
