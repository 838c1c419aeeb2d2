package main

import (
	"sync"
	"time"

	"github.com/dotproxy/dotproxy/balance"
	"github.com/dotproxy/dotproxy/upstream"
)

// Stopping is bounded: from SIGTERM or SIGINT to exit dotproxy takes at
// most Lameduck (the drain period, 0 by default, readiness.go), then
// QueryTimeout and a second, whatever the clients, the upstreams or the
// statsd server do, so that docker stop (10 s, with Lameduck 0) or an
// orchestrator's grace period (which must exceed the sum) never ends in
// SIGKILL. The queries in flight end by their
// own deadline, QueryTimeout; each later step has its share of the second
// and is left behind, not waited for, once that has passed: the process
// exits, which ends whatever was still running.
const (
	// answerGrace is how long past QueryTimeout the clients' side may take
	// to write its last answers, the SERVFAILs at the deadline included,
	// before the connections still open are closed.
	answerGrace = 150 * time.Millisecond
	// upstreamCloseWait bounds closing the upstream connections (each
	// TLS close_notify may wait 100 ms for a resolver that reads nothing)
	// and the balancer's probes.
	upstreamCloseWait = 250 * time.Millisecond
	// metricsCloseWait bounds the last metrics flush.
	metricsCloseWait = 300 * time.Millisecond
	// exitRoom is left of the second for the last log lines and the exit.
	exitRoom = 200 * time.Millisecond
	// logFlushWait bounds writing the log lines still queued (see
	// logQueue), inside exitRoom.
	logFlushWait = 150 * time.Millisecond
)

// The shares fit in the second: a negative constant converts to no uint,
// so the build fails if they do not.
const _ = uint(time.Second - answerGrace - upstreamCloseWait - metricsCloseWait - exitRoom)

// The log flush fits the exit's room.
const _ = uint(exitRoom - logFlushWait)

// closeUpstreams closes the pools, all at once, then the balancers (one a
// route), once the recycling under way has ended, and reports whether that
// was done within wait. Past it the closing goes on in the background,
// until the process exits.
func closeUpstreams(pools []*upstream.Pool, bals []*balance.Balancer, recycling *sync.WaitGroup, wait time.Duration) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		recycling.Wait()
		var wg sync.WaitGroup
		for _, p := range pools {
			wg.Go(func() { p.Close() })
		}
		wg.Wait()
		// The pools first: the probes and hedged attempts that a
		// balancer's Close waits for then end at once.
		for _, bal := range bals {
			bal.Close()
		}
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
