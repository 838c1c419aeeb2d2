package emit_test

import (
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/emit"
	"github.com/dotproxy/dotproxy/proxy"
	"github.com/dotproxy/dotproxy/upstream"
)

const google = "dns.google:853"

// named is an upstream known by its name alone.
type named string

func (n named) String() string { return string(n) }

// poolFor returns a pool, never dialled, that reports to u, as serve wires
// them: the handle by which Answered finds u without a lookup by name.
func poolFor(tb testing.TB, u *emit.UpstreamMetrics) *upstream.Pool {
	tb.Helper()
	p, err := upstream.New(upstream.Config{Addr: google, Observer: u, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

// drive reports one of every event, some of them more than once. The
// answered queries name their upstream both ways: by its metrics, as the
// balancer hands them back, and by name alone; both count in the same
// series.
func drive(tb testing.TB, e *emit.Emitter) {
	p, u := e.Proxy(), e.Upstream(google)
	p.Answered(proxy.UDP, named(google), 0, 12500*time.Microsecond, 40, 120)
	for range 2 {
		p.Answered(proxy.UDP, u, 0, 12500*time.Microsecond, 40, 120)
	}
	p.Answered(proxy.TCP, nil, 2, 2*time.Millisecond, 30, 30)
	p.Dropped(proxy.UDP, proxy.DropShort)
	p.Malformed(proxy.TCP)
	p.Refused(proxy.UDP)
	p.Truncated()
	p.Failed(proxy.UDP, proxy.FailDeadline)
	p.Limited(proxy.UDP, proxy.LimitSlip)
	p.Limited(proxy.TCP, proxy.LimitRefused)
	u.ConnOpened(30*time.Millisecond, true)
	u.ConnClosed(upstream.CloseIdle)
	u.ConnFailed(upstream.StageVerify)
	u.Exchanged(5*time.Millisecond, 40, 120)
	u.Resent()
	u.Unmatched()
	u.Mismatched()
	u.Retried()
	u.Hedged()
	u.HealthChanged(false)
}

// wantDogStatsD is what drive sends in dogstatsd format with the tag
// env:test, by series key (see metric.key).
var wantDogStatsD = map[string][]string{
	"dotproxy.query|c|env:test,rcode:NOERROR,transport:udp,upstream:dns.google:853": {"3"},
	"dotproxy.query|c|env:test,rcode:SERVFAIL,transport:tcp,upstream:none":          {"1"},
	"dotproxy.query.rtt|ms|env:test,transport:udp,upstream:dns.google:853":          {"12.500000", "12.500000", "12.500000"},
	"dotproxy.query.rtt|ms|env:test,transport:tcp,upstream:none":                    {"2.000000"},
	"dotproxy.query.request_size|h|env:test,transport:udp":                          {"40", "40", "40"},
	"dotproxy.query.response_size|h|env:test,transport:udp":                         {"120", "120", "120"},
	"dotproxy.query.request_size|h|env:test,transport:tcp":                          {"30"},
	"dotproxy.query.response_size|h|env:test,transport:tcp":                         {"30"},
	"dotproxy.query.dropped|c|env:test,reason:short,transport:udp":                  {"1"},
	"dotproxy.query.malformed|c|env:test,transport:tcp":                             {"1"},
	"dotproxy.query.refused|c|env:test,transport:udp":                               {"1"},
	"dotproxy.query.truncated|c|env:test":                                           {"1"},
	"dotproxy.query.servfail|c|env:test,reason:deadline,transport:udp":              {"1"},
	"dotproxy.query.rate_limited|c|action:slip,env:test,transport:udp":              {"1"},
	"dotproxy.query.rate_limited|c|action:refused,env:test,transport:tcp":           {"1"},
	"dotproxy.upstream.cx_open|c|env:test,upstream:dns.google:853":                  {"1"},
	"dotproxy.upstream.handshake|ms|env:test,resumed:true,upstream:dns.google:853":  {"30.000000"},
	"dotproxy.upstream.cx_close|c|env:test,reason:idle,upstream:dns.google:853":     {"1"},
	"dotproxy.upstream.cx_error|c|env:test,stage:verify,upstream:dns.google:853":    {"1"},
	"dotproxy.upstream.latency|ms|env:test,upstream:dns.google:853":                 {"5.000000"},
	"dotproxy.upstream.resent|c|env:test,upstream:dns.google:853":                   {"1"},
	"dotproxy.upstream.unmatched|c|env:test,upstream:dns.google:853":                {"1"},
	"dotproxy.upstream.mismatched|c|env:test,upstream:dns.google:853":               {"1"},
	"dotproxy.upstream.retry|c|env:test,upstream:dns.google:853":                    {"1"},
	"dotproxy.upstream.hedge|c|env:test,upstream:dns.google:853":                    {"1"},
	"dotproxy.upstream.health_change|c|env:test,state:down,upstream:dns.google:853": {"1"},
	"dotproxy.upstream.healthy|g|env:test,upstream:dns.google:853":                  {"0"},
}

// wantStatsD is what drive sends in statsd format.
var wantStatsD = map[string][]string{
	"dotproxy.query.udp.NOERROR.dns_google_853|c|":           {"3"},
	"dotproxy.query.tcp.SERVFAIL.none|c|":                    {"1"},
	"dotproxy.query.rtt.udp.dns_google_853|ms|":              {"12.500", "12.500", "12.500"},
	"dotproxy.query.rtt.tcp.none|ms|":                        {"2.000"},
	"dotproxy.query.request_size.udp|ms|":                    {"40", "40", "40"},
	"dotproxy.query.response_size.udp|ms|":                   {"120", "120", "120"},
	"dotproxy.query.request_size.tcp|ms|":                    {"30"},
	"dotproxy.query.response_size.tcp|ms|":                   {"30"},
	"dotproxy.query.dropped.udp.short|c|":                    {"1"},
	"dotproxy.query.malformed.tcp|c|":                        {"1"},
	"dotproxy.query.refused.udp|c|":                          {"1"},
	"dotproxy.query.truncated|c|":                            {"1"},
	"dotproxy.query.servfail.udp.deadline|c|":                {"1"},
	"dotproxy.query.rate_limited.udp.slip|c|":                {"1"},
	"dotproxy.query.rate_limited.tcp.refused|c|":             {"1"},
	"dotproxy.upstream.cx_open.dns_google_853|c|":            {"1"},
	"dotproxy.upstream.handshake.dns_google_853.true|ms|":    {"30.000"},
	"dotproxy.upstream.cx_close.dns_google_853.idle|c|":      {"1"},
	"dotproxy.upstream.cx_error.dns_google_853.verify|c|":    {"1"},
	"dotproxy.upstream.latency.dns_google_853|ms|":           {"5.000"},
	"dotproxy.upstream.resent.dns_google_853|c|":             {"1"},
	"dotproxy.upstream.unmatched.dns_google_853|c|":          {"1"},
	"dotproxy.upstream.mismatched.dns_google_853|c|":         {"1"},
	"dotproxy.upstream.retry.dns_google_853|c|":              {"1"},
	"dotproxy.upstream.hedge.dns_google_853|c|":              {"1"},
	"dotproxy.upstream.health_change.dns_google_853.down|c|": {"1"},
	"dotproxy.upstream.healthy.dns_google_853|g|":            {"0"},
}

// checkSeries fails the test unless got has want's values for every
// series in want, in any order, and no series want lacks.
func checkSeries(t *testing.T, got, want map[string][]string) {
	t.Helper()
	for k, v := range want {
		g := slices.Sorted(slices.Values(got[k]))
		if !slices.Equal(g, slices.Sorted(slices.Values(v))) {
			t.Errorf("%s: got %q, want %q", k, g, v)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected series %s = %q", k, got[k])
		}
	}
}

func TestEmitter_formats(t *testing.T) {
	tests := []struct {
		name   string
		listen func(testing.TB) *collector
		format emit.Format
		single bool
		parse  func(string) (metric, error)
		want   map[string][]string
	}{
		{"dogstatsd over UDP", listenUDP, emit.DogStatsD, false, parseDogStatsD, wantDogStatsD},
		{"dogstatsd single values", listenUDP, emit.DogStatsD, true, parseDogStatsD, wantDogStatsD},
		{"dogstatsd over a Unix socket", listenUnix, emit.DogStatsD, false, parseDogStatsD, wantDogStatsD},
		{"statsd over UDP", listenUDP, emit.StatsD, false, parseStatsD, wantStatsD},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearDD(t)
			// In statsd format neither DD_ENV nor Tags may reach the wire.
			t.Setenv("DD_ENV", "prod")
			if tt.format == emit.DogStatsD {
				t.Setenv("DD_ENV", "")
			}
			c := tt.listen(t)
			e := newEmitter(t, emit.Config{Addr: c.addr(), Format: tt.format, Tags: []string{"env:test"}, SingleValue: tt.single})
			if !e.Enabled() {
				t.Fatal("Enabled() = false with an address")
			}
			drive(t, e)
			if err := e.Flush(); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			lines := c.until(hasAll(t, tt.want, "dotproxy.", tt.parse))
			checkSeries(t, byKey(t, lines, "dotproxy.", tt.parse), tt.want)

			// Extended aggregation packs the three samples into one line.
			rtt := 0
			for _, l := range lines {
				if strings.HasPrefix(l, "dotproxy.query.rtt") && strings.Contains(l, "udp") {
					rtt++
				}
			}
			want := 3
			if tt.format == emit.DogStatsD && !tt.single {
				want = 1
			}
			if rtt != want {
				t.Errorf("%d lines for the three UDP RTT samples, want %d", rtt, want)
			}
		})
	}
}

// TestAnsweredFindsUpstreamByHandle: an upstream's metrics, handed back by
// the balancer as the upstream that answered, count the answer in their own
// series, whatever the pool they watch is called: the series are found on
// the handle, not by a name.
func TestAnsweredFindsUpstreamByHandle(t *testing.T) {
	clearDD(t)
	c := listenUDP(t)
	e := newEmitter(t, emit.Config{Addr: c.addr(), Format: emit.StatsD})
	handle := e.Upstream("handle.test:853")
	handle.Watch(poolFor(t, handle)) // a pool whose String is google
	e.Proxy().Answered(proxy.UDP, handle, 0, time.Millisecond, 40, 120)
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := c.until(func(lines []string) bool {
		for _, l := range lines {
			if strings.HasPrefix(l, "dotproxy.query.") && strings.Contains(l, "|c") {
				return true
			}
		}
		return false
	})
	for _, l := range lines {
		if strings.HasPrefix(l, "dotproxy.query.") && strings.Contains(l, "|c") {
			if !strings.Contains(l, "handle_test") || strings.Contains(l, "google") {
				t.Fatalf("answered query counted as %q, want under handle.test:853", l)
			}
			return
		}
	}
}
