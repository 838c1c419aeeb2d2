package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
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

// serve wires the packages together, serves until ctx is done, then shuts
// down in order: clients first, so that queries in flight still reach their
// upstreams, then the balancer and the pools, then metrics. ready, if not
// nil, is given the bound addresses once queries are being served.
func serve(ctx context.Context, cfg *config, log *slog.Logger, ready func(addrs []string)) error {
	metrics, err := emit.New(cfg.emitConfig(log))
	if err != nil {
		// The settings were checked already, so this is the statsd host
		// not resolving now. Metrics must never stop DNS: serve without.
		log.Warn("metrics are off", tint.Err(err))
		if metrics, err = emit.New(emit.Config{Format: emit.StatsD}); err != nil {
			return err
		}
	}
	defer metrics.Close()

	var roots *x509.CertPool // nil: the system roots
	if cfg.TLS.CAFile != "" {
		if roots, err = loadCAs(cfg.TLS.CAFile); err != nil {
			return fmt.Errorf("%s: %w", env("TLS_CA_FILE"), err)
		}
	}
	var pools []*upstream.Pool
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
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
	bal, err := balance.New(ups, bcfg)
	if err != nil {
		return err
	}
	defer func() {
		// The pools first: the probes and hedged attempts that the
		// balancer's Close waits for then end at once.
		for _, p := range pools {
			p.Close()
		}
		bal.Close()
	}()

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
	log.Info("dotproxy started", cfg.logAttrs(srv.Addrs(), metrics.Enabled())...)
	if ready != nil {
		ready(srv.Addrs())
	}

	<-ctx.Done()
	log.Info("shutting down: answering the queries in flight", "why", context.Cause(ctx).Error())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.QueryTimeout+time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("queries still in flight at the shutdown deadline were cancelled")
	}
	log.Info("dotproxy stopped")
	return nil
}

func (c *config) upstreamConfig(spec upstream.Spec, roots *x509.CertPool, obs upstream.Observer, log *slog.Logger) upstream.Config {
	return upstream.Config{
		Addr:             spec.Addr,
		ServerName:       spec.ServerName,
		RootCAs:          roots,
		Pins:             c.TLS.Pins,
		Resolver:         c.Bootstrap.resolver(),
		MaxConns:         c.Upstream.MaxConns,
		WarmConns:        c.Upstream.WarmConns,
		MaxInFlight:      c.Upstream.MaxInflight,
		ConnectTimeout:   c.Upstream.ConnectTimeout,
		HandshakeTimeout: c.Upstream.HandshakeTimeout,
		IdleTimeout:      c.Upstream.IdleTimeout,
		AttemptTimeout:   c.Upstream.AttemptTimeout,
		ProbeName:        c.Probe.Name,
		FastOpen:         c.Upstream.TCPFastopen,
		Rewrite:          c.Padding.rewrite(),
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
		SlowAfter:       c.Upstream.AttemptTimeout,
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
		Logger:        log,
	}
}

// logAttrs is the effective configuration, logged once at start-up.
func (c *config) logAttrs(bound []string, metrics bool) []any {
	ups := make([]string, len(c.Upstreams))
	for i, u := range c.Upstreams {
		ups[i] = u.String()
	}
	return []any{
		"version", version,
		"listen", bound,
		"upstreams", ups,
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
