package main_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/miekg/dns"
)

// groupServer runs a DoT server that answers every question with a TXT
// record holding group, and AXFR with records A records, so that an answer
// says which route's upstream gave it.
func groupServer(t *testing.T, group string, records int) *dottest.Server {
	t.Helper()
	return dottest.Start(t, dottest.Options{
		Handler: func(q *dns.Msg) *dns.Msg {
			a := new(dns.Msg)
			a.SetReply(q)
			if len(q.Question) == 1 {
				a.Answer = []dns.RR{&dns.TXT{
					Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
					Txt: []string{group},
				}}
			}
			return a
		},
		Stream: func(q *dns.Msg) []*dns.Msg {
			if len(q.Question) != 1 || q.Question[0].Qtype != dns.TypeAXFR {
				return nil
			}
			return dottest.ZoneTransfer(q, records, 10)
		},
	})
}

// routedEnv starts the servers of three routes, the default, corp and lab,
// and returns the settings that send queries to them, as a compose file
// would give them, with one CA bundle trusting every server.
func routedEnv(t *testing.T) (map[string]string, map[string]*dottest.Server) {
	t.Helper()
	srvs := map[string]*dottest.Server{
		"default": groupServer(t, "default", 3),
		"corp":    groupServer(t, "corp", 5),
		"lab":     groupServer(t, "lab", 7),
	}
	var bundle []byte
	for _, s := range srvs {
		bundle = append(bundle, s.CA.PEM...)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, bundle, 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"DOTPROXY_TLS_CA_FILE":          ca,
		"DOTPROXY_UPSTREAMS":            srvs["default"].Addr + "#dns.test",
		"DOTPROXY_ROUTE_CORP_DOMAINS":   "corp.example,10.in-addr.arpa",
		"DOTPROXY_ROUTE_CORP_UPSTREAMS": srvs["corp"].Addr + "#dns.test",
		"DOTPROXY_ROUTE_CORP_POLICY":    "failover",
		"DOTPROXY_ROUTE_LAB_DOMAINS":    "Lab.Corp.Example.,168.192.in-addr.arpa",
		"DOTPROXY_ROUTE_LAB_UPSTREAMS":  srvs["lab"].Addr + "#dns.test",
		// Retries and probes must not blur which route failed.
		"DOTPROXY_MAX_RETRIES":         "0",
		"DOTPROXY_UPSTREAM_WARM_CONNS": "0",
	}, srvs
}

// statsdLines listens for DogStatsD datagrams on loopback and hands each
// line on.
func statsdLines(t *testing.T) (string, *seenLines) {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			for _, l := range strings.Split(string(buf[:n]), "\n") {
				select {
				case lines <- l:
				default: // the test has what it waits for, or failed
				}
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return conn.LocalAddr().String(), &seenLines{recv: lines}
}

// seenLines are the metric lines received so far, and those to come.
type seenLines struct {
	recv <-chan string
	seen []string
}

// awaitLine waits for a line, received before or after, holding every one
// of parts.
func awaitLine(t *testing.T, lines *seenLines, parts ...string) {
	t.Helper()
	has := func(l string) bool {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				return false
			}
		}
		return true
	}
	for _, l := range lines.seen {
		if has(l) {
			return
		}
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l := <-lines.recv:
			lines.seen = append(lines.seen, l)
			if has(l) {
				return
			}
		case <-timeout:
			t.Fatalf("no metric line with %q within 10s", parts)
		}
	}
}

