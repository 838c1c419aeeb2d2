//go:build !race

// The race detector's sync.Pool drops items at random, so allocation counts
// mean something only without it; .ci/run runs these tests without -race.

package upstream_test

import (
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/dotproxy/dotproxy/upstream"
	"github.com/miekg/dns"
)

// allocsPerQuery runs f n times and returns the allocations per run in the
// whole process, as a fraction: testing.AllocsPerRun rounds down, and the
// TLS library's occasional allocations are part of what is compared.
func allocsPerQuery(n int, f func()) float64 {
	f() // warm up
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		f()
	}
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / float64(n)
}

// TestExchangeAllocations pins the pool's cost per query on an open
// connection: no allocation of its own beyond the answer's buffer, which
// the caller keeps. It is measured against a direct DoT exchange with the
// same server, one at a time, so that crypto/tls's own allocations (a
// reader per record read, on both sides) count on both sides alike.
//
// With the client's subnet hidden, a query with an ECS option costs nothing
// more: the echo server returns the hidden /0, and the client's own option
// goes back into the answer's buffer, read with room for it.
func TestExchangeAllocations(t *testing.T) {
	ecs := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 56, Address: net.ParseIP("2001:db8:1:2300::")}
	for _, tt := range []struct {
		name string
		rw   dnsmsg.Rewrite
		ecs  bool
	}{
		{"as sent", dnsmsg.Rewrite{}, false},
		{"padded", dnsmsg.Rewrite{PadBlock: 128, Keepalive: true}, false},
		{"padded, subnet hidden, no ECS", hidden, false},
		{"padded, subnet hidden, ECS", hidden, true},
		{"unpadded, subnet hidden, ECS", hiddenNoPad, true},
	} {
		rw := tt.rw
		srv := dottest.Start(t, dottest.Options{Echo: true})
		p, _ := newPool(t, srv, func(c *upstream.Config) { c.Rewrite = rw })
		q := query(t, "alloc.example", 1)
		if tt.ecs {
			q = withSubnet(t, "alloc.example", 1, ecs)
			ans, err := p.Exchange(q, time.Now().Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			var a dns.Msg
			if err := a.Unpack(ans); err != nil || len(subnetOf(&a)) != 1 || subnetOf(&a)[0].SourceNetmask != 56 {
				t.Fatalf("%s: the echo did not get the client's subnet back: %v, %v", tt.name, &a, err)
			}
		}
		pooled := allocsPerQuery(2000, func() {
			if _, err := p.Exchange(q, time.Now().Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		})
		done := make(ended, 1)
		started := allocsPerQuery(2000, func() {
			p.Start(q, time.Now().Add(time.Minute), done)
			if e := <-done; e.err != nil {
				t.Fatal(e.err)
			}
		})

		direct := srv.Dial(t)
		frame := binary.BigEndian.AppendUint16(nil, uint16(len(q)))
		frame = append(frame, q...)
		ans := make([]byte, 65535)
		baseline := allocsPerQuery(2000, func() {
			if _, err := direct.Write(frame); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(direct, ans[:2]); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(direct, ans[:binary.BigEndian.Uint16(ans)]); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%s: %.2f allocations per query through Exchange, %.2f through Start, %.2f direct",
			tt.name, pooled, started, baseline)
		// The answer's buffer is 1; a tenth more for the pool's own
		// background work (its janitor's ticks) over the run.
		if pooled-baseline > 1.1 {
			t.Errorf("%s: Exchange adds %.2f allocations per query, want at most the answer's buffer",
				tt.name, pooled-baseline)
		}
		if started-baseline > 1.1 {
			t.Errorf("%s: Start adds %.2f allocations per query, want at most the answer's buffer",
				tt.name, started-baseline)
		}
	}
}
