package emit_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/dotproxy/dotproxy/emit"
)

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name      string
		cfg       emit.Config
		wantField string // empty: valid
	}{
		{"zero config", emit.Config{}, ""},
		{"udp", emit.Config{Addr: "127.0.0.1:8125"}, ""},
		{"host name", emit.Config{Addr: "statsd.example:8125", Format: emit.StatsD}, ""},
		{"ipv6", emit.Config{Addr: "[::1]:8125"}, ""},
		{"unix", emit.Config{Addr: "unix:///var/run/datadog/dsd.socket"}, ""},
		{"tags", emit.Config{Tags: []string{"env:home", "edge"}}, ""},
		{"dotted prefix", emit.Config{Prefix: "edge1.dotproxy"}, ""},
		{"no port", emit.Config{Addr: "127.0.0.1"}, "Addr"},
		{"port zero", emit.Config{Addr: "127.0.0.1:0"}, "Addr"},
		{"port too big", emit.Config{Addr: "127.0.0.1:65536"}, "Addr"},
		{"named port", emit.Config{Addr: "127.0.0.1:statsd"}, "Addr"},
		{"no host", emit.Config{Addr: ":8125"}, "Addr"},
		{"relative unix path", emit.Config{Addr: "unix://dsd.socket"}, "Addr"},
		{"unix in statsd format", emit.Config{Addr: "unix:///tmp/s", Format: emit.StatsD}, "Addr"},
		{"unknown format", emit.Config{Format: "graphite"}, "Format"},
		{"prefix with slash", emit.Config{Prefix: "dot/proxy"}, "Prefix"},
		{"prefix ending in a dot", emit.Config{Prefix: "dotproxy."}, "Prefix"},
		{"tag with a pipe", emit.Config{Tags: []string{"a|b"}}, "Tags"},
		{"empty tag", emit.Config{Tags: []string{""}}, "Tags"},
		{"negative interval", emit.Config{FlushInterval: -1}, "FlushInterval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			// The field comes first, so that main can tell which of its
			// variables fills it; the variables are main's to name.
			rest, named := strings.CutPrefix(err.Error(), emit.ErrConfig.Error()+": "+tt.wantField)
			if !errors.Is(err, emit.ErrConfig) || !named || !strings.HasPrefix(rest, " ") && !strings.HasPrefix(rest, ":") {
				t.Fatalf("Validate() = %v, want an ErrConfig naming %s first", err, tt.wantField)
			}
			if strings.Contains(err.Error(), "DOTPROXY_") {
				t.Fatalf("Validate() = %v, which names a variable", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("Validate() = %q, want one line", err)
			}
		})
	}
}

func TestFormat_UnmarshalText(t *testing.T) {
	tests := []struct {
		text    string
		want    emit.Format
		wantErr bool
	}{
		{"dogstatsd", emit.DogStatsD, false},
		{"statsd", emit.StatsD, false},
		{"", emit.DogStatsD, false},
		{"StatsD", "", true},
		{"influx", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			var f emit.Format
			err := f.UnmarshalText([]byte(tt.text))
			if tt.wantErr {
				if !errors.Is(err, emit.ErrConfig) || !strings.Contains(err.Error(), "dogstatsd or statsd") || !strings.Contains(err.Error(), tt.text) {
					t.Fatalf("UnmarshalText(%q) = %v, want an ErrConfig quoting the text and listing the formats", tt.text, err)
				}
				if strings.Contains(err.Error(), "DOTPROXY_") {
					t.Fatalf("UnmarshalText(%q) = %v, which names a variable", tt.text, err)
				}
				return
			}
			if err != nil || f != tt.want {
				t.Fatalf("UnmarshalText(%q) = %q, %v; want %q", tt.text, f, err, tt.want)
			}
		})
	}
}

func TestNew_unresolvableHost(t *testing.T) {
	clearDD(t)
	for _, f := range []emit.Format{emit.DogStatsD, emit.StatsD} {
		t.Run(string(f), func(t *testing.T) {
			// Not a valid domain name: the resolver refuses it without
			// sending a query anywhere, as a test must not.
			_, err := emit.New(emit.Config{Addr: "no-such!host:8125", Format: f})
			if !errors.Is(err, emit.ErrConfig) || !strings.Contains(err.Error(), "Addr") || strings.Contains(err.Error(), "DOTPROXY_") {
				t.Fatalf("New = %v, want an ErrConfig naming the Addr field, and no variable", err)
			}
		})
	}
}
