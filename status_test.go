package main_test

import (
	"bytes"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/miekg/dns"
)

// freeAddr returns a loopback address where nothing listens (yet): a
// resolver that is down, which a test may bring up there later.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// asksAbout counts the queries an upstream saw that name the proxy's own
// zone: none may ever leave the proxy.
type asksAbout struct{ n atomic.Int64 }

func (a *asksAbout) inspect(raw []byte) {
	if bytes.Contains(bytes.ToLower(raw), []byte("\x08dotproxy\x00")) {
		a.n.Add(1)
	}
}

// run runs dotproxy with args against the proxy at addr and returns its
// exit code, stdout and stderr.
func run(t *testing.T, addr string, args ...string) (int, string, string) {
	t.Helper()
	cmd := command(map[string]string{"DOTPROXY_LISTEN": addr}, args...)
	var stdout strings.Builder
	cmd.Stdout = &stdout
	code, stderr := runWithin(t, cmd, 20*time.Second)
	return code, stdout.String(), stderr
}

// chaosStatus is the status question, asked as dig would.
func chaosStatus() *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion("status.dotproxy.", dns.TypeTXT)
	q.Question[0].Qclass = dns.ClassCHAOS
	return q
}

// TestStatusShowsEveryUpstream runs `dotproxy status` against a proxy with
// one upstream that answers and one where nothing listens, after a few
// queries: the table names both, one up and answering, one down with the
// error that put it there; the question itself never reached an upstream.
func TestStatusShowsEveryUpstream(t *testing.T) {
	var seen asksAbout
	up := dottest.Start(t, dottest.Options{Concurrent: true, Inspect: seen.inspect})
	down := freeAddr(t)
	env := upstreamEnv(t, up)
	env["DOTPROXY_UPSTREAMS"] += "," + down + "#dns.test"
	env["DOTPROXY_POLICY"] = "round_robin"
	p := startProxy(t, env)
	for range 4 {
		if a := ask(t, "udp", p.addr, "e2e.example", dns.TypeA); a.Rcode != dns.RcodeSuccess {
			t.Fatalf("query not answered: %v", a)
		}
	}

	code, out, stderr := run(t, p.addr, "status")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, stderr, out)
	}
	t.Logf("dotproxy status:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !regexp.MustCompile(`^dotproxy v9\.9\.9-test, up \d+s, ready$`).MatchString(lines[0]) ||
		lines[1] != "" || !strings.HasPrefix(lines[2], "ROUTE ") {
		t.Fatalf("not the table expected:\n%s", out)
	}
	row := func(addr string) []string {
		for _, l := range lines[3:] {
			if f := strings.Fields(l); len(f) > 2 && f[1] == addr {
				return f
			}
		}
		t.Fatalf("no row for %s:\n%s", addr, out)
		return nil
	}
	// ROUTE UPSTREAM STATE SINCE CONNS INFLIGHT LATENCY ANSWERS FAILURES LAST ERROR...
	u := row(up.Addr)
	if u[0] != "default" || u[2] != "up" || u[4] == "0" || !strings.HasSuffix(u[6], "ms") || u[7] == "0" ||
		u[8] != "0" || u[9] != "-" {
		t.Errorf("the answering upstream: %q", u)
	}
	d := row(down)
	if d[0] != "default" || d[2] != "down" || d[6] != "-" || d[7] != "0" || d[8] == "0" ||
		!strings.Contains(strings.Join(d[9:], " "), "connection refused") {
		t.Errorf("the upstream where nothing listens: %q", d)
	}

	// What dig shows: the same, as lines of text, over TCP only.
	c := &dns.Client{Net: "tcp", Timeout: 10 * time.Second}
	a, _, err := c.Exchange(chaosStatus(), p.addr)
	if err != nil || a.Rcode != dns.RcodeSuccess || len(a.Answer) != 3 ||
		!strings.HasPrefix(a.Answer[0].(*dns.TXT).Txt[0], "dotproxy-status/1 ") {
		t.Fatalf("over TCP: %v %v", a, err)
	}
	if a := ask(t, "udp", p.addr, "e2e.example", dns.TypeA); a.Rcode != dns.RcodeSuccess {
		t.Fatal(a)
	}
	c.Net = "udp"
	if a, _, err := c.Exchange(chaosStatus(), p.addr); err != nil || !a.Truncated || len(a.Answer) != 0 {
		t.Fatalf("over UDP: %v %v, want TC and no records", a, err)
	}
	if n := seen.n.Load(); n != 0 {
		t.Fatalf("the upstream was asked about the proxy's own zone %d times", n)
	}
}

