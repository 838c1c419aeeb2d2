package emit_test

import (
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/emit"
	"github.com/dotproxy/dotproxy/proxy"
)

// An upstream of a route carries the route's name as a tag; in statsd
// format, as a word just before the upstream's, except for the default
// route, whose names stay those of a dotproxy without routes. A route's own
// SERVFAILs (no upstream answered) count under the route, upstream:none,
// with no gauges.
func TestRouteTags(t *testing.T) {
	tests := []struct {
		name   string
		format emit.Format
		parse  func(string) (metric, error)
		want   map[string][]string
	}{
		{"dogstatsd", emit.DogStatsD, parseDogStatsD, map[string][]string{
			"dotproxy.query|c|rcode:NOERROR,route:corp,transport:udp,upstream:10.0.0.53:853":  {"1"},
			"dotproxy.query.rtt|ms|route:corp,transport:udp,upstream:10.0.0.53:853":           {"2.000000"},
			"dotproxy.query|c|rcode:SERVFAIL,route:corp,transport:udp,upstream:none":          {"1"},
			"dotproxy.query.rtt|ms|route:corp,transport:udp,upstream:none":                    {"4.000000"},
			"dotproxy.query|c|rcode:NOERROR,route:default,transport:tcp,upstream:1.1.1.1:853": {"1"},
			"dotproxy.query.rtt|ms|route:default,transport:tcp,upstream:1.1.1.1:853":          {"3.000000"},
			"dotproxy.query|c|rcode:REFUSED,transport:udp,upstream:none":                      {"1"},
			"dotproxy.query.rtt|ms|transport:udp,upstream:none":                               {"1.000000"},
			"dotproxy.upstream.handshake|ms|resumed:false,route:corp,upstream:10.0.0.53:853":  {"20.000000"},
			"dotproxy.upstream.cx_open|c|route:corp,upstream:10.0.0.53:853":                   {"1"},
			"dotproxy.upstream.retry|c|route:default,upstream:1.1.1.1:853":                    {"1"},
			"dotproxy.upstream.health_change|c|route:corp,state:down,upstream:10.0.0.53:853":  {"1"},
			"dotproxy.upstream.healthy|g|route:corp,upstream:10.0.0.53:853":                   {"0"},
			"dotproxy.upstream.healthy|g|route:default,upstream:1.1.1.1:853":                  {"1"},
			"dotproxy.query.request_size|h|transport:udp":                                     {"40", "40", "40"},
			"dotproxy.query.response_size|h|transport:udp":                                    {"90", "90", "90"},
			"dotproxy.query.request_size|h|transport:tcp":                                     {"40"},
			"dotproxy.query.response_size|h|transport:tcp":                                    {"90"},
		}},
		{"statsd", emit.StatsD, parseStatsD, map[string][]string{
			"dotproxy.query.udp.NOERROR.corp.10_0_0_53_853|c|":           {"1"},
			"dotproxy.query.rtt.udp.corp.10_0_0_53_853|ms|":              {"2.000"},
			"dotproxy.query.udp.SERVFAIL.corp.none|c|":                   {"1"},
			"dotproxy.query.rtt.udp.corp.none|ms|":                       {"4.000"},
			"dotproxy.query.tcp.NOERROR.1_1_1_1_853|c|":                  {"1"},
			"dotproxy.query.rtt.tcp.1_1_1_1_853|ms|":                     {"3.000"},
			"dotproxy.query.udp.REFUSED.none|c|":                         {"1"},
			"dotproxy.query.rtt.udp.none|ms|":                            {"1.000"},
			"dotproxy.upstream.handshake.corp.10_0_0_53_853.false|ms|":   {"20.000"},
			"dotproxy.upstream.cx_open.corp.10_0_0_53_853|c|":            {"1"},
			"dotproxy.upstream.retry.1_1_1_1_853|c|":                     {"1"},
			"dotproxy.upstream.health_change.corp.10_0_0_53_853.down|c|": {"1"},
			"dotproxy.upstream.healthy.corp.10_0_0_53_853|g|":            {"0"},
			"dotproxy.upstream.healthy.1_1_1_1_853|g|":                   {"1"},
			"dotproxy.query.request_size.udp|ms|":                        {"40", "40", "40"},
			"dotproxy.query.response_size.udp|ms|":                       {"90", "90", "90"},
			"dotproxy.query.request_size.tcp|ms|":                        {"40"},
			"dotproxy.query.response_size.tcp|ms|":                       {"90"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearDD(t)
			c := listenUDP(t)
			e := newEmitter(t, emit.Config{Addr: c.addr(), Format: tt.format})
			p := e.Proxy()
			corp, corpSelf := e.RouteUpstream("corp", "10.0.0.53:853"), e.RouteUpstream("corp", "")
			def := e.RouteUpstream(emit.DefaultRoute, "1.1.1.1:853")
			if e.RouteUpstream("corp", "10.0.0.53:853") != corp {
				t.Fatal("an upstream's metrics are not found by its route and name")
			}
			p.Answered(proxy.UDP, nil, 5, time.Millisecond, 40, 90)
			p.Answered(proxy.UDP, corp, 0, 2*time.Millisecond, 40, 90)
			p.Answered(proxy.TCP, def, 0, 3*time.Millisecond, 40, 90)
			p.Answered(proxy.UDP, corpSelf, 2, 4*time.Millisecond, 40, 90)
			corp.ConnOpened(20*time.Millisecond, false)
			corp.HealthChanged(false)
			def.Retried()
			if err := e.Flush(); err != nil {
				t.Fatal(err)
			}
			lines := c.until(hasAll(t, tt.want, "dotproxy.", tt.parse))
			checkSeries(t, byKey(t, lines, "dotproxy.", tt.parse), tt.want)
		})
	}
}
