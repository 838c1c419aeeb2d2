package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/balance"
	"github.com/dotproxy/dotproxy/emit"
	"github.com/dotproxy/dotproxy/ratelimit"
	"github.com/dotproxy/dotproxy/upstream"
	"github.com/kelseyhightower/envconfig"
)

// clearSettings unsets every DOTPROXY_* variable for the test, so that the
// environment it runs in cannot change what it sees.
func clearSettings(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); hasPrefixFold(k, envPrefix+"_") {
			t.Setenv(k, "") // restored after the test
			os.Unsetenv(k)
		}
	}
}

// mustVariables is variables for a test.
func mustVariables(t *testing.T, c *config) []variable {
	t.Helper()
	vars, err := variables(c)
	if err != nil {
		t.Fatal(err)
	}
	return vars
}

// With no variable set, envconfig leaves every field at its default; and
// each default, written as -h prints it, reads back as the same value.
func TestDefaultsReadBackAsPrinted(t *testing.T) {
	clearSettings(t)
	unset := defaultConfig()
	if err := envconfig.Process(envPrefix, unset); err != nil {
		t.Fatal(err)
	}
	want := mustVariables(t, defaultConfig())
	for i, v := range mustVariables(t, unset) {
		if got := v.field.Interface(); !reflect.DeepEqual(got, want[i].field.Interface()) {
			t.Errorf("%s unset: %v, want the default %v", v.name, got, want[i].field.Interface())
		}
	}

	for _, v := range want {
		if text := settingText(v.field); text != "" {
			t.Setenv(v.name, text)
		}
	}
	var read config
	if err := envconfig.Process(envPrefix, &read); err != nil {
		t.Fatal(err)
	}
	for i, v := range mustVariables(t, &read) {
		if got := v.field.Interface(); !reflect.DeepEqual(got, want[i].field.Interface()) {
			t.Errorf("%s=%q reads as %v, want %v", v.name, settingText(want[i].field), got, want[i].field.Interface())
		}
	}
}