// TestStatusRefusedOffLoopback: a client on one of the host's addresses
// that is not loopback, as any on the network, gets REFUSED, and the
// question goes nowhere; `dotproxy status` on the host still gets the
// answer, since it asks from loopback.
func TestStatusRefusedOffLoopback(t *testing.T) {
	ip := dottest.HostAddr(t)
	var seen asksAbout
	up := dottest.Start(t, dottest.Options{Inspect: seen.inspect})
	env := upstreamEnv(t, up)
	env["DOTPROXY_LISTEN"] = net.JoinHostPort(ip.String(), "0")
	env["DOTPROXY_ALLOW"] = "0.0.0.0/0,::/0"
	p := startProxy(t, env)
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: 10 * time.Second}
		a, _, err := c.Exchange(chaosStatus(), p.addr)
		if err != nil || a.Rcode != dns.RcodeRefused || len(a.Answer) != 0 {
			t.Fatalf("%s from %s: %v %v", network, ip, a, err)
		}
	}
	if code, out, stderr := run(t, p.addr, "status"); code != 0 || !strings.Contains(out, up.Addr) {
		t.Fatalf("dotproxy status on %s: exit %d, %s%s", p.addr, code, out, stderr)
	}
	if n := seen.n.Load(); n != 0 {
		t.Fatalf("the upstream was asked about the proxy's own zone %d times", n)
	}
}

// TestLivenessAndReadiness with every upstream down: healthcheck (liveness)
// passes, since SERVFAIL is an answer and a restart would not help;
// healthcheck -ready fails with the reason in one line. The log says when
// readiness goes and when it comes back, naming the upstream that
// answered, and -ready passes again.
func TestLivenessAndReadiness(t *testing.T) {
	ca := dottest.NewCA(t)
	leaf := ca.Leaf(t, "dns.test")
	addr := freeAddr(t)
	p := startProxy(t, map[string]string{
		"DOTPROXY_UPSTREAMS":                addr + "#dns.test",
		"DOTPROXY_TLS_CA_FILE":              ca.WritePEM(t),
		"DOTPROXY_QUERY_TIMEOUT":            "1s",
		"DOTPROXY_UPSTREAM_ATTEMPT_TIMEOUT": "500ms",
		"DOTPROXY_PROBE_MAX_BACKOFF":        "200ms",
	})
	if code, _, stderr := run(t, p.addr, "healthcheck", "-ready"); code != 0 {
		t.Fatalf("not ready before any query: %d %s", code, stderr)
	}
	if a := ask(t, "udp", p.addr, "e2e.example", dns.TypeA); a.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[a.Rcode])
	}
	l := p.awaitLog(t, "not ready", msgIs("not ready: every upstream is down"))
	if l["level"] != "WARN" || !strings.Contains(fmt.Sprint(l["errors"]), "connection refused") {
		t.Fatalf("log line: %v", l)
	}

	if code, _, stderr := run(t, p.addr, "healthcheck"); code != 0 {
		t.Fatalf("liveness: exit %d (%s), want 0: SERVFAIL is an answer", code, stderr)
	}
	code, _, stderr := run(t, p.addr, "healthcheck", "-ready")
	if want := "dotproxy: not ready: every upstream of the default route is down\n"; code != 1 || stderr != want {
		t.Fatalf("readiness: exit %d, stderr %q; want 1, %q", code, stderr, want)
	}
	code, out, _ := run(t, p.addr, "status")
	if code != 0 || !strings.Contains(out, "NOT READY: every upstream of the default route is down") {
		t.Fatalf("status: %d\n%s", code, out)
	}

	dottest.Start(t, dottest.Options{Addr: addr, Cert: &leaf})
	l = p.awaitLog(t, "ready again", msgIs("ready again: "+addr+" answered"))
	if l["level"] != "INFO" {
		t.Fatalf("log line: %v", l)
	}
	if code, _, stderr := run(t, p.addr, "healthcheck", "-ready"); code != 0 || stderr != "" {
		t.Fatalf("readiness after the upstream came back: exit %d, %q", code, stderr)
	}
}

