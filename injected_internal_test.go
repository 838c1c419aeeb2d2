package main

import "testing"

// Every shape of variable that Kubernetes service links and Docker links
// inject for a Service or link whose name starts with "dotproxy" is let
// through; the same names with values those never hold are not, nor are
// mistyped settings.
func TestInjected(t *testing.T) {
	link := map[string]string{
		"DOTPROXY_NAME":         "/app/dotproxy",
		"DOTPROXY_METRICS_NAME": "/app/dotproxy-metrics",
	}
	tests := []struct {
		name, key, value string
		want             bool
	}{
		// Kubernetes, Service "dotproxy".
		{"service host", "DOTPROXY_SERVICE_HOST", "10.0.0.11", true},
		{"service host v6", "DOTPROXY_SERVICE_HOST", "fd00::11", true},
		{"service port", "DOTPROXY_SERVICE_PORT", "53", true},
		{"named service port", "DOTPROXY_SERVICE_PORT_DNS_UDP", "53", true},
		{"first port", "DOTPROXY_PORT", "udp://10.0.0.11:53", true},
		{"first port v6", "DOTPROXY_PORT", "tcp://[fd00::11]:53", true},
		{"port url", "DOTPROXY_PORT_53_UDP", "udp://10.0.0.11:53", true},
		{"port proto", "DOTPROXY_PORT_53_UDP_PROTO", "udp", true},
		{"port number", "DOTPROXY_PORT_53_UDP_PORT", "53", true},
		{"port addr", "DOTPROXY_PORT_53_UDP_ADDR", "10.0.0.11", true},
		{"sctp", "DOTPROXY_PORT_53_SCTP", "sctp://10.0.0.11:53", true},
		// A longer Service name, "dotproxy-metrics".
		{"longer service host", "DOTPROXY_METRICS_SERVICE_HOST", "10.0.0.12", true},
		{"longer service port", "DOTPROXY_METRICS_SERVICE_PORT", "8125", true},
		{"longer port url", "DOTPROXY_METRICS_PORT_8125_UDP", "udp://10.0.0.12:8125", true},
		{"longer port addr", "DOTPROXY_METRICS_PORT_8125_UDP_ADDR", "10.0.0.12", true},
		// Docker, --link dotproxy.
		{"link name", "DOTPROXY_NAME", "/app/dotproxy", true},
		{"link env", "DOTPROXY_ENV_TZ", "Europe/Paris", true},
		{"link env lower case", "DOTPROXY_ENV_http_proxy", "http://proxy:3128", true},
		{"longer link name", "DOTPROXY_METRICS_NAME", "/app/dotproxy-metrics", true},
		{"longer link env", "DOTPROXY_METRICS_ENV_X", "anything at all", true},
		{"range start", "DOTPROXY_PORT_53_TCP_START", "tcp://172.17.0.2:53", true},
		{"range end", "DOTPROXY_PORT_53_TCP_END", "tcp://172.17.0.2:54", true},
		{"range port start", "DOTPROXY_PORT_53_TCP_PORT_START", "53", true},
		{"range port end", "DOTPROXY_PORT_53_TCP_PORT_END", "54", true},

		// The names, with values no orchestrator gives them.
		{"service host not an IP", "DOTPROXY_SERVICE_HOST", "dotproxy.default.svc", false},
		{"service port not a number", "DOTPROXY_SERVICE_PORT", "dns", false},
		{"service port zero-padded", "DOTPROXY_SERVICE_PORT", "053", false},
		{"service port out of range", "DOTPROXY_SERVICE_PORT", "65536", false},
		{"first port bare", "DOTPROXY_PORT", "53", false},
		{"first port host name", "DOTPROXY_PORT", "udp://dotproxy:53", false},
		{"first port other scheme", "DOTPROXY_PORT", "http://10.0.0.11:53", false},
		{"port url of another port", "DOTPROXY_PORT_53_UDP", "udp://10.0.0.11:5353", false},
		{"port url of another proto", "DOTPROXY_PORT_53_UDP", "tcp://10.0.0.11:53", false},
		{"port proto other", "DOTPROXY_PORT_53_UDP_PROTO", "tcp", false},
		{"port proto upper case", "DOTPROXY_PORT_53_UDP_PROTO", "UDP", false},
		{"port number other", "DOTPROXY_PORT_53_UDP_PORT", "5353", false},
		{"port addr not an IP", "DOTPROXY_PORT_53_UDP_ADDR", "dotproxy", false},
		{"port key proto lower case", "DOTPROXY_PORT_53_udp", "udp://10.0.0.11:53", false},
		{"port key unknown proto", "DOTPROXY_PORT_53_QUIC", "quic://10.0.0.11:53", false},
		{"port key unknown field", "DOTPROXY_PORT_53_UDP_HOST", "10.0.0.11", false},
		{"range end before start", "DOTPROXY_PORT_53_TCP_END", "tcp://172.17.0.2:52", false},
		{"link name not a path", "DOTPROXY_NAME", "dotproxy", false},
		{"link name of another alias", "DOTPROXY_NAME", "/app/unbound", false},
		{"link env without its name", "DOTPROXY_UPSTREAM_ENV_X", "1", false},
		{"lower-case alias", "dotproxy_SERVICE_HOST", "10.0.0.11", false},

		// Mistyped settings.
		{"setting a letter short", "DOTPROXY_UPSTREAM", "1.1.1.1:853", false},
		{"setting with a port-like value", "DOTPROXY_UPSTREAM_PORT", "853", false},
		{"setting with an address", "DOTPROXY_LISTN", "10.0.0.11", false},
		{"setting run together", "DOTPROXY_QUERYTIMEOUT", "2s", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{tt.key: tt.value}
			if tt.key != "DOTPROXY_NAME" && tt.key != "DOTPROXY_METRICS_NAME" {
				for k, v := range link {
					vars[k] = v
				}
			}
			if got := injected(tt.key, tt.value, vars); got != tt.want {
				t.Fatalf("injected(%s=%s) = %v, want %v", tt.key, tt.value, got, tt.want)
			}
		})
	}
}
