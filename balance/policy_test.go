package balance_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/dotproxy/dotproxy/balance"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want balance.Policy
	}{
		{name: "canonical", in: "round_robin", want: balance.RoundRobin},
		{name: "original camel case", in: "HistoricalConnections", want: balance.HistoricalConnections},
		{name: "dashes", in: "least-outstanding", want: balance.LeastOutstanding},
		{name: "upper case", in: "FAILOVER", want: balance.Failover},
		{name: "mixed separators", in: "Round-_Robin", want: balance.RoundRobin},
		{name: "availability", in: "Availability", want: balance.Availability},
		{name: "random", in: "random", want: balance.Random},
		{name: "fastest", in: "Fastest", want: balance.Fastest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p balance.Policy
			if err := p.UnmarshalText([]byte(tc.in)); err != nil {
				t.Fatal(err)
			}
			if p != tc.want {
				t.Errorf("UnmarshalText(%q) = %q, want %q", tc.in, p, tc.want)
			}
		})
	}
}

func TestParsePolicyUnknown(t *testing.T) {
	for _, in := range []string{"", "fastests", "round robin", "weighted"} {
		t.Run(in, func(t *testing.T) {
			p := balance.Fastest
			err := p.UnmarshalText([]byte(in))
			if !errors.Is(err, balance.ErrUnknownPolicy) {
				t.Fatalf("error = %v, want ErrUnknownPolicy", err)
			}
			if p != balance.Fastest {
				t.Errorf("policy changed to %q on error", p)
			}
			msg := err.Error()
			if !strings.Contains(msg, `"`+in+`"`) {
				t.Errorf("error %q does not quote the value", msg)
			}
			for _, allowed := range balance.Policies {
				if !strings.Contains(msg, string(allowed)) {
					t.Errorf("error %q does not list %s", msg, allowed)
				}
			}
		})
	}
}

func TestPolicyMarshalRoundTrip(t *testing.T) {
	for _, p := range balance.Policies {
		text, err := p.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back balance.Policy
		if err := back.UnmarshalText(text); err != nil || back != p {
			t.Errorf("%s: round trip gave %q, %v", p, back, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  balance.Config
		want error
	}{
		{name: "zero value", cfg: balance.Config{}},
		{name: "full", cfg: balance.Config{
			Policy: "RoundRobin", MaxRetries: 3, HedgeAfter: 1, ProbeName: "probe.example.",
			ProbeTimeout: 1, ProbeMaxBackoff: 1, ProbeResetAfter: 1,
		}},
		{name: "unknown policy", cfg: balance.Config{Policy: "weighted"}, want: balance.ErrUnknownPolicy},
		{name: "negative retries", cfg: balance.Config{MaxRetries: -1}, want: balance.ErrInvalidConfig},
		{name: "too many retries", cfg: balance.Config{MaxRetries: 17}, want: balance.ErrInvalidConfig},
		{name: "negative hedge", cfg: balance.Config{HedgeAfter: -1}, want: balance.ErrInvalidConfig},
		{name: "negative probe timeout", cfg: balance.Config{ProbeTimeout: -1}, want: balance.ErrInvalidConfig},
		{name: "negative backoff cap", cfg: balance.Config{ProbeMaxBackoff: -1}, want: balance.ErrInvalidConfig},
		{name: "negative reset", cfg: balance.Config{ProbeResetAfter: -1}, want: balance.ErrInvalidConfig},
		{name: "bad probe name", cfg: balance.Config{ProbeName: "a..b"}, want: balance.ErrInvalidConfig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == nil && err != nil || !errors.Is(err, tc.want) {
				t.Errorf("Validate() = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := balance.New(nil, balance.Config{}); !errors.Is(err, balance.ErrNoUpstream) {
		t.Errorf("New(nil) error = %v, want ErrNoUpstream", err)
	}
	ups := make([]balance.Member, balance.MaxUpstreams+1)
	if _, err := balance.New(ups, balance.Config{}); !errors.Is(err, balance.ErrTooManyUpstreams) {
		t.Errorf("New(65 upstreams) error = %v, want ErrTooManyUpstreams", err)
	}
}