// logged reports whether a log line so far matches.
func (p *proxyProcess) logged(match func(map[string]any) bool) bool {
	for _, l := range p.allLogs() {
		if match(l) {
			return true
		}
	}
	return false
}

// TestReadinessWithoutProxy: nothing listening is not ready, in one line.
func TestReadinessWithoutProxy(t *testing.T) {
	code, _, stderr := run(t, freeAddr(t), "healthcheck", "-ready")
	if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "dotproxy: not ready: ") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// TestLameduck: on SIGTERM with DOTPROXY_LAMEDUCK set, readiness fails at
// once while queries are still answered, over both transports, until the
// period ends; then dotproxy stops as usual and exits 0. The log marks the
// start and the end of the period.
func TestLameduck(t *testing.T) {
	up := dottest.Start(t, dottest.Options{Concurrent: true})
	env := upstreamEnv(t, up)
	// Long enough for the checks below on a loaded machine: each runs the
	// binary once.
	env["DOTPROXY_LAMEDUCK"] = "5s"
	p := startProxy(t, env)
	if l := p.awaitLog(t, "the start-up line", msgIs("dotproxy started")); l["lameduck"] != "5s" {
		t.Fatalf("start-up line: %v", l)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	l := p.awaitLog(t, "the drain's start", msgIs("not ready: draining; queries are still answered until the drain period ends"))
	if l["why"] != "received SIGTERM" || l["lameduck"] != "5s" {
		t.Fatalf("log line: %v", l)
	}
	code, _, stderr := run(t, p.addr, "healthcheck", "-ready")
	if want := "dotproxy: not ready: stopping: draining before shutting down\n"; code != 1 || stderr != want {
		t.Fatalf("readiness while draining: exit %d, %q; want 1, %q", code, stderr, want)
	}
	for _, network := range []string{"udp", "tcp"} {
		if a := ask(t, network, p.addr, "e2e.example", dns.TypeA); a.Rcode != dns.RcodeSuccess || len(a.Answer) != 1 {
			t.Fatalf("%s query while draining: %v", network, a)
		}
	}
	if code, _, _ := run(t, p.addr, "healthcheck"); code != 0 {
		t.Fatalf("liveness while draining: exit %d", code)
	}
	if p.logged(msgIs("drain period over")) {
		t.Fatal("the period ended before the checks: the test proves nothing (a very slow machine?)")
	}
	p.awaitLog(t, "the drain's end", msgIs("drain period over"))
	p.awaitLog(t, "the stop", msgIs("dotproxy stopped"))
	<-p.exited
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestLameduckOffStopsAtOnce: with the default (0) nothing is logged of a
// drain period and dotproxy stops as before.
func TestLameduckOffStopsAtOnce(t *testing.T) {
	up := dottest.Start(t, dottest.Options{})
	p := startProxy(t, upstreamEnv(t, up))
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if p.logged(msgIs("drain period over")) || p.logged(func(l map[string]any) bool {
		return strings.HasPrefix(fmt.Sprint(l["msg"]), "not ready: draining")
	}) {
		t.Fatal("a drain period with DOTPROXY_LAMEDUCK unset")
	}
}
