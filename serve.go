package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dotproxy/dotproxy/balance"
	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/emit"
	"github.com/dotproxy/dotproxy/proxy"
	"github.com/dotproxy/dotproxy/upstream"
	"github.com/lmittmann/tint"
)

// UDP queries take the path where none waits, and a burst leaves upstream
// in one write, only if the balancer can start and hold queries.
var _ proxy.BatchStarter = (*balance.Balancer)(nil)

// Zone transfers over TCP pass through whole only if the balancer can pass
// them on; without it they get NOTIMP.
var _ proxy.Transferer = (*balance.Balancer)(nil)

// Stopping is bounded: from SIGTERM or SIGINT to exit dotproxy takes at
// most QueryTimeout and a second, whatever the clients, the upstreams or
// the statsd server do, so that docker stop (10 s) or an orchestrator's
// grace period never ends in SIGKILL. The queries in flight end by their
// own deadline, QueryTimeout; each later step has its share of the second
// and is left behind, not waited for, once that has passed: the process
// exits, which ends whatever was still running.
const (
	// answerGrace is how long past QueryTimeout the clients' side may take
	// to write its last answers, the SERVFAILs at the deadline included,
	// before the connections still open are closed.
	answerGrace = 150 * time.Millisecond
	// upstreamCloseWait bounds closing the upstream connections (each
	// TLS close_notify may wait 100 ms for a resolver that reads nothing)
	// and the balancer's probes.
	upstreamCloseWait = 250 * time.Millisecond
	// metricsCloseWait bounds the last metrics flush.
	metricsCloseWait = 300 * time.Millisecond
	// exitRoom is left of the second for the last log lines and the exit.
	exitRoom = 200 * time.Millisecond
)

// The shares fit in the second: a negative constant converts to no uint,
// so the build fails if they do not.
const _ = uint(time.Second - answerGrace - upstreamCloseWait - metricsCloseWait - exitRoom)

// serve wires the packages together, serves until ctx is done, then shuts
// down in order: clients first, so that queries in flight still reach their
// upstreams, then the balancer and the pools, then metrics, each within its
// share of the stop budget above. Each value received from hup (SIGHUP)
// recycles the upstream connections. ready, if not nil, is given the bound
// addresses once queries are being served.
func serve(ctx context.Context, cfg *config, log *slog.Logger, hup <-chan os.Signal, ready func(addrs []string)) (err error) {
	memLimit := limitMemory(int64(cfg.Client.MaxInflightMIB) << 20)
	metrics, err := emit.New(cfg.emitConfig(log))
	if err != nil {
		// The settings were checked already, so this is the statsd host
		// not resolving now. Metrics must never stop DNS: serve without.
		log.Warn("metrics are off", tint.Err(err))
		if metrics, err = emit.New(emit.Config{Format: emit.StatsD}); err != nil {
			return err
		}
	}
	var (
		pools     []*upstream.Pool
		bal       *balance.Balancer
		recycling sync.WaitGroup
	)
	defer func() {
		if !closeUpstreams(pools, bal, &recycling, upstreamCloseWait) {
			log.Warn("upstream connections still closing at the stop deadline were left to the exit",
				"waited", upstreamCloseWait.String())
		}
		if cerr := metrics.Close(); errors.Is(cerr, emit.ErrCloseTimeout) {
			log.Warn("metrics not all sent: the statsd server took none for too long", "waited", metricsCloseWait.String())
		} else if cerr != nil {
			log.Warn("closing metrics", tint.Err(cerr))
		}
		if err == nil {
			log.Info("dotproxy stopped")
		}
	}()

	var roots *x509.CertPool // nil: the system roots
	if cfg.TLS.CAFile != "" {
		if roots, err = loadCAs(cfg.TLS.CAFile); err != nil {
			return fmt.Errorf("%s: %w", env("TLS_CA_FILE"), err)
		}
	}
	ups := make([]balance.Upstream, 0, len(cfg.Upstreams))
	for _, spec := range cfg.Upstreams {
		um := metrics.Upstream(spec.Addr) // the name Pool.String gives balance and proxy
		p, err := upstream.New(cfg.upstreamConfig(spec, roots, um, log))
		if err != nil {
			return err
		}
		um.Watch(p)
		pools = append(pools, p)
		ups = append(ups, p)
	}
	bcfg := cfg.balanceConfig()
	bcfg.Observer = metrics.Balance()
	if bal, err = balance.New(ups, bcfg); err != nil {
		return err
	}

	srv, err := proxy.New(proxy.Config{
		Listen:           cfg.Listen,
		Allow:            cfg.Allow,
		QueryTimeout:     cfg.QueryTimeout,
		TransferTimeout:  cfg.TransferTimeout,
		TCPIdleTimeout:   cfg.Client.TCPIdleTimeout,
		TCPMaxConns:      cfg.Client.TCPMaxConns,
		TCPMaxInFlight:   cfg.Client.TCPMaxInflight,
		UDPMaxInFlight:   cfg.Client.UDPMaxInflight,
		UDPSockets:       cfg.Client.UDPSockets,
		MaxInFlightBytes: int64(cfg.Client.MaxInflightMIB) << 20,
		Resolver:         bal,
		Observer:         metrics.Proxy(),
		Logger:           log,
	})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	if cfg.defaultUpstreams {
		log.Warn(env("UPSTREAMS")+" is not set: every query goes to the built-in default resolvers "+
			strings.Join(cfg.upstreamNames(), ", "), "upstreams", cfg.upstreamNames())
	}
	log.Info("dotproxy started", append(cfg.logAttrs(srv.Addrs(), metrics.Enabled()), "memory_limit_mib", memLimit>>20)...)
	if ready != nil {
		ready(srv.Addrs())
	}

	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-hup:
			recycling.Go(func() { recycle(pools, log) })
		}
	}
	log.Info("shutting down: answering the queries in flight", "why", context.Cause(ctx).Error())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.QueryTimeout+answerGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("queries still in flight at the shutdown deadline were cancelled")
	}
	return nil
}

