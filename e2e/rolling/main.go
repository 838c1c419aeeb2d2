// Command rolling plays the load balancer in front of dotproxy replicas
// for e2e/rolling.sh, and the clients behind it: it polls each replica's
// readiness as an orchestrator does (`docker exec NAME /dotproxy
// healthcheck -ready`), sends a steady stream of queries, each to the next
// replica that was ready at its last poll, alternating UDP and TCP, and
// counts every query sent, answered, and lost (no answer, or not the
// answer expected). Meanwhile the script restarts a replica.
//
//	rolling -replicas A=127.0.0.1:5301,B=127.0.0.1:5302 -name a.dns.test -want 192.0.2.1 -until FILE
//
// It prints one "ready"/"not ready" line per change it sees, a "progress"
// line a second, and a "summary" line at the end, and exits 1 if any query
// was lost, 2 on a broken set-up.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

func main() {
	replicas := flag.String("replicas", "", "comma-separated NAME=HOST:PORT: container name and the address its port 53 is published on")
	name := flag.String("name", "", "name to query (type A)")
	want := flag.String("want", "", "the address the answer must hold")
	rate := flag.Int("rate", 200, "queries a second")
	poll := flag.Duration("poll", 250*time.Millisecond, "readiness poll interval")
	timeout := flag.Duration("timeout", 5*time.Second, "how long a query may wait for its answer")
	until := flag.String("until", "", "stop sending once this file exists")
	limit := flag.Duration("max", 3*time.Minute, "stop sending after this long, whatever happens")
	flag.Parse()
	rs, err := parseReplicas(*replicas)
	if err != nil || *name == "" || *want == "" || *until == "" || *rate < 1 {
		fmt.Fprintln(os.Stderr, "rolling: usage: -replicas NAME=ADDR,... -name NAME -want ADDR -until FILE", err)
		os.Exit(2)
	}
	lb := &balancer{replicas: rs, name: dns.Fqdn(*name), want: *want, timeout: *timeout, start: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	var polls sync.WaitGroup
	for _, r := range rs {
		polls.Go(func() { lb.pollReady(ctx, r, *poll) })
	}
	lb.run(*rate, *until, *limit)
	cancel()
	polls.Wait()
	os.Exit(lb.summary())
}

// replica is one dotproxy behind the balancer.
type replica struct {
	name, addr string
	ready      atomic.Bool
	answered   atomic.Int64
	changes    atomic.Int64 // readiness changes seen
}

func parseReplicas(s string) ([]*replica, error) {
	var rs []*replica
	for item := range strings.SplitSeq(s, ",") {
		name, addr, ok := strings.Cut(item, "=")
		if !ok || name == "" || addr == "" {
			return nil, fmt.Errorf("replica %q is not NAME=HOST:PORT", item)
		}
		rs = append(rs, &replica{name: name, addr: addr})
	}
	if len(rs) < 2 {
		return nil, fmt.Errorf("need two replicas or more, got %d", len(rs))
	}
	return rs, nil
}

type balancer struct {
	replicas []*replica
	name     string
	want     string
	timeout  time.Duration
	start    time.Time

	next     atomic.Uint64
	sent     atomic.Int64
	answered atomic.Int64
	lost     atomic.Int64 // no answer within timeout
	wrong    atomic.Int64 // an answer, but not the one expected
	unsent   atomic.Int64 // no replica was ready

	outMu sync.Mutex // one line of output at a time
}

func (lb *balancer) printf(format string, args ...any) {
	lb.outMu.Lock()
	defer lb.outMu.Unlock()
	fmt.Printf("%6.2fs "+format+"\n", append([]any{time.Since(lb.start).Seconds()}, args...)...)
}

// pollReady asks r for its readiness every interval, as kubelet's exec
// probe or a load balancer's health check does, until ctx ends.
func (lb *balancer) pollReady(ctx context.Context, r *replica, interval time.Duration) {
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		out, err := exec.CommandContext(pctx, "docker", "exec", r.name, "/dotproxy", "healthcheck", "-ready").CombinedOutput()
		cancel()
		if ctx.Err() != nil {
			return
		}
		ready := err == nil
		if r.ready.Swap(ready) != ready {
			r.changes.Add(1)
			if ready {
				lb.printf("ready %s", r.name)
			} else {
				lb.printf("not ready %s: %s", r.name, strings.TrimSpace(string(out)))
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}

// pick returns the next ready replica, round robin; nil if none is.
func (lb *balancer) pick() *replica {
	for range lb.replicas {
		r := lb.replicas[lb.next.Add(1)%uint64(len(lb.replicas))]
		if r.ready.Load() {
			return r
		}
	}
	return nil
}

// run sends rate queries a second until the file until exists or limit
// passes, then waits for the last answers. Sending starts once every
// replica has been seen ready.
func (lb *balancer) run(rate int, until string, limit time.Duration) {
	for !lb.allReady() {
		if time.Since(lb.start) > 30*time.Second {
			lb.printf("not every replica ready within 30 s")
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	lb.printf("every replica ready: sending %d queries a second", rate)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	progress := time.NewTicker(time.Second)
	defer progress.Stop()
	var queries sync.WaitGroup
	for n := 0; ; n++ {
		select {
		case <-tick.C:
		case <-progress.C:
			lb.progress()
			if _, err := os.Stat(until); err == nil || time.Since(lb.start) > limit {
				queries.Wait()
				lb.progress()
				return
			}
			continue
		}
		r := lb.pick()
		lb.sent.Add(1)
		if r == nil {
			lb.unsent.Add(1)
			continue
		}
		network := "udp"
		if n%2 == 1 {
			network = "tcp"
		}
		queries.Go(func() { lb.ask(r, network, uint16(n)) })
	}
}

func (lb *balancer) allReady() bool {
	for _, r := range lb.replicas {
		if !r.ready.Load() {
			return false
		}
	}
	return true
}

// ask sends one query to r and counts how it ended.
func (lb *balancer) ask(r *replica, network string, id uint16) {
	q := new(dns.Msg)
	q.SetQuestion(lb.name, dns.TypeA)
	q.Id = id
	c := &dns.Client{Net: network, Timeout: lb.timeout}
	a, _, err := c.Exchange(q, r.addr)
	switch {
	case err != nil:
		lb.lost.Add(1)
		lb.printf("lost: %s query %d to %s: %v", network, id, r.name, err)
	case a.Rcode != dns.RcodeSuccess || len(a.Answer) != 1 || !holds(a.Answer[0], lb.want):
		lb.wrong.Add(1)
		lb.printf("wrong answer: %s query %d from %s: %s", network, id, r.name, dns.RcodeToString[a.Rcode])
	default:
		lb.answered.Add(1)
		r.answered.Add(1)
	}
}

func holds(rr dns.RR, addr string) bool {
	a, ok := rr.(*dns.A)
	return ok && a.A.Equal(net.ParseIP(addr))
}

func (lb *balancer) progress() {
	var b strings.Builder
	for _, r := range lb.replicas {
		fmt.Fprintf(&b, " %s=%d", r.name, r.answered.Load())
	}
	lb.printf("progress sent=%d answered=%d lost=%d wrong=%d unsent=%d by%s",
		lb.sent.Load(), lb.answered.Load(), lb.lost.Load(), lb.wrong.Load(), lb.unsent.Load(), b.String())
}

// summary prints the last line and returns the exit code: 1 if any query
// was not answered as expected.
func (lb *balancer) summary() int {
	var b strings.Builder
	for _, r := range lb.replicas {
		fmt.Fprintf(&b, " %s=%d/%d", r.name, r.answered.Load(), r.changes.Load())
	}
	bad := lb.lost.Load() + lb.wrong.Load() + lb.unsent.Load()
	lb.printf("summary sent=%d answered=%d lost=%d wrong=%d unsent=%d answered/readiness-changes-by-replica%s",
		lb.sent.Load(), lb.answered.Load(), lb.lost.Load(), lb.wrong.Load(), lb.unsent.Load(), b.String())
	if lb.sent.Load() == 0 || bad > 0 {
		return 1
	}
	return 0
}
