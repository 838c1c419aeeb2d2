package upstream_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/internal/dottest"
	"github.com/dotproxy/dotproxy/upstream"
)

// A certificate failure names what was really asked: the configured host,
// the address it resolved to, and the name checked against.
func TestDialErrorNamesAddressAndTLSName(t *testing.T) {
	srv := dottest.Start(t, dottest.Options{})
	_, port, _ := net.SplitHostPort(srv.Addr)
	p, _ := newPool(t, srv, func(c *upstream.Config) {
		c.Addr = net.JoinHostPort("localhost", port)
		c.ServerName = "wrong.test"
		c.FastOpen = false
	})
	_, err := p.Exchange(query(t, "x.example", 5), within(5*time.Second))
	var de *upstream.DialError
	if !errors.As(err, &de) || de.Stage != upstream.StageVerify {
		t.Fatalf("err = %v, want a verify DialError", err)
	}
	for _, want := range []string{"localhost:" + port, srv.Addr, `"wrong.test"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not name %s", err, want)
		}
	}
}

// A lookup failure names the resolver that was asked, as ResolverName says,
// not the system resolver that Go's message would name.
func TestDialErrorNamesTheResolverAsked(t *testing.T) {
	const name = "bootstrap 192.0.2.53:53"
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return nil, errors.New("no route")
	}}
	p, err := upstream.New(upstream.Config{
		Addr: "dns.invalid:853", ServerName: "dns.invalid", Resolver: r, ResolverName: name,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = p.Exchange(query(t, "x.example", 5), within(5*time.Second))
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !strings.Contains(err.Error(), "on "+name) {
		t.Fatalf("err = %v, want a lookup error that names %q", err, name)
	}
}
