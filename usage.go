package main

import (
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/dotproxy/dotproxy/balance"
	"github.com/dotproxy/dotproxy/dnsmsg"
	"github.com/dotproxy/dotproxy/emit"
	"github.com/dotproxy/dotproxy/ratelimit"
	"github.com/dotproxy/dotproxy/upstream"
	"github.com/kelseyhightower/envconfig"
)

// usage prints -h: the commands, then every setting with its kind, its
// default and what it does.
func usage(w io.Writer) {
	fmt.Fprintf(w, `dotproxy %s forwards plain DNS (UDP and TCP) to DNS-over-TLS resolvers.

Usage:
  dotproxy                      serve, configured by the environment below
  dotproxy healthcheck          liveness: query the local listener; exit 0 on any answer, SERVFAIL too
  dotproxy healthcheck -ready   readiness: exit 0 unless every upstream of the default route is down
                                or dotproxy is stopping (DOTPROXY_LAMEDUCK)
  dotproxy status               print each upstream's state, connections, latency, counts and last error,
                                as the running dotproxy tells it (asked on loopback only)
  dotproxy -version             print the version

`, version)
	funcs := template.FuncMap{"kind": kindOf, "text": settingText, "describe": describe}
	tmpl := template.Must(template.New("usage").Funcs(funcs).Parse(usageFormat))
	_ = envconfig.Usaget(envPrefix, defaultConfig(), w, tmpl)
	fmt.Fprint(w, routesUsage)
	fmt.Fprintln(w, "\nThe Datadog client also reads DD_AGENT_HOST, DD_DOGSTATSD_URL, DD_ENV, DD_SERVICE and DD_VERSION.")
}

// usageFormat lists the settings; a default is the field's value in
// defaultConfig, left out when it is empty (no CA file, no pins).
const usageFormat = `Environment:
{{range .}}  {{.Key}}  ({{kind .Field}}{{with text .Field}}, default {{.}}{{end}})
      {{describe .Tags}}
{{end}}`

// descBounds fills in the bounds that descriptions quote, each from the
// constant that its check uses, so that a bound is written once.
var descBounds = strings.NewReplacer(
	"{upstream.MaxInFlightLimit}", strconv.Itoa(upstream.MaxInFlightLimit),
	"{maxInflightMIB}", strconv.Itoa(maxInflightMIB),
	"{ratelimit.MinRate}", strconv.FormatFloat(ratelimit.MinRate, 'f', -1, 64),
	"{ratelimit.MaxRate}", strconv.FormatFloat(ratelimit.MaxRate, 'f', -1, 64),
	"{ratelimit.MaxBurst}", strconv.Itoa(ratelimit.MaxBurst),
	"{ratelimit.MaxSlip}", strconv.Itoa(ratelimit.MaxSlip),
)

// describe returns a setting's description, its bounds filled in.
func describe(tags reflect.StructTag) string {
	return descBounds.Replace(tags.Get("desc"))
}

// kindOf names a setting's type for -h.
func kindOf(v reflect.Value) string {
	switch v.Interface().(type) {
	case upstreamList:
		return "list of host[:port][#tls-name]"
	case upstream.Bootstrap:
		return "list of ip[:port]"
	case listenList:
		return "list of host:port"
	case prefixList:
		return "list of CIDR"
	case pinList:
		return "list of base64 SHA-256"
	case []string:
		return "list of string"
	case time.Duration:
		return "duration, e.g. 1500ms, 4s"
	case bool:
		return "true or false"
	case int:
		return "integer"
	case float64:
		return "number, e.g. 20 or 0.5"
	case logLevel, logFormat, dnsmsg.Padding, dnsmsg.ClientSubnet, balance.Policy, emit.Format:
		return "name"
	}
	return v.Kind().String()
}
