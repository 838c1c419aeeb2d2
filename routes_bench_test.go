//go:build unix

package main

import "testing"

// BenchmarkProxyUDPRouted is BenchmarkProxyUDP with routes configured, so
// that a route.Router stands between the proxy and the balancers: for the
// benchmark's name (bench.example) under no route, the common case, and
// under one. Compare with BenchmarkProxyUDP, which has no router on the
// path, for what routing costs.
func BenchmarkProxyUDPRouted(b *testing.B) {
	routes := map[string]string{
		"DOTPROXY_ROUTE_CORP_DOMAINS":   "corp.example,10.in-addr.arpa",
		"DOTPROXY_ROUTE_CORP_UPSTREAMS": "{upstream}",
		"DOTPROXY_ROUTE_LAB_DOMAINS":    "lab.corp.example,168.192.in-addr.arpa",
		"DOTPROXY_ROUTE_LAB_UPSTREAMS":  "{upstream}",
	}
	b.Run("default", func(b *testing.B) { benchProxyParallel(b, routes) })
	routes["DOTPROXY_ROUTE_BENCH_DOMAINS"] = "bench.example"
	routes["DOTPROXY_ROUTE_BENCH_UPSTREAMS"] = "{upstream}"
	b.Run("routed", func(b *testing.B) { benchProxyParallel(b, routes) })
}
