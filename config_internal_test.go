package main

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

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
