package main_test

import (
	"net"
	"strings"
	"testing"

	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/miekg/dns"
)

// The binary, rate limit on, limits a client sending from one of the host's
// own addresses, as it would a client on the network: past its burst its
// UDP query gets TC (slip 1), its TCP retry the resolver's answer, and the
// log names its prefix once, at warn level.
func TestRateLimitThroughTheBinary(t *testing.T) {
	ip := dottest.HostAddr(t).String()
	srv := dottest.Start(t, dottest.Options{})
	env := upstreamEnv(t, srv)
	env["DOTPROXY_LISTEN"] = net.JoinHostPort(ip, "0")
	env["DOTPROXY_ALLOW"] = "0.0.0.0/0,::/0"
	env["DOTPROXY_RATE_LIMIT"] = "0.01"
	env["DOTPROXY_RATE_LIMIT_BURST"] = "2"
	env["DOTPROXY_RATE_LIMIT_SLIP"] = "1"
	p := startProxy(t, env)
	for range 2 {
		if a := ask(t, "udp", p.addr, "within.example", dns.TypeA); a.Rcode != dns.RcodeSuccess || a.Truncated || len(a.Answer) != 1 {
			t.Fatalf("within the burst: %v", a)
		}
	}
	q := new(dns.Msg)
	q.SetQuestion("over.example.", dns.TypeA)
	a, _, err := (&dns.Client{Net: "udp"}).Exchange(q, p.addr)
	if err != nil || !a.Truncated || len(a.Answer) != 0 {
		t.Fatalf("over the limit: %v, %v; want TC", a, err)
	}
	if a := ask(t, "tcp", p.addr, "over.example", dns.TypeA); a.Rcode != dns.RcodeSuccess || len(a.Answer) != 1 {
		t.Fatalf("the TCP retry: %v; want the answer", a)
	}
	line := p.awaitLog(t, "the client over its limit", func(l map[string]any) bool {
		msg, _ := l["msg"].(string)
		return strings.HasPrefix(msg, "client over the rate limit")
	})
	if line["level"] != "WARN" || line["prefix"] != ip+"/32" {
		t.Fatalf("logged %v; want WARN naming %s/32", line, ip)
	}
}
