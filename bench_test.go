//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/internal/dottest"
)

// startBenchProxy runs the whole proxy, as main wires it, in front of an echo
// DoT server, and returns the address it serves and the server. Any other
// DOTPROXY_* variable set in the environment applies. {upstream} in a value
// of extra stands for the echo server.
func startBenchProxy(b *testing.B, extra map[string]string) (string, *dottest.Server) {
	b.Helper()
	srv := dottest.Start(b, dottest.Options{Echo: true})
	ca := filepath.Join(b.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, srv.CA.PEM, 0o600); err != nil {
		b.Fatal(err)
	}
	env := map[string]string{
		"DOTPROXY_UPSTREAMS":   srv.Addr + "#dns.test",
		"DOTPROXY_TLS_CA_FILE": ca,
		"DOTPROXY_LISTEN":      "127.0.0.1:0",
		"DOTPROXY_STATSD_ADDR": "",
	}
	for k, v := range extra {
		env[k] = strings.ReplaceAll(v, "{upstream}", srv.Addr+"#dns.test") // a route's upstreams
	}
	for k, v := range env {
		// A setting already in the environment wins, so that a benchmark
		// can be rerun with, say, DOTPROXY_MAX_RETRIES=0.
		if _, set := os.LookupEnv(k); !set || k == "DOTPROXY_UPSTREAMS" || k == "DOTPROXY_TLS_CA_FILE" {
			b.Setenv(k, v)
		}
	}
	cfg, err := loadConfig()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, slog.New(slog.DiscardHandler), nil, func(a []string) { ready <- a[0] })
	}()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	select {
	case addr := <-ready:
		return addr, srv
	case err := <-done:
		b.Fatal(err)
		return "", nil
	}
}

// udpClient sends one query at a time and waits for its answer.
type udpClient struct {
	c   net.Conn
	q   []byte
	ans []byte
}

func newUDPClient(b *testing.B, addr string) *udpClient { return dialBench(b, "udp", addr) }

