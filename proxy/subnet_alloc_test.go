//go:build !race

package proxy_test

import (
	"net"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/proxy"
	"github.com/miekg/dns"
)

// TestClientSubnetCheckAllocations pins the proxy's look at each query's
// client subnet (Config.HideClientSubnet) at no allocation, for queries
// without ECS and with a subnet that goes on to be hidden.
func TestClientSubnetCheckAllocations(t *testing.T) {
	for name, opts := range map[string][]dns.EDNS0{
		"no ECS":   nil,
		"IPv6 /56": {&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 56, Address: net.ParseIP("2001:db8::")}},
	} {
		wire := subnetQuery(t, 7, opts...)
		a := new(dns.Msg)
		q := new(dns.Msg)
		if err := q.Unpack(wire); err != nil {
			t.Fatal(err)
		}
		a.SetReply(q)
		ans, err := a.Pack()
		if err != nil {
			t.Fatal(err)
		}
		s, _, _ := start(t, fixedAnswer(ans), func(c *proxy.Config) {
			c.Observer = proxy.NopObserver{}
			c.HideClientSubnet = true
		})
		c, err := net.Dial("udp", s.Addrs()[0])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 512)
		exchange := func() {
			if _, err := c.Write(wire); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := c.Read(buf); err != nil || dnsmsg.ID(buf[:n]) != 7 || dnsmsg.Rcode(buf[:n]) != 0 {
				t.Fatalf("reply %x, %v", buf[:n], err)
			}
		}
		for range 100 { // the buffers exist by now
			exchange()
		}
		if n := testing.AllocsPerRun(1000, exchange); n != 0 {
			t.Errorf("%s: %v allocations per query", name, n)
		}
	}
}
