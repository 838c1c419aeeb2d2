package emit_test

import (
	"fmt"
	"log"

	"github.com/dotproxy/dotproxy/emit"
)

// ExampleNew shows the wiring main does: one Emitter, one UpstreamMetrics
// per upstream under the name the upstream reports, and Close at shutdown.
func ExampleNew() {
	// Plain statsd format with no address: metrics off, whatever DD_* say.
	// main fills the Config from its settings instead.
	e, err := emit.New(emit.Config{Format: emit.StatsD})
	if err != nil {
		log.Fatal(err) // main exits with status 2 on errors.Is(err, emit.ErrConfig)
	}
	defer e.Close()

	obs := e.Upstream("1.1.1.1:853") // upstream.Config.Observer and balance.Member.Observer
	_ = obs                          // then obs.Watch(pool) once the pool exists
	_ = e.Proxy()                    // the proxy's Observer
	fmt.Println("metrics on:", e.Enabled())
	// Output: metrics on: false
}
