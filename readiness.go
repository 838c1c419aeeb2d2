package main

import (
	"github.com/dotproxy/dotproxy/emit"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dotproxy/dotproxy/balance"
	"github.com/dotproxy/dotproxy/internal/status"
	"github.com/dotproxy/dotproxy/proxy"
	"github.com/dotproxy/dotproxy/upstream"
)

// Orchestrators ask two questions apart. Liveness, `dotproxy healthcheck`:
// is the process serving? Any answer says so, SERVFAIL too, since a
// restart would not bring an upstream back. Readiness, `dotproxy
// healthcheck -ready`: should it get queries now? Not while every upstream
// of the default route is down, nor once it has been told to stop. Other
// routes leave readiness alone: each covers a few names, and a replica
// taken out of service for one of them would stop answering every other
// name too, while the other replicas, which share its upstreams, could not
// answer that one better.

// defaultRoute names the balancer every query goes to unless a route
// takes it.
const defaultRoute = emit.DefaultRoute

// Why a dotproxy is not ready, as healthcheck -ready prints and the log
// says.
const (
	reasonAllDown  = "every upstream of the default route is down"
	reasonStopping = "stopping: draining before shutting down"
)

// readiness tells whether dotproxy should get queries, and logs each time
// that changes. It is safe for concurrent use.
type readiness struct {
	bal *balance.Balancer // the default route's
	log *slog.Logger

	stopping atomic.Bool

	stopWatch chan struct{}
	stopOnce  sync.Once
	watching  sync.WaitGroup
}

func newReadiness(bal *balance.Balancer, log *slog.Logger) *readiness {
	return &readiness{bal: bal, log: log, stopWatch: make(chan struct{})}
}

// check reports whether dotproxy is ready, and if not, why.
func (r *readiness) check() (ready bool, reason string) {
	switch {
	case r.stopping.Load():
		return false, reasonStopping
	case allDown(r.bal.Status()):
		return false, reasonAllDown
	}
	return true, ""
}

func allDown(ups []balance.UpstreamStatus) bool {
	for _, u := range ups {
		if u.State != balance.StateDown {
			return false
		}
	}
	return len(ups) > 0
}

// watch logs, until stop, each change of readiness that the upstreams'
// health makes: a warning when every upstream is down, with why each
// failed last, and a line when one answers again.
func (r *readiness) watch() {
	r.watching.Go(func() {
		ready := true // every upstream starts up
		for {
			select {
			case <-r.stopWatch:
				return
			case <-r.bal.Changes():
			}
			ups := r.bal.Status()
			down := allDown(ups)
			switch {
			case down && ready:
				errs := make([]string, 0, len(ups))
				for _, u := range ups {
					if u.LastError != nil {
						errs = append(errs, u.LastError.Error())
					}
				}
				r.log.Warn("not ready: every upstream is down", "route", defaultRoute, "errors", errs)
			case !down && !ready:
				var back []string
				for _, u := range ups {
					if u.State != balance.StateDown {
						back = append(back, u.Name)
					}
				}
				r.log.Info("ready again: "+back[0]+" answered", "route", defaultRoute, "upstreams_up", back)
			}
			ready = !down
		}
	})
}

// stop ends watch and waits for it. It may be called more than once.
func (r *readiness) stop() {
	r.stopOnce.Do(func() { close(r.stopWatch) })
	r.watching.Wait()
}

// drain is the drain period (DOTPROXY_LAMEDUCK): dotproxy says at once
// that it is not ready, and goes on answering every query for d, so that
// a load balancer that polls readiness stops sending queries before the
// listeners close. It returns when d has passed. why is what stopped it.
func (r *readiness) drain(d time.Duration, why string) {
	r.stop()
	r.stopping.Store(true)
	if d <= 0 {
		return
	}
	r.log.Info("not ready: draining; queries are still answered until the drain period ends",
		"why", why, "lameduck", d.String())
	time.Sleep(d)
	r.log.Info("drain period over", "lameduck", d.String())
}

// statusRoute is one route, for the status: its name, its balancer, and
// its upstreams' pools in the balancer's order.
type statusRoute struct {
	name  string
	bal   *balance.Balancer
	pools []*upstream.Pool
}

// statusSource writes dotproxy's answer about itself (see statusformat.go).
type statusSource struct {
	started time.Time
	ready   *readiness
	routes  []statusRoute
}

var _ proxy.StatusSource = (*statusSource)(nil)

// StatusLines implements [proxy.StatusSource].
func (s *statusSource) StatusLines() []string { return s.report().Lines() }

// report gathers the status now: readiness, and each upstream of each
// route from its balancer and its pool.
func (s *statusSource) report() *status.Report {
	r := &status.Report{Version: version, Started: s.started, Now: time.Now()}
	r.Ready, r.Reason = s.ready.check()
	for _, rt := range s.routes {
		for i, st := range rt.bal.Status() {
			u := status.Upstream{
				Route: rt.name, Name: st.Name, State: string(st.State), Since: st.Since,
				Latency: st.Latency, Answers: st.Answers, Failures: st.Failures,
			}
			if i < len(rt.pools) {
				ps := rt.pools[i].Stats()
				u.Conns, u.InFlight = ps.Open, ps.InFlight
			}
			if st.LastError != nil {
				u.ErrorAt, u.LastError = st.LastErrorAt, st.LastError.Error()
			}
			r.Upstreams = append(r.Upstreams, u)
		}
	}
	return r
}
