package main

import (
	"errors"
	"slices"
	"testing"
)

func TestNearest(t *testing.T) {
	known, err := knownKeys()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, want string }{
		{"DOTPROXY_UPSTREAM", "DOTPROXY_UPSTREAMS"},
		{"DOTPROXY_LISTN", "DOTPROXY_LISTEN"},
		{"dotproxy_listen", "DOTPROXY_LISTEN"},
		{"DOTPROXY_ALLOWED", "DOTPROXY_ALLOW"},
		{"DOTPROXY_LOGLEVEL", "DOTPROXY_LOG_LEVEL"},
		{"DOTPROXY_STATSD_ADDRESS", "DOTPROXY_STATSD_ADDR"},
		{"DOTPROXY_TRANSFER_TIMEOUTS", "DOTPROXY_TRANSFER_TIMEOUT"},
		{"DOTPROXY_CLIENT_MAX_INFLIGHT_MB", "DOTPROXY_CLIENT_MAX_INFLIGHT_MIB"},
		{"DOTPROXY_CACHE_SIZE", ""},
		{"DOTPROXY_TIMEOUT", ""}, // the query's, the probe's, the handshake's?
		{"DOTPROXY_X", ""},
	}
	for _, tt := range tests {
		if got := nearest(tt.name, known); got != tt.want {
			t.Errorf("nearest(%s) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestCheckEnviron(t *testing.T) {
	known, err := knownKeys()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"DOTPROXY_UPSTREAMS", "DOTPROXY_TLS_CA_FILE", "DOTPROXY_UPSTREAM_MAX_CONNS",
		"DOTPROXY_TRANSFER_TIMEOUT", "DOTPROXY_CLIENT_MAX_INFLIGHT_MIB", "DOTPROXY_LOG_FORMAT"} {
		if !slices.Contains(known, k) {
			t.Errorf("knownKeys lacks %s", k)
		}
	}
	environ := []string{
		"PATH=/usr/bin", "HOME=/", "DOTPROXYX=1", // not DOTPROXY_*
		"DOTPROXY_UPSTREAMS=9.9.9.9", "DOTPROXY_SERVICE_HOST=10.0.0.11",
		"DOTPROXY_LISTN=:53", "DOTPROXY_CACHE=1", "DOTPROXY_PORT=53",
	}
	err = checkEnviron(environ, known)
	var u unknownSettingsError
	if !errors.As(err, &u) {
		t.Fatalf("checkEnviron: %v, want unknownSettingsError", err)
	}
	want := unknownSettingsError{
		{name: "DOTPROXY_CACHE"},
		{name: "DOTPROXY_LISTN", near: "DOTPROXY_LISTEN"},
		{name: "DOTPROXY_PORT"},
	}
	if !slices.Equal(u, want) {
		t.Fatalf("got %+v, want %+v", u, want)
	}
	if err := checkEnviron(environ[:5], known); err != nil {
		t.Fatalf("only settings and links: %v", err)
	}
}