func TestDurationText(t *testing.T) {
	for d, want := range map[string]string{
		"0s": "0s", "4s": "4s", "1m": "60s", "1.5s": "1500ms", "-5ms": "-5ms", "2h": "7200s", "1.5ms": "1.5ms",
	} {
		if got := durationText(mustDuration(t, d)); got != want {
			t.Errorf("durationText(%s) = %q, want %q", d, got, want)
		}
	}
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// loadWith runs loadConfig with exactly the given settings.
func loadWith(t *testing.T, env map[string]string) (*config, error) {
	t.Helper()
	clearSettings(t)
	for k, v := range env {
		t.Setenv(k, v)
	}
	return loadConfig()
}

// Each bad value stops start-up with an error naming its variable and the
// value, whether main checks it or a package's Validate does: a package
// names its own field, and main finds the variable behind it.
func TestValidateNamesTheVariable(t *testing.T) {
	tests := []struct {
		key, value string
		wantValue  string // as the error quotes it; empty: value
	}{
		{"DOTPROXY_UPSTREAMS", " , ", "(empty)"},
		{"DOTPROXY_UPSTREAMS", strings.Repeat("9.9.9.9,", 65), "9.9.9.9:853" + strings.Repeat(",9.9.9.9:853", 64)},
		{"DOTPROXY_LISTEN", ",", "(empty)"},
		{"DOTPROXY_QUERY_TIMEOUT", "0s", ""},
		{"DOTPROXY_TRANSFER_TIMEOUT", "-1s", ""},
		{"DOTPROXY_CLIENT_MAX_INFLIGHT_MIB", "4097", ""},
		{"DOTPROXY_CLIENT_UDP_SOCKETS", "65", ""},
		{"DOTPROXY_CLIENT_UDP_SOCKETS", "0", ""},
		{"DOTPROXY_CLIENT_TCP_MAX_CONNS", "0", ""},
		{"DOTPROXY_CLIENT_TCP_MAX_INFLIGHT", "-1", ""},
		{"DOTPROXY_CLIENT_UDP_MAX_INFLIGHT", "0", ""},
		{"DOTPROXY_CLIENT_TCP_IDLE_TIMEOUT", "0s", ""},
		{"DOTPROXY_TLS_CA_FILE", "/dev/null", ""},
		// upstream.Config.Validate names MaxConns, WarmConns, MaxInFlight...
		{"DOTPROXY_UPSTREAM_MAX_CONNS", "0", ""},
		{"DOTPROXY_UPSTREAM_WARM_CONNS", "5", ""},
		{"DOTPROXY_UPSTREAM_WARM_CONNS", "-1", ""},
		{"DOTPROXY_UPSTREAM_MAX_INFLIGHT", "65536", ""},
		{"DOTPROXY_UPSTREAM_CONNECT_TIMEOUT", "-2s", ""},
		{"DOTPROXY_UPSTREAM_HANDSHAKE_TIMEOUT", "0s", ""},
		{"DOTPROXY_UPSTREAM_IDLE_TIMEOUT", "0s", ""},
		{"DOTPROXY_UPSTREAM_ATTEMPT_TIMEOUT", "0s", ""},
		{"DOTPROXY_PROBE_NAME", "bad..name", ""},
		// ...balance.Config.Validate MaxRetries, HedgeAfter, Probe*...
		{"DOTPROXY_MAX_RETRIES", "17", ""},
		{"DOTPROXY_MAX_RETRIES", "-1", ""},
		{"DOTPROXY_HEDGE_AFTER", "-5ms", ""},
		{"DOTPROXY_PROBE_TIMEOUT", "0s", ""},
		{"DOTPROXY_PROBE_MAX_BACKOFF", "-1s", ""},
		{"DOTPROXY_PROBE_RESET_AFTER", "0s", ""},
		// ...and emit.Config.Validate Addr, Prefix, Tags.
		{"DOTPROXY_STATSD_ADDR", "no-port", ""},
		{"DOTPROXY_STATSD_ADDR", "unix:///run/dsd.socket", ""}, // with STATSD_FORMAT=statsd below
		{"DOTPROXY_STATSD_PREFIX", "dot/proxy", ""},
		{"DOTPROXY_STATSD_TAGS", "a|b", ""},
		{"DOTPROXY_STATSD_FLUSH_INTERVAL", "0s", ""},
		{"DOTPROXY_STATSD_FORMAT", "graphite", ""}, // decoding: emit.Format.UnmarshalText
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			env := map[string]string{tt.key: tt.value}
			if strings.HasPrefix(tt.value, "unix://") {
				env["DOTPROXY_STATSD_FORMAT"] = "statsd"
			}
			_, err := loadWith(t, env)
			var se *settingError
			if !errors.As(err, &se) || se.key != tt.key {
				t.Fatalf("loadConfig() = %v, want an error naming %s", err, tt.key)
			}
			want := tt.wantValue
			switch want {
			case "":
				want = tt.value
			case "(empty)":
				want = ""
			}
			if se.value != want {
				t.Fatalf("the error quotes %q, want %q: %v", se.value, want, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("%q: want one line", err)
			}
		})
	}
}

// The tables that map a package's field names to settings name fields that
// the package's Config has and settings that config has: a field renamed in
// a package would otherwise leave its errors without their variable.
func TestPackageFieldsExist(t *testing.T) {
	c := defaultConfig()
	fieldOf := fieldVars(mustVariables(t, c))
	for pkg, tt := range map[string]struct {
		typ    reflect.Type
		fields map[string]any
	}{
		"upstream":  {reflect.TypeFor[upstream.Config](), c.upstreamFields()},
		"balance":   {reflect.TypeFor[balance.Config](), c.balanceFields()},
		"emit":      {reflect.TypeFor[emit.Config](), c.emitFields()},
		"ratelimit": {reflect.TypeFor[ratelimit.Config](), c.rateLimitFields()},
	} {
		for name, field := range tt.fields {
			if _, ok := tt.typ.FieldByName(name); !ok {
				t.Errorf("%s.Config has no field %s", pkg, name)
			}
			if _, ok := fieldOf.errorAt(field, errors.New("")).(*settingError); !ok {
				t.Errorf("%s.Config.%s maps to no setting", pkg, name)
			}
		}
	}
}

