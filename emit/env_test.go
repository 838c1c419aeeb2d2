package emit_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/emit"
	"github.com/dotproxy/dotproxy/proxy"
	"github.com/dotproxy/dotproxy/upstream"
)

// TestNew_off checks that with no address and no agent variables the
// Emitter sends nothing and costs nothing to call.
func TestNew_off(t *testing.T) {
	clearDD(t)
	for _, f := range []emit.Format{emit.DogStatsD, emit.StatsD} {
		t.Run(string(f), func(t *testing.T) {
			e := newEmitter(t, emit.Config{Format: f})
			if e.Enabled() {
				t.Fatal("Enabled() = true with no address")
			}
			drive(t, e)
			e.Upstream(google).Watch(fakePool{1, 2})
			if err := e.Flush(); err != nil {
				t.Fatalf("Flush: %v", err)
			}
		})
	}
}

// TestNew_ddAgentFromEnv checks that an empty address lets the Datadog
// client find the agent through DD_AGENT_HOST and DD_DOGSTATSD_PORT, adds
// the DD_ENV, DD_SERVICE and DD_VERSION tags, and that statsd format
// ignores all of them.
func TestNew_ddAgentFromEnv(t *testing.T) {
	clearDD(t)
	c := listenUDP(t)
	host, port, _ := net.SplitHostPort(c.addr())
	t.Setenv("DD_AGENT_HOST", host)
	t.Setenv("DD_DOGSTATSD_PORT", port)
	t.Setenv("DD_ENV", "staging")
	t.Setenv("DD_SERVICE", "dns")
	t.Setenv("DD_VERSION", "1.2")

	if e := newEmitter(t, emit.Config{Format: emit.StatsD}); e.Enabled() {
		t.Fatal("statsd format with no address: Enabled() = true, want the DD_* variables ignored")
	}
	e := newEmitter(t, emit.Config{})
	if !e.Enabled() {
		t.Fatal("Enabled() = false with DD_AGENT_HOST set")
	}
	e.Proxy().Truncated()
	if err := e.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	want := map[string][]string{"dotproxy.query.truncated|c|env:staging,service:dns,version:1.2": {"1"}}
	lines := c.until(hasAll(t, want, "dotproxy.", parseDogStatsD))
	checkSeries(t, byKey(t, lines, "dotproxy.", parseDogStatsD), want)
}

// fakePool reports fixed pool stats.
type fakePool struct{ open, inFlight int }

func (p fakePool) Stats() upstream.Stats { return upstream.Stats{Open: p.open, InFlight: p.inFlight} }

var _ emit.PoolStats = (*upstream.Pool)(nil)

func TestUpstreamMetrics_Watch(t *testing.T) {
	clearDD(t)
	c := listenUDP(t)
	e := newEmitter(t, emit.Config{Addr: c.addr(), Format: emit.StatsD})
	e.Upstream("a:853").Watch(fakePool{open: 3, inFlight: 7})
	e.Upstream("b:853").Watch(fakePool{open: -1, inFlight: 0})
	e.Upstream("b:853").HealthChanged(false)
	if err := e.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	want := map[string][]string{
		"dotproxy.upstream.cx_active.a_853|g|":          {"3"},
		"dotproxy.upstream.inflight.a_853|g|":           {"7"},
		"dotproxy.upstream.healthy.a_853|g|":            {"1"},
		"dotproxy.upstream.cx_active.b_853|g|":          {"0"}, // never negative
		"dotproxy.upstream.inflight.b_853|g|":           {"0"},
		"dotproxy.upstream.healthy.b_853|g|":            {"0"},
		"dotproxy.upstream.health_change.b_853.down|c|": {"1"},
	}
	lines := c.until(hasAll(t, want, "dotproxy.", parseStatsD))
	checkSeries(t, byKey(t, lines, "dotproxy.", parseStatsD), want)
}

// TestEmitter_serverDown checks that a statsd server that is not there
// neither blocks the observers nor fails Flush and Close, in both formats.
func TestEmitter_serverDown(t *testing.T) {
	clearDD(t)
	for _, f := range []emit.Format{emit.DogStatsD, emit.StatsD} {
		t.Run(string(f), func(t *testing.T) {
			// A port that was free a moment ago: writes to it are refused.
			c := listenUDP(t)
			addr := c.addr()
			c.conn.Close()
			logger, logged := newTestLogger()
			e := newEmitter(t, emit.Config{Addr: addr, Format: f, Logger: logger})

			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := range 20000 {
					e.Proxy().Answered(proxy.UDP, named(google), 0, time.Millisecond, 40, 120)
					if i%1000 == 0 {
						_ = e.Flush()
					}
				}
			}()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("observers blocked with the statsd server down")
			}
			if out := logged(); strings.Count(out, "\n") > 1 {
				t.Errorf("more than one log line about send failures within 10s:\n%s", out)
			}
		})
	}
}

// TestEmitter_afterClose checks that events reported after Close, as by
// queries still in flight at shutdown, are dropped without harm.
func TestEmitter_afterClose(t *testing.T) {
	clearDD(t)
	for _, f := range []emit.Format{emit.DogStatsD, emit.StatsD} {
		t.Run(string(f), func(t *testing.T) {
			c := listenUDP(t)
			e, err := emit.New(emit.Config{Addr: c.addr(), Format: f, FlushInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			e.Upstream(google).Watch(fakePool{1, 1})
			e.Upstream(google).Watch(nil)
			if err := e.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			drive(t, e)
			if err := e.Flush(); err != nil {
				t.Fatalf("Flush after Close: %v", err)
			}
			if err := e.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
		})
	}
}
