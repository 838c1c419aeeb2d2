//go:build linux

package main_test

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/miekg/dns"
)

// rssLimitMiB is the most memory dotproxy may hold at default settings
// under any flood from allowed clients while its upstream stalls.
const rssLimitMiB = 64

// TestFloodKeepsMemoryBounded floods dotproxy, whose only upstream reads
// queries and never answers, with what a hostile or broken client sends:
// maximum-size well-formed queries, garbage, and ordinary queries, over UDP
// and TCP. The process's peak RSS (VmHWM, read from /proc) stays under the
// limit, and it still answers afterwards.
func TestFloodKeepsMemoryBounded(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{Silent: func(int) bool { return true }})
	env := upstreamEnv(t, srv)
	env["DOTPROXY_LOG_LEVEL"] = "info" // a line per query would be its own load
	env["DOTPROXY_QUERY_TIMEOUT"] = "2s"
	p := startProxy(t, env)
	pid := p.cmd.Process.Pid
	idle := status(t, pid, "VmRSS")

	big := bigQuery(t, 60000)
	largest := bigQuery(t, 4000) // just under the largest query taken
	garbage := make([]byte, 60000)
	rand.Read(garbage)
	sm := new(dns.Msg)
	sm.SetQuestion("flood.example.", dns.TypeA)
	small, err := sm.Pack()
	if err != nil {
		t.Fatal(err)
	}
	phases := []struct {
		name string
		send func(stop <-chan struct{}) int
	}{
		{"max-size queries over UDP", func(stop <-chan struct{}) int { return floodUDP(t, p.addr, big, stop) }},
		{"max-size garbage over UDP", func(stop <-chan struct{}) int { return floodUDP(t, p.addr, garbage, stop) }},
		{"small queries over UDP", func(stop <-chan struct{}) int { return floodUDP(t, p.addr, small, stop) }},
		{"max-size queries over TCP", func(stop <-chan struct{}) int { return floodTCP(t, p.addr, big, stop) }},
		{"largest queries taken over TCP", func(stop <-chan struct{}) int { return floodTCP(t, p.addr, largest, stop) }},
	}
	for _, ph := range phases {
		n := during(2*time.Second, ph.send)
		peak := status(t, pid, "VmHWM")
		t.Logf("%s: %d sent; peak RSS %d KiB (idle %d KiB)", ph.name, n, peak, idle)
		if peak > rssLimitMiB<<10 {
			t.Errorf("after %s, peak RSS is %d KiB, over the %d MiB limit", ph.name, peak, rssLimitMiB)
		}
	}
	// Still serving: once the flood's queries have ended by their
	// deadlines (until then the budget may be full, and a query dropped),
	// a query gets SERVFAIL at its deadline rather than silence.
	c := &dns.Client{Net: "udp", Timeout: 4 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion("after.example.", dns.TypeA)
	var answer *dns.Msg
	for try := 0; try < 5 && answer == nil; try++ {
		answer, _, err = c.Exchange(m, p.addr)
	}
	if answer == nil || answer.Rcode != dns.RcodeServerFailure {
		t.Errorf("after the flood: %v, %v; want SERVFAIL", answer, err)
	}
	t.Logf("RSS after the flood: %d KiB", status(t, pid, "VmRSS"))
}

// bigQuery is a well-formed query of about size bytes: its OPT record
// carries a Padding option that fills it.
func bigQuery(t *testing.T, size int) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("big.flood.example.", dns.TypeA)
	m.SetEdns0(1232, false)
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_PADDING{Padding: make([]byte, size)})
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// during runs send on two goroutines for d and returns what they sent.
func during(d time.Duration, send func(stop <-chan struct{}) int) int {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := send(stop)
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	time.AfterFunc(d, func() { close(stop) })
	wg.Wait()
	return total
}

// floodUDP sends msg, each with a new ID, until stop, at most a million
// times, and returns how many it sent.
func floodUDP(t *testing.T, addr string, msg []byte, stop <-chan struct{}) int {
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer c.Close()
	msg = append([]byte(nil), msg...)
	for n := 0; n < 1_000_000; n++ {
		select {
		case <-stop:
			return n
		default:
		}
		msg[0], msg[1] = byte(n>>8), byte(n)
		c.Write(msg) // a full socket buffer drops it, as the network would
	}
	return 1_000_000
}

// floodTCP opens connections and pipelines msg on each without reading an
// answer, until stop; it returns how many queries it wrote.
func floodTCP(t *testing.T, addr string, msg []byte, stop <-chan struct{}) int {
	frame := append([]byte{byte(len(msg) >> 8), byte(len(msg))}, msg...)
	sent := 0
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for len(conns) < 500 {
		select {
		case <-stop:
			return sent
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return sent // refused or out of descriptors: enough
		}
		conns = append(conns, c)
		c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
		for i := range 100 {
			frame[2], frame[3] = byte(i), byte(len(conns))
			if _, err := c.Write(frame); err != nil {
				break // the proxy stopped reading this one
			}
			sent++
		}
	}
	<-stop
	return sent
}

// status reads a "Vm..." line of /proc/PID/status, in KiB.
func status(t *testing.T, pid int, key string) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return 0
}
