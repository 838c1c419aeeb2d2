package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dotproxy/dotproxy/proxy"
	"github.com/miekg/dns"
)

// fromRecorder is an Observer that keeps the upstream of each reply, by
// rcode.
type fromRecorder struct {
	proxy.NopObserver
	mu   sync.Mutex
	from map[int][]string
}

func (r *fromRecorder) Answered(_ proxy.Transport, up fmt.Stringer, rcode int, _ time.Duration, _, _ int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := "<nil>"
	if up != nil {
		name = up.String()
	}
	r.from[rcode] = append(r.from[rcode], name)
}

func (r *fromRecorder) of(rcode int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.from[rcode]...)
}

// A Resolver that names itself with its error, as a route's balancer does,
// has the proxy's SERVFAIL counted against it; one that does not, against
// no upstream. A zone transfer that fails before its first message is
// counted the same way.
func TestServFailCountedAgainstWhatTheResolverNames(t *testing.T) {
	for _, name := range []string{"corp", ""} {
		rec := &fromRecorder{from: map[int][]string{}}
		fail := &transferResolver{err: errors.New("all upstreams down")}
		r := resolverFunc(func(context.Context, []byte) ([]byte, string, error) {
			return nil, name, errors.New("all upstreams down")
		})
		_, addr, _ := start(t, struct {
			proxy.Resolver
			proxy.Transferer
		}{r, namedTransfer{fail, name}}, func(c *proxy.Config) { c.Observer = rec })
		for _, network := range []string{"udp", "tcp"} {
			if a := exchange(t, network, addr, msg("down.example", dns.TypeA, 12)); a.Rcode != dns.RcodeServerFailure {
				t.Fatalf("%s: %v", network, a)
			}
		}
		if a := exchange(t, "tcp", addr, axfr(t, 13)); a.Rcode != dns.RcodeServerFailure {
			t.Fatalf("transfer: %v", a)
		}
		want := name
		if want == "" {
			want = "<nil>"
		}
		if got := rec.of(dns.RcodeServerFailure); len(got) != 3 || got[0] != want || got[1] != want || got[2] != want {
			t.Fatalf("SERVFAILs counted against %q, want %q each time", got, want)
		}
	}
}

// namedTransfer is a transferResolver that fails naming itself name, or
// nothing when name is empty.
type namedTransfer struct {
	*transferResolver
	name string
}

func (n namedTransfer) Transfer(query []byte, deadline time.Time, idle time.Duration, each func([]byte) error) (fmt.Stringer, error) {
	_, err := n.transferResolver.Transfer(query, deadline, idle, each)
	if n.name == "" {
		return nil, err
	}
	return named(n.name), err
}