// dialBench connects to addr over network, closed when the benchmark ends,
// with the query the benchmarks send (ID 0x1234) and room for an answer.
func dialBench(b *testing.B, network, addr string) *udpClient {
	c, err := net.Dial(network, addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	q, err := dnsmsg.NewQuery(0x1234, "bench.example", 1)
	if err != nil {
		b.Fatal(err)
	}
	return &udpClient{c: c, q: q, ans: make([]byte, 4096)}
}

func (u *udpClient) exchange() error {
	if _, err := u.c.Write(u.q); err != nil {
		return err
	}
	n, err := u.c.Read(u.ans)
	if err != nil {
		return err
	}
	if n < dnsmsg.HeaderLen || dnsmsg.ID(u.ans) != 0x1234 || dnsmsg.Rcode(u.ans) != 0 {
		return fmt.Errorf("bad answer %x", u.ans[:n])
	}
	return nil
}

// benchProxyParallel drives the proxy with 32 clients per core, each with one
// query outstanding: ns/op is the inverse of throughput, and allocs/op counts
// the whole process (clients, proxy and echo server) per query.
func benchProxyParallel(b *testing.B, extra map[string]string) {
	addr, _ := startBenchProxy(b, extra)
	if err := newUDPClient(b, addr).exchange(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		u := newUDPClient(b, addr)
		for pb.Next() {
			if err := u.exchange(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// tcpClient sends one framed query at a time on its own TCP connection and
// waits for its answer.
type tcpClient struct {
	c     net.Conn
	frame []byte
	ans   []byte
}

func newTCPClient(b *testing.B, addr string) *tcpClient {
	u := dialBench(b, "tcp", addr)
	frame := append([]byte{byte(len(u.q) >> 8), byte(len(u.q))}, u.q...)
	return &tcpClient{c: u.c, frame: frame, ans: u.ans}
}

func (t *tcpClient) exchange() error {
	if _, err := t.c.Write(t.frame); err != nil {
		return err
	}
	if _, err := io.ReadFull(t.c, t.ans[:2]); err != nil {
		return err
	}
	n := int(t.ans[0])<<8 | int(t.ans[1])
	if _, err := io.ReadFull(t.c, t.ans[:n]); err != nil {
		return err
	}
	if n < dnsmsg.HeaderLen || dnsmsg.ID(t.ans) != 0x1234 || dnsmsg.Rcode(t.ans) != 0 {
		return fmt.Errorf("bad answer %x", t.ans[:n])
	}
	return nil
}

// BenchmarkProxyTCP is BenchmarkProxyUDP with TCP clients: 32 connections
// per core, each with one query outstanding, on connections kept open.
func BenchmarkProxyTCP(b *testing.B) {
	addr, _ := startBenchProxy(b, nil)
	if err := newTCPClient(b, addr).exchange(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := newTCPClient(b, addr)
		for pb.Next() {
			if err := c.exchange(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkProxyUDP is the proxy's throughput with metrics off.
func BenchmarkProxyUDP(b *testing.B) { benchProxyParallel(b, nil) }

// BenchmarkProxyUDPMetrics is BenchmarkProxyUDP with metrics sent to a UDP
// socket that nobody reads, as to a statsd server: the difference is the
// cost of metrics.
func BenchmarkProxyUDPMetrics(b *testing.B) {
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	benchProxyParallel(b, map[string]string{"DOTPROXY_STATSD_ADDR": sink.LocalAddr().String()})
}

// BenchmarkProxyUDPRateLimit is BenchmarkProxyUDP with the clients on one
// of the host's own addresses, not loopback, which the rate limit would
// leave alone: "off" without the limit, "on" with one that every query
// passes, all of them charged to one client network, whose set every
// reader then locks in turn. The difference is the limiter's cost.
func BenchmarkProxyUDPRateLimit(b *testing.B) {
	addr := nonLoopbackAddr(b)
	for _, bc := range []struct{ name, rate string }{{"off", "0"}, {"on", "1000000"}} {
		b.Run(bc.name, func(b *testing.B) {
			env := map[string]string{
				"DOTPROXY_LISTEN":     net.JoinHostPort(addr, "0"),
				"DOTPROXY_ALLOW":      "0.0.0.0/0",
				"DOTPROXY_RATE_LIMIT": bc.rate,
			}
			if bc.rate != "0" {
				env["DOTPROXY_RATE_LIMIT_BURST"] = "1000000"
			}
			benchProxyParallel(b, env)
		})
	}
}

// nonLoopbackAddr returns an IPv4 address of this host that is not
// loopback, or skips the benchmark.
func nonLoopbackAddr(b *testing.B) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		b.Skip(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	b.Skip("no IPv4 address but loopback")
	return ""
}

// BenchmarkProxyUDPSerial is one client, one query at a time: ns/op is the
// round trip through the proxy. Compare it with BenchmarkDirectDoT for the
// latency the proxy adds.
func BenchmarkProxyUDPSerial(b *testing.B) {
	addr, _ := startBenchProxy(b, nil)
	u := newUDPClient(b, addr)
	if err := u.exchange(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := u.exchange(); err != nil {
			b.Fatal(err)
		}
	}
}

// directDoT returns a function that sends the benchmark query straight to an
// echo DoT server over one TLS connection and reads the answer: the baseline
// that the proxy's round trips compare with.
func directDoT(b *testing.B) func() error {
	b.Helper()
	srv := dottest.Start(b, dottest.Options{Echo: true})
	c := srv.Dial(b)
	q, err := dnsmsg.NewQuery(0x1234, "bench.example", 1)
	if err != nil {
		b.Fatal(err)
	}
	ans := make([]byte, 512)
	return func() error {
		_, err := dottest.Exchange(c, q, ans)
		return err
	}
}

// BenchmarkDirectDoT is the baseline: the same query straight to the echo
// server over one TLS connection, one at a time.
func BenchmarkDirectDoT(b *testing.B) {
	exchange := directDoT(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := exchange(); err != nil {
			b.Fatal(err)
		}
	}
}

// idleGap spaces the queries of the Paced benchmarks as a rate of 2,000
// queries/s would, so that the proxy is idle between them, as it mostly is.
const idleGap = 500 * time.Microsecond

// reportRTT reports the median and the 99th percentile of rtts.
func reportRTT(b *testing.B, rtts []time.Duration) {
	if len(rtts) == 0 {
		return
	}
	slices.Sort(rtts)
	b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(rtts[len(rtts)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkProxyUDPPaced is the round trip through the proxy for queries that
// arrive one at a time with idle gaps between them. Compare its p50-µs with
// BenchmarkDirectDoTPaced's for the latency the proxy adds at low load.
func BenchmarkProxyUDPPaced(b *testing.B) {
	addr, _ := startBenchProxy(b, nil)
	u := newUDPClient(b, addr)
	if err := u.exchange(); err != nil {
		b.Fatal(err)
	}
	benchPaced(b, u.exchange)
}

// benchPaced times b.N calls of exchange, each after an idle gap, and
// reports the percentiles of their round trips and the process's CPU time
// per call (client, server and, for the proxy, the proxy: the difference
// between the Paced benchmarks is the proxy's CPU per query at low load).
func benchPaced(b *testing.B, exchange func() error) {
	rtts := make([]time.Duration, 0, b.N)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for range b.N {
		time.Sleep(idleGap)
		start := time.Now()
		if err := exchange(); err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, time.Since(start))
	}
	b.StopTimer()
	reportRTT(b, rtts)
	b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDirectDoTPaced is BenchmarkDirectDoT with the same idle gaps.
func BenchmarkDirectDoTPaced(b *testing.B) {
	benchPaced(b, directDoT(b))
}
