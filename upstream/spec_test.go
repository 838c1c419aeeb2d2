package upstream_test

import (
	"testing"

	"github.com/dotproxy/dotproxy/upstream"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		in, addr, name string
		bad            bool
	}{
		{in: "1.1.1.1", addr: "1.1.1.1:853", name: "1.1.1.1"},
		{in: "1.1.1.1:853", addr: "1.1.1.1:853", name: "1.1.1.1"},
		{in: " 9.9.9.9:8853#dns.quad9.net ", addr: "9.9.9.9:8853", name: "dns.quad9.net"},
		{in: "[2606:4700:4700::1111]:853", addr: "[2606:4700:4700::1111]:853", name: "2606:4700:4700::1111"},
		{in: "[::1]", addr: "[::1]:853", name: "::1"},
		{in: "2606:4700::1111", addr: "[2606:4700::1111]:853", name: "2606:4700::1111"},
		{in: "[::1]:8853#dns.test", addr: "[::1]:8853", name: "dns.test"},
		{in: "dns.google", addr: "dns.google:853", name: "dns.google"},
		{in: "dns.google:853#other.example", addr: "dns.google:853", name: "other.example"},
		{in: "", bad: true},
		{in: "#name", bad: true},
		{in: "1.1.1.1:0", bad: true},
		{in: "1.1.1.1:65536", bad: true},
		{in: "1.1.1.1:dns", bad: true},
		{in: "1.1.1.1#", bad: true},
		{in: "1.1.1.1#bad name", bad: true},
		{in: "bad_host!:853", bad: true},
		{in: "[::1", bad: true},
		{in: "::%]", bad: true}, // a zone no host:port can carry (found by FuzzParseSpec)
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := upstream.ParseSpec(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("accepted as %+v", s)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Addr != tt.addr || s.ServerName != tt.name {
				t.Fatalf("got %+v, want %s #%s", s, tt.addr, tt.name)
			}
			if again, err := upstream.ParseSpec(s.String()); err != nil || again != s {
				t.Fatalf("String() %q does not read back: %+v %v", s.String(), again, err)
			}
		})
	}
}