// Where an error names several fields, the first is the one at fault: the
// rest say what it is measured against.
func TestPackageErrorNamesTheFirstField(t *testing.T) {
	c := defaultConfig()
	at := fieldVars(mustVariables(t, c))
	err := at.packageError(errors.New("upstream: invalid config: WarmConns 9: is not within 0..MaxConns (4)"), c.upstreamFields())
	var se *settingError
	if !errors.As(err, &se) || se.key != "DOTPROXY_UPSTREAM_WARM_CONNS" {
		t.Fatalf("got %v, want DOTPROXY_UPSTREAM_WARM_CONNS named", err)
	}
	unknown := errors.New("upstream: invalid config: NewField 1: is bad")
	if err := at.packageError(unknown, c.upstreamFields()); err != unknown {
		t.Fatalf("an error naming no known field became %v, want it as it was", err)
	}
	if i := wordIndex("AddrX Addr", "Addr"); i != 6 {
		t.Fatalf("wordIndex found Addr at %d inside a longer word, want 6", i)
	}
}

// -h leaves no bound unfilled in a description.
func TestDescriptionsHaveTheirBounds(t *testing.T) {
	var b strings.Builder
	usage(&b)
	if strings.ContainsAny(b.String(), "{}") {
		t.Fatalf("-h holds a bound left unfilled:\n%s", b.String())
	}
	if !strings.Contains(b.String(), "(1 to 65535)") {
		t.Fatal("-h does not give DOTPROXY_UPSTREAM_MAX_INFLIGHT's bound, 65535")
	}
}

// Settings that keep the rules across them start, however close they come.
func TestRulesAcrossSettingsAllowWhatWorks(t *testing.T) {
	for _, env := range []map[string]string{
		{"DOTPROXY_QUERY_TIMEOUT": "1s", "DOTPROXY_UPSTREAM_ATTEMPT_TIMEOUT": "999ms", "DOTPROXY_HEDGE_AFTER": "999ms"},
		{"DOTPROXY_QUERY_TIMEOUT": "1501ms"},
		{"DOTPROXY_QUERY_TIMEOUT": "200ms", "DOTPROXY_UPSTREAM_ATTEMPT_TIMEOUT": "100ms", "DOTPROXY_HEDGE_AFTER": "0s"},
	} {
		if _, err := loadWith(t, env); err != nil {
			t.Errorf("%v: %v", env, err)
		}
	}
}

// -h names each setting's kind as an operator writes it, never as Go's
// reflect does ("slice", "struct").
func TestHelpNamesEveryKind(t *testing.T) {
	for _, v := range mustVariables(t, defaultConfig()) {
		if kind := kindOf(v.field); kind == v.field.Kind().String() && kind != "string" {
			t.Errorf("%s: -h names its kind %q", v.name, kind)
		}
	}
}

