package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dotproxy/dotproxy/balance"
	"github.com/dotproxy/dotproxy/emit"
	"github.com/dotproxy/dotproxy/proxy"
	"github.com/dotproxy/dotproxy/route"
	"github.com/dotproxy/dotproxy/upstream"
	"github.com/lmittmann/tint"
)

// The layers fit together as serve wires them; a signature that drifts
// fails the build here rather than losing a path at run time.
var (
	_ balance.Upstream   = (*upstream.Pool)(nil)
	_ balance.Transferer = (*upstream.Pool)(nil)
	_ balance.Observer   = (*emit.UpstreamMetrics)(nil)
	_ upstream.Observer  = (*emit.UpstreamMetrics)(nil)
	_ proxy.Resolver     = (*balance.Balancer)(nil)
	// Zone transfers over TCP pass through whole only if the balancer
	// can pass them on; without it they get NOTIMP.
	_ proxy.Transferer = (*balance.Balancer)(nil)
	// With routes, a Router stands between the proxy and the balancers.
	_ proxy.Resolver   = (*route.Router)(nil)
	_ proxy.Transferer = (*route.Router)(nil)
	_ route.Resolver   = (*balance.Balancer)(nil)
	_ route.Transferer = (*balance.Balancer)(nil)
)

// serve wires the packages together, serves until ctx is done, then shuts
// down in order: clients first, so that queries in flight still reach their
// upstreams, then the balancer and the pools, then metrics, each within its
// share of the stop budget (shutdown.go). Each value received from hup
// (SIGHUP) recycles the upstream connections. ready, if not nil, is given
// the bound addresses once queries are being served.
func serve(ctx context.Context, cfg *config, log *slog.Logger, hup <-chan os.Signal, ready func(addrs []string)) (err error) {
	memLimit := limitMemory(int64(cfg.Client.MaxInflightMIB) << 20)
	metrics, err := emit.New(cfg.emitConfig(log))
	if err != nil {
		// The settings were checked already, so this is the statsd host
		// not resolving now. Metrics must never stop DNS: serve without.
		log.Warn("metrics are off", "setting", env("STATSD_ADDR"), tint.Err(err))
		if metrics, err = emit.New(emit.Config{Format: emit.StatsD}); err != nil {
			return err
		}
	}
	var (
		ups       upstreamGroups
		recycling sync.WaitGroup
	)
	defer func() {
		if !closeUpstreams(ups.pools, ups.bals, &recycling, upstreamCloseWait) {
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
	resolver, err := ups.build(cfg, metrics, roots, log)
	if err != nil {
		return err
	}
	// Readiness follows the default route: it is where every name without
	// a route of its own goes.
	readyState := newReadiness(ups.routes[0].bal, log)
	readyState.watch()
	defer readyState.stop()

	pcfg := cfg.proxyConfig(resolver, metrics.Proxy(), log)
	pcfg.Status = &statusSource{started: time.Now(), ready: readyState, routes: ups.routes}
	srv, err := proxy.New(pcfg)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	if cfg.defaultUpstreams {
		which := "every query"
		if len(cfg.routes) > 0 {
			which = "every query that no route takes"
		}
		log.Warn(env("UPSTREAMS")+" is not set: "+which+" goes to the built-in default resolvers "+
			strings.Join(cfg.upstreamNames(), ", "), "upstreams", cfg.upstreamNames())
	}
	log.Info("dotproxy started", append(cfg.logAttrs(srv.Addrs(), metrics.Enabled()),
		"memory_limit_mib", memLimit>>20, "routes", cfg.routeAttrs())...)
	if ready != nil {
		ready(srv.Addrs())
	}

	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-hup:
			recycling.Go(func() { recycle(ups.pools, log) })
		}
	}
	readyState.drain(cfg.Lameduck, context.Cause(ctx).Error())
	log.Info("shutting down: answering the queries in flight", "why", context.Cause(ctx).Error())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.QueryTimeout+answerGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("queries still in flight at the shutdown deadline were cancelled")
	}
	return nil
}

// upstreamGroups are the pools and balancers serve builds, one group (a
// balancer over pools of its own) a route, the default route's first, and
// closes when it stops.
type upstreamGroups struct {
	pools  []*upstream.Pool
	bals   []*balance.Balancer
	routes []statusRoute // the default route first, for the status
}

// build wires the default route and each configured route, and returns
// what the proxy sends queries to: with no route, the default route's
// balancer itself, so that nothing stands between; otherwise a Router over
// every route's balancer.
func (u *upstreamGroups) build(cfg *config, metrics *emit.Emitter, roots *x509.CertPool, log *slog.Logger) (proxy.Resolver, error) {
	def, err := u.group(cfg, metrics, roots, log, emit.DefaultRoute, cfg.Upstreams, cfg.Policy)
	if err != nil {
		return nil, err
	}
	if len(cfg.routes) == 0 {
		return def, nil
	}
	routes := make([]route.Route, 0, len(cfg.routes))
	for i := range cfg.routes {
		r := &cfg.routes[i]
		bal, err := u.group(cfg, metrics, roots, log, r.name, r.upstreams, cfg.routePolicy(r))
		if err != nil {
			return nil, err
		}
		routes = append(routes, route.Route{Name: r.name, Suffixes: r.domains, Resolver: bal})
	}
	router, err := route.New(def, routes)
	if err != nil {
		return nil, err
	}
	return router, nil
}

// group builds a pool for each upstream of the route called name and a
// balancer over them, with the shared balance settings and policy. Each
// route has pools of its own, even for an upstream another route lists
// too, so that health, retries and probes stay within the route.
func (u *upstreamGroups) group(cfg *config, metrics *emit.Emitter, roots *x509.CertPool, log *slog.Logger,
	name string, specs upstreamList, policy balance.Policy) (*balance.Balancer, error) {
	members := make([]balance.Member, 0, len(specs))
	first := len(u.pools)
	for _, spec := range specs {
		// An upstream's one identity, from its pool to the metrics of the
		// answers it gives: bound here, handed along with it.
		um := metrics.RouteUpstream(name, spec.Addr)
		p, err := upstream.New(cfg.upstreamConfig(spec, roots, um, log))
		if err != nil {
			return nil, err
		}
		um.Watch(p)
		u.pools = append(u.pools, p)
		members = append(members, balance.Member{Upstream: p, Observer: um})
	}
	bc := cfg.balanceConfig()
	bc.Policy = policy
	// The proxy's SERVFAIL for a query none of these answered counts
	// against the route.
	bc.Unanswered = metrics.RouteUpstream(name, "")
	bal, err := balance.New(members, bc)
	if err != nil {
		return nil, err
	}
	u.bals = append(u.bals, bal)
	u.routes = append(u.routes, statusRoute{name: name, bal: bal, pools: u.pools[first:len(u.pools):len(u.pools)]})
	return bal, nil
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