// Through the whole binary, configured as a compose file would: each query
// reaches its route's upstreams, over UDP and TCP; zone transfers follow
// the route; the metrics of each route's upstreams carry its name; and a
// route whose upstream is gone fails its own queries alone, with its
// SERVFAILs counted against it.
func TestRoutesEndToEnd(t *testing.T) {
	env, srvs := routedEnv(t)
	addr, lines := statsdLines(t)
	env["DOTPROXY_STATSD_ADDR"] = addr
	env["DOTPROXY_STATSD_FLUSH_INTERVAL"] = "100ms"
	p := startProxy(t, env)

	for name, want := range map[string]string{
		"www.corp.example":         "corp",
		"WWW.CORP.EXAMPLE":         "corp",
		"db.lab.corp.example":      "lab",
		"evilcorp.example":         "default",
		"4.3.2.10.in-addr.arpa":    "corp",
		"1.0.168.192.in-addr.arpa": "lab",
		"1.0.0.127.in-addr.arpa":   "default",
		"www.example.org":          "default",
	} {
		for _, network := range []string{"udp", "tcp"} {
			a := ask(t, network, p.addr, name, dns.TypeTXT)
			if len(a.Answer) != 1 || a.Answer[0].(*dns.TXT).Txt[0] != want {
				t.Fatalf("%s %s answered by %v, want %s", network, name, a.Answer, want)
			}
		}
	}

	for zone, records := range map[string]int{"corp.example.": 5, "lab.corp.example.": 7, "example.org.": 3} {
		m := new(dns.Msg)
		m.SetAxfr(zone)
		tr := &dns.Transfer{DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second}
		envs, err := tr.In(m, p.addr)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for e := range envs {
			if e.Error != nil {
				t.Fatalf("AXFR %s: %v", zone, e.Error)
			}
			for _, rr := range e.RR {
				if rr.Header().Rrtype == dns.TypeA {
					got++
				}
			}
		}
		if got != records {
			t.Fatalf("AXFR %s: %d records, want %d", zone, got, records)
		}
	}

	awaitLine(t, lines, "dotproxy.query:", "route:corp", "upstream:"+srvs["corp"].Addr, "rcode:NOERROR")
	awaitLine(t, lines, "dotproxy.upstream.latency:", "route:lab", "upstream:"+srvs["lab"].Addr)
	awaitLine(t, lines, "dotproxy.query:", "route:default", "upstream:"+srvs["default"].Addr)

	srvs["lab"].Close()
	if a := ask(t, "udp", p.addr, "db.lab.corp.example", dns.TypeTXT); a.Rcode != dns.RcodeServerFailure {
		t.Fatalf("lab's upstream gone: %s", dns.RcodeToString[a.Rcode])
	}
	awaitLine(t, lines, "dotproxy.query:", "route:lab", "upstream:none", "rcode:SERVFAIL")
	awaitLine(t, lines, "dotproxy.upstream.healthy:0", "route:lab")
	for name, want := range map[string]string{"www.corp.example": "corp", "www.example.org": "default"} {
		a := ask(t, "udp", p.addr, name, dns.TypeTXT)
		if len(a.Answer) != 1 || a.Answer[0].(*dns.TXT).Txt[0] != want {
			t.Fatalf("with lab's upstream gone, %s answered by %v, want %s", name, a.Answer, want)
		}
	}

	// The status has a row per route and upstream; lab's is down, and
	// the replica stays ready, since the default route answers.
	code, out, stderr := run(t, p.addr, "status")
	if code != 0 || stderr != "" || !strings.HasSuffix(strings.SplitN(out, "\n", 2)[0], ", ready") {
		t.Fatalf("status: exit %d, stderr %q, stdout:\n%s", code, stderr, out)
	}
	states := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[1] != "UPSTREAM" {
			states[f[0]+" "+f[1]] = f[2]
		}
	}
	for route, want := range map[string]string{"default": "up", "corp": "up", "lab": "down"} {
		if got := states[route+" "+srvs[route].Addr]; got != want {
			t.Errorf("status of route %s: %q, want %q\n%s", route, got, want, out)
		}
	}
	if code, _, stderr := run(t, p.addr, "healthcheck", "-ready"); code != 0 {
		t.Errorf("healthcheck -ready with one route's upstream down: exit %d, %s", code, stderr)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// A bad route setting stops the binary with one line that names the
// variable, as any bad setting does.
func TestBadRouteSettingStopsStartup(t *testing.T) {
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"DOTPROXY_ROUTE_CORP_DOMAINS": "corp.example", "DOTPROXY_ROUTE_CORP_UPSTREAMS": "10.0.0.53:53"},
			`dotproxy: DOTPROXY_ROUTE_CORP_UPSTREAMS="10.0.0.53:53": "10.0.0.53:53": port 53 is plain DNS`},
		{map[string]string{"DOTPROXY_ROUTE_CORP_DOMAINS": "corp.example"},
			`dotproxy: DOTPROXY_ROUTE_CORP_DOMAINS="corp.example": DOTPROXY_ROUTE_CORP_UPSTREAMS is not set`},
		{map[string]string{"DOTPROXY_ROUTE_CORP_DOMIANS": "corp.example", "DOTPROXY_ROUTE_CORP_UPSTREAMS": "10.0.0.53"},
			`dotproxy: DOTPROXY_ROUTE_CORP_DOMIANS: unknown setting; did you mean DOTPROXY_ROUTE_CORP_DOMAINS?`},
	} {
		env := map[string]string{"DOTPROXY_LISTEN": "127.0.0.1:0"}
		for k, v := range tt.env {
			env[k] = v
		}
		if out := startupRefusal(t, env); !strings.HasPrefix(out, tt.want) {
			t.Errorf("%s\nwant it to start with\n%s", out, tt.want)
		}
	}
}