// recycle answers SIGHUP. Settings are not reloaded, since they come only
// from the environment, which a running process cannot be given anew; what
// a reload is wanted for without new settings is done instead: every
// upstream connection is retired, each closing once its queries are
// answered, and the next ones are dialed afresh, looking the upstreams'
// host names up again.
func recycle(pools []*upstream.Pool, log *slog.Logger) {
	n := 0
	for _, p := range pools {
		n += p.Recycle()
	}
	log.Info("received SIGHUP: settings come only from the environment and are not reloaded; "+
		"upstream connections recycled, so that upstream host names are looked up again",
		"connections", n, "upstreams", len(pools))
}

// closeUpstreams closes the pools, all at once, then the balancer, once
// the recycling under way has ended, and reports whether that was done
// within wait. Past it the closing goes on in the background, until the
// process exits.
func closeUpstreams(pools []*upstream.Pool, bal *balance.Balancer, recycling *sync.WaitGroup, wait time.Duration) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		recycling.Wait()
		var wg sync.WaitGroup
		for _, p := range pools {
			wg.Go(func() { p.Close() })
		}
		wg.Wait()
		// The pools first: the probes and hedged attempts that the
		// balancer's Close waits for then end at once.
		if bal != nil {
			bal.Close()
		}
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// upstreamConfig is the pool's configuration for spec. Queries always carry
// edns-tcp-keepalive, so that each resolver says how long it keeps an idle
// connection (RFC 7858 §3.4).
func (c *config) upstreamConfig(spec upstream.Spec, roots *x509.CertPool, obs upstream.Observer, log *slog.Logger) upstream.Config {
	return upstream.Config{
		Addr:             spec.Addr,
		ServerName:       spec.ServerName,
		RootCAs:          roots,
		Pins:             c.TLS.Pins,
		Resolver:         c.Bootstrap.Resolver(),
		ResolverName:     c.Bootstrap.Name(),
		MaxConns:         c.Upstream.MaxConns,
		WarmConns:        c.Upstream.WarmConns,
		MaxInFlight:      c.Upstream.MaxInflight,
		ConnectTimeout:   c.Upstream.ConnectTimeout,
		HandshakeTimeout: c.Upstream.HandshakeTimeout,
		IdleTimeout:      c.Upstream.IdleTimeout,
		AttemptTimeout:   c.Upstream.AttemptTimeout,
		ProbeName:        c.Probe.Name,
		FastOpen:         c.Upstream.TCPFastopen,
		Rewrite:          dnsmsg.Rewrite{PadBlock: c.Padding.Block(), Keepalive: true},
		Observer:         obs,
		Logger:           log,
	}
}

