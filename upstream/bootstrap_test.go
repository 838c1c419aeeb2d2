package upstream_test

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/dotproxy/dotproxy/upstream"
)

func TestBootstrap_UnmarshalText(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string // nil: an error
	}{
		{"empty", "", []string{}},
		{"address, port 53", "192.0.2.53", []string{"192.0.2.53:53"}},
		{"address and port", "192.0.2.53:5353", []string{"192.0.2.53:5353"}},
		{"IPv6, port 53", "2001:db8::53", []string{"[2001:db8::53]:53"}},
		{"IPv6 and port", "[2001:db8::53]:5353", []string{"[2001:db8::53]:5353"}},
		{"IPv4-mapped IPv6 unmapped", "::ffff:192.0.2.1", []string{"192.0.2.1:53"}},
		{"a list, blanks skipped", " 192.0.2.1 , ,192.0.2.2:54", []string{"192.0.2.1:53", "192.0.2.2:54"}},
		{"host name", "dns.google", nil},
		{"host name and port", "dns.google:53", nil},
		{"port too big", "1.1.1.1:99999", nil},
		{"port zero", "1.1.1.1:0", nil},
		{"port not a number", "[::1]:x", nil},
		{"one bad in a list", "9.9.9.9,resolver", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b upstream.Bootstrap
			err := b.UnmarshalText([]byte(tt.in))
			if tt.want == nil {
				if err == nil {
					t.Fatalf("UnmarshalText(%q) = %v, want an error", tt.in, b)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("UnmarshalText(%q) = %q, want one line", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalText(%q): %v", tt.in, err)
			}
			got := make([]string, len(b))
			for i, s := range b {
				got[i] = s.String()
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("UnmarshalText(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// A failed lookup should say which servers were asked, and an empty list
// should leave the system resolver and its messages alone.
func TestBootstrap_Name(t *testing.T) {
	if got := (upstream.Bootstrap{}).Name(); got != "" {
		t.Fatalf("empty list: Name() = %q, want empty", got)
	}
	b := upstream.Bootstrap{netip.MustParseAddrPort("192.0.2.53:53"), netip.MustParseAddrPort("[2001:db8::53]:5353")}
	if got, want := b.Name(), "bootstrap 192.0.2.53:53, [2001:db8::53]:5353"; got != want {
		t.Fatalf("Name() = %q, want %q", got, want)
	}
}

// Each lookup's connection goes to the next server, so that a retry after a
// server that does not answer asks another one. UDP dials send nothing, so
// nothing needs to listen.
func TestBootstrap_Resolver(t *testing.T) {
	if r := (upstream.Bootstrap{}).Resolver(); r != nil {
		t.Fatal("empty list: Resolver() is not nil, want the system resolver")
	}
	b := upstream.Bootstrap{netip.MustParseAddrPort("127.0.0.1:5301"), netip.MustParseAddrPort("127.0.0.1:5302")}
	r := b.Resolver()
	b[0] = netip.MustParseAddrPort("127.0.0.1:5399") // the resolver keeps its own copy
	if !r.PreferGo {
		t.Fatal("PreferGo is false: the cgo resolver would not call Dial")
	}
	var got []string
	for range 3 {
		c, err := r.Dial(context.Background(), "udp", "ignored:53")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c.RemoteAddr().String())
		c.Close()
	}
	want := []string{"127.0.0.1:5301", "127.0.0.1:5302", "127.0.0.1:5301"}
	if !slices.Equal(got, want) {
		t.Fatalf("dialed %q, want %q", got, want)
	}
}
