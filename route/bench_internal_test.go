package route

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkMatch measures choosing a route per query, with the routes of
// the match tests (few) and with a thousand suffixes in a hundred routes
// (many), for a name that one takes and one that goes to the default.
func BenchmarkMatch(b *testing.B) {
	var many []Route
	for i := range 100 {
		rt := Route{Name: fmt.Sprint("r", i), Resolver: named(fmt.Sprint("r", i))}
		for j := range 10 {
			rt.Suffixes = append(rt.Suffixes, fmt.Sprintf("zone%d.team%d.corp.example", j, i))
		}
		many = append(many, rt)
	}
	sets := []struct {
		name   string
		routes []Route
		hit    string
	}{
		{"few", testRoutes, "host.lab.corp.example."},
		{"many", many, "host.zone7.team42.corp.example."},
	}
	for _, set := range sets {
		r := newTestRouter(b, set.routes)
		for _, q := range []struct{ name, qname string }{{"hit", set.hit}, {"miss", "www.example.com."}} {
			msg := query(b, q.qname)
			if got := r.nameOf(msg); (got == "default") != (q.name == "miss") {
				b.Fatalf("%s went to %s", q.qname, got)
			}
			b.Run(set.name+"/"+q.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					r.match(msg)
				}
			})
		}
	}
}

// BenchmarkStart compares a query started through a Router with routes to
// one started on its resolver directly: the difference is what routing
// adds to a query's path.
func BenchmarkStart(b *testing.B) {
	msg := query(b, "www.example.com.")
	deadline := time.Now().Add(time.Hour)
	direct := named("default")
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			direct.Start(msg, deadline, nil)
		}
	})
	r := newTestRouter(b, testRoutes)
	b.Run("routed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.Start(msg, deadline, nil)
		}
	})
}
