package proxy_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/proxy"
)

// TestConfigValidateNamesField: a negative count or duration is refused,
// by New too, in an error that names the field; zero means the default.
func TestConfigValidateNamesField(t *testing.T) {
	for field, cfg := range map[string]proxy.Config{
		"QueryTimeout":     {QueryTimeout: -time.Second},
		"TCPIdleTimeout":   {TCPIdleTimeout: -1},
		"TransferTimeout":  {TransferTimeout: -1},
		"TCPMaxConns":      {TCPMaxConns: -1},
		"TCPMaxInFlight":   {TCPMaxInFlight: -1},
		"UDPMaxInFlight":   {UDPMaxInFlight: -1},
		"UDPSockets":       {UDPSockets: -1},
		"MaxInFlightBytes": {MaxInFlightBytes: -1},
	} {
		err := cfg.Validate()
		if !errors.Is(err, proxy.ErrInvalidConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig naming the field", field, err)
		}
		cfg.Listen, cfg.Resolver = []string{"127.0.0.1:0"}, &echoResolver{}
		if _, err := proxy.New(cfg); !errors.Is(err, proxy.ErrInvalidConfig) {
			t.Errorf("%s: New = %v, want ErrInvalidConfig", field, err)
		}
	}
	var zero proxy.Config
	if err := zero.Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
}