// Each bad rate-limit setting stops start-up naming its variable, whether
// decoding, the limiter's Validate or main's bounds refuse it; and so does a
// rate-limit setting changed from its default while no rate turns limiting
// on, since it would do nothing.
func TestRateLimitSettingsNameTheVariable(t *testing.T) {
	const rate = "DOTPROXY_RATE_LIMIT"
	tests := []struct {
		key, value string
		withRate   bool // DOTPROXY_RATE_LIMIT=20 too
	}{
		{rate, "-1", false},
		{rate, "0.001", false},
		{rate, "2000000", false},
		{rate, "NaN", false},
		{rate, "Inf", false},
		{rate, "fast", false},
		{rate, "20qps", false},
		{"DOTPROXY_RATE_LIMIT_BURST", "0", true},
		{"DOTPROXY_RATE_LIMIT_BURST", "-1", true},
		{"DOTPROXY_RATE_LIMIT_BURST", "1000001", true},
		{"DOTPROXY_RATE_LIMIT_SLIP", "-1", true},
		{"DOTPROXY_RATE_LIMIT_SLIP", "11", true},
		{"DOTPROXY_RATE_LIMIT_IPV4_PREFIX", "0", true},
		{"DOTPROXY_RATE_LIMIT_IPV4_PREFIX", "33", true},
		{"DOTPROXY_RATE_LIMIT_IPV6_PREFIX", "0", true},
		{"DOTPROXY_RATE_LIMIT_IPV6_PREFIX", "129", true},
		{"DOTPROXY_RATE_LIMIT_EXEMPT", "10.0.0.0/33", true},
		{"DOTPROXY_RATE_LIMIT_EXEMPT", "10.0.0.0/8,lan", true},
		// Without a rate, limiting is off: each of these would do nothing.
		{"DOTPROXY_RATE_LIMIT_BURST", "50", false},
		{"DOTPROXY_RATE_LIMIT_SLIP", "0", false},
		{"DOTPROXY_RATE_LIMIT_IPV4_PREFIX", "24", false},
		{"DOTPROXY_RATE_LIMIT_IPV6_PREFIX", "56", false},
		{"DOTPROXY_RATE_LIMIT_EXEMPT", "192.168.1.2", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s=%s rate %v", tt.key, tt.value, tt.withRate), func(t *testing.T) {
			env := map[string]string{tt.key: tt.value}
			if tt.withRate {
				env[rate] = "20"
			}
			_, err := loadWith(t, env)
			var se *settingError
			if !errors.As(err, &se) || se.key != tt.key {
				t.Fatalf("loadConfig() = %v, want an error naming %s", err, tt.key)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("%q: want one line", err)
			}
			if tt.key != rate && !tt.withRate && !strings.Contains(err.Error(), rate+`="0"`) {
				t.Fatalf("%q does not say that %s is 0", err, rate)
			}
		})
	}
	for _, env := range []map[string]string{
		{rate: "20"},
		{rate: "0.5", "DOTPROXY_RATE_LIMIT_BURST": "1", "DOTPROXY_RATE_LIMIT_SLIP": "0",
			"DOTPROXY_RATE_LIMIT_IPV4_PREFIX": "24", "DOTPROXY_RATE_LIMIT_IPV6_PREFIX": "128",
			"DOTPROXY_RATE_LIMIT_EXEMPT": "192.168.1.2,fd00::/8"},
		{rate: "1000000", "DOTPROXY_RATE_LIMIT_BURST": "1000000", "DOTPROXY_RATE_LIMIT_SLIP": "10"},
		// Off, every other setting at its default, written out.
		{rate: "0", "DOTPROXY_RATE_LIMIT_BURST": "100", "DOTPROXY_RATE_LIMIT_SLIP": "2",
			"DOTPROXY_RATE_LIMIT_IPV4_PREFIX": "32", "DOTPROXY_RATE_LIMIT_IPV6_PREFIX": "64", "DOTPROXY_RATE_LIMIT_EXEMPT": ""},
	} {
		c, err := loadWith(t, env)
		if err != nil {
			t.Errorf("%v: %v", env, err)
			continue
		}
		if p := c.proxyConfig(nil, nil, nil); p.RateLimit.Rate != c.RateLimit || p.RateLimit.Burst != c.RateLimitBurst {
			t.Errorf("%v: the proxy gets %+v", env, p.RateLimit)
		}
	}
}