func (c *config) balanceConfig() balance.Config {
	return balance.Config{
		Policy:          c.Policy,
		MaxRetries:      c.MaxRetries,
		HedgeAfter:      c.HedgeAfter,
		ProbeName:       c.Probe.Name,
		ProbeTimeout:    c.Probe.Timeout,
		AttemptTimeout:  c.Upstream.AttemptTimeout,
		ProbeMaxBackoff: c.Probe.MaxBackoff,
		ProbeResetAfter: c.Probe.ResetAfter,
	}
}

func (c *config) emitConfig(log *slog.Logger) emit.Config {
	return emit.Config{
		Addr:          c.Statsd.Addr,
		Format:        c.Statsd.Format,
		Prefix:        c.Statsd.Prefix,
		Tags:          c.Statsd.Tags,
		FlushInterval: c.Statsd.FlushInterval,
		SingleValue:   c.Statsd.SingleValue,
		CloseTimeout:  metricsCloseWait,
		Logger:        log,
	}
}

// upstreamNames returns the upstreams as they are written in settings.
func (c *config) upstreamNames() []string {
	ups := make([]string, len(c.Upstreams))
	for i, u := range c.Upstreams {
		ups[i] = u.String()
	}
	return ups
}

// logAttrs is the effective configuration, logged once at start-up.
func (c *config) logAttrs(bound []string, metrics bool) []any {
	return []any{
		"version", version,
		"listen", bound,
		"upstreams", c.upstreamNames(),
		"policy", string(c.Policy),
		"allow", len(c.Allow),
		"query_timeout", c.QueryTimeout.String(),
		"transfer_timeout", c.TransferTimeout.String(),
		"client_max_inflight_mib", c.Client.MaxInflightMIB,
		"max_retries", c.MaxRetries,
		"hedge_after", c.HedgeAfter.String(),
		"ca_file", c.TLS.CAFile,
		"pins", len(c.TLS.Pins),
		"upstream_max_conns", c.Upstream.MaxConns,
		"upstream_warm_conns", c.Upstream.WarmConns,
		"upstream_max_inflight", c.Upstream.MaxInflight,
		"upstream_idle_timeout", c.Upstream.IdleTimeout.String(),
		"upstream_attempt_timeout", c.Upstream.AttemptTimeout.String(),
		"tcp_fastopen", c.Upstream.TCPFastopen,
		"padding", string(c.Padding),
		"statsd", c.Statsd.Addr,
		"statsd_format", string(c.Statsd.Format),
		"metrics", metrics,
		"log_level", c.Log.Level.String(),
	}
}

// healthcheck asks the first listen address for the root NS over UDP. Any
// answer but SERVFAIL is healthy: REFUSED still shows a running proxy,
// while SERVFAIL means no upstream can be reached.
func healthcheck(cfg *config) error {
	addr, err := localAddr(cfg.Listen[0])
	if err != nil {
		return err
	}
	const id = 0x4843
	query, err := dnsmsg.NewQuery(id, ".", dnsmsg.TypeNS)
	if err != nil {
		return err
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(cfg.QueryTimeout + time.Second)); err != nil {
		return err
	}
	if _, err := c.Write(query); err != nil {
		return err
	}
	buf := make([]byte, 65535)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return fmt.Errorf("no answer from %s: %w", addr, err)
		}
		ans := buf[:n]
		if n < dnsmsg.HeaderLen || dnsmsg.ID(ans) != id || !dnsmsg.IsResponse(ans) {
			continue // not ours
		}
		if rc := dnsmsg.Rcode(ans); rc == dnsmsg.RcodeServFail {
			return errors.New("SERVFAIL: no upstream answered")
		}
		return nil
	}
}

// localAddr turns a listen address into one to query on this host: a
// wildcard or empty host becomes loopback.
func localAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	switch {
	case host == "" || host == "0.0.0.0":
		host = "127.0.0.1"
	case host == "::":
		host = "::1"
	default:
		if a, err := netip.ParseAddr(host); err == nil && a.IsUnspecified() {
			host = "127.0.0.1"
		}
	}
	return net.JoinHostPort(host, port), nil
}
