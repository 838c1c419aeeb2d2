package main

import (
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"

	"github.com/dotproxy/dotproxy/balance"
	"github.com/dotproxy/dotproxy/emit"
	"github.com/dotproxy/dotproxy/route"
)

// Routes (split horizon) are configured by variables whose names hold the
// route's name, DOTPROXY_ROUTE_<NAME>_<KEY>, so that each route is a few
// lines in a compose file or an ECS task rather than one value to escape.
// envconfig reads only fixed names; loadRoutes reads these from the
// environment itself, and checkEnviron knows them through routeVar.

// routePrefix starts every route variable.
const routePrefix = envPrefix + "_ROUTE_"

// The keys of a route's variables.
const (
	routeDomains   = "DOMAINS"
	routeUpstreams = "UPSTREAMS"
	routePolicy    = "POLICY"
)

var routeKeys = []string{routeDomains, routeUpstreams, routePolicy}

// maxRouteName bounds a route's name, which every metric of its upstreams
// carries.
const maxRouteName = 32

// variable names one of the route's variables.
func (r *routeConfig) variable(key string) string { return routePrefix + r.upper + "_" + key }

// routeVar splits name into the route's name and the key when it has the
// shape of a route variable, DOTPROXY_ROUTE_<NAME>_<KEY> with one of
// routeKeys; the name is returned as it is written, empty or not, for
// loadRoutes to check.
func routeVar(name string) (routeName, key string, ok bool) {
	rest, ok := strings.CutPrefix(name, routePrefix)
	if !ok {
		return "", "", false
	}
	for _, k := range routeKeys {
		if rest == k {
			return "", k, true
		}
		if n, ok := strings.CutSuffix(rest, "_"+k); ok {
			return n, k, true
		}
	}
	return "", "", false
}

// loadRoutes reads the routes from environ (as os.Environ gives it), in
// the order of their names, and checks each variable on its own and the
// routes against each other. Variables an orchestrator injected (see
// injected) are no routes, whatever their names.
func loadRoutes(environ []string) ([]routeConfig, error) {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			vars[k] = v
		}
	}
	byName := map[string]map[string]string{} // upper name to key to value
	for k, v := range vars {
		spelt := k
		if runtime.GOOS == "windows" {
			spelt = strings.ToUpper(k) // as checkEnviron: names are not case-sensitive there
		}
		name, key, ok := routeVar(spelt)
		if !ok || injected(k, v, vars) {
			continue
		}
		if err := checkRouteName(name); err != nil {
			return nil, &settingError{key: k, value: v, err: err}
		}
		if byName[name] == nil {
			byName[name] = map[string]string{}
		}
		byName[name][key] = v
	}
	var routes []routeConfig
	owner := map[string]string{} // suffix to the variable that holds it
	for _, upper := range slices.Sorted(maps.Keys(byName)) {
		r, err := parseRoute(upper, byName[upper])
		if err != nil {
			return nil, err
		}
		for _, d := range r.domains {
			if other, ok := owner[d]; ok {
				return nil, &settingError{key: r.variable(routeDomains), value: byName[upper][routeDomains],
					err: fmt.Errorf("%q is also in %s: a name under it could go to either route", d, other)}
			}
			owner[d] = r.variable(routeDomains)
		}
		routes = append(routes, r)
	}
	return routes, nil
}

// checkRouteName checks a route's name as its variables spell it: upper
// case, so that it reads as the rest of the variable, and not the default
// route's.
func checkRouteName(name string) error {
	switch {
	case name == "":
		return errors.New("no route name: write DOTPROXY_ROUTE_<NAME>_" + strings.Join(routeKeys, ", _"))
	case len(name) > maxRouteName:
		return fmt.Errorf("route name %q longer than %d characters", name, maxRouteName)
	case strings.EqualFold(name, emit.DefaultRoute):
		return fmt.Errorf("route name %q is taken: %s is the route of %s", name, emit.DefaultRoute, env("UPSTREAMS"))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'A' && c <= 'Z' || i > 0 && (c >= '0' && c <= '9' || c == '_')) {
			return fmt.Errorf("route name %q: an upper-case letter, then upper-case letters, digits and _", name)
		}
	}
	return nil
}

// parseRoute reads the variables of the route called upper, by key.
func parseRoute(upper string, vals map[string]string) (routeConfig, error) {
	r := routeConfig{name: strings.ToLower(upper), upper: upper}
	domains, hasDomains := vals[routeDomains]
	ups, hasUpstreams := vals[routeUpstreams]
	switch {
	case !hasDomains && !hasUpstreams:
		return r, &settingError{key: r.variable(routePolicy), value: vals[routePolicy],
			err: fmt.Errorf("%s and %s are not set: a route needs both", r.variable(routeDomains), r.variable(routeUpstreams))}
	case !hasUpstreams:
		return r, &settingError{key: r.variable(routeDomains), value: domains,
			err: fmt.Errorf("%s is not set: the route's names need DNS-over-TLS upstreams to go to", r.variable(routeUpstreams))}
	case !hasDomains:
		return r, &settingError{key: r.variable(routeUpstreams), value: ups,
			err: fmt.Errorf("%s is not set: the route's upstreams need names to answer", r.variable(routeDomains))}
	}
	errAt := func(key string, err error) error {
		return &settingError{key: r.variable(key), value: vals[key], err: err}
	}
	for _, d := range splitList(domains) {
		suffix, err := route.ParseSuffix(d)
		if err != nil {
			return r, errAt(routeDomains, fmt.Errorf("%q: %w", d, err))
		}
		if slices.Contains(r.domains, suffix) {
			return r, errAt(routeDomains, fmt.Errorf("%q is listed twice", d))
		}
		r.domains = append(r.domains, suffix)
	}
	if len(r.domains) == 0 {
		return r, errAt(routeDomains, errors.New("at least one domain is required"))
	}
	if err := r.upstreams.Decode(ups); err != nil {
		return r, errAt(routeUpstreams, err)
	}
	switch {
	case len(r.upstreams) == 0:
		return r, errAt(routeUpstreams, errors.New("at least one upstream is required"))
	case len(r.upstreams) > balance.MaxUpstreams:
		return r, errAt(routeUpstreams, fmt.Errorf("at most %d upstreams", balance.MaxUpstreams))
	}
	if p, ok := vals[routePolicy]; ok {
		policy, err := balance.ParsePolicy(p)
		if err != nil {
			return r, errAt(routePolicy, err)
		}
		r.policy = policy
	}
	return r, nil
}

// routePolicy returns the policy of r: its own, or DOTPROXY_POLICY.
func (c *config) routePolicy(r *routeConfig) balance.Policy {
	if r.policy != "" {
		return r.policy
	}
	return c.Policy
}

// checkRoutes checks each route's upstreams and balancer as validate
// checks the default route's, naming the route's own variables; only the
// addresses and the policy differ from those, which are checked by then.
func (c *config) checkRoutes() error {
	for i := range c.routes {
		r := &c.routes[i]
		for _, spec := range r.upstreams {
			u := c.upstreamConfig(spec, nil, nil, nil)
			if err := u.Validate(); err != nil {
				return &settingError{key: r.variable(routeUpstreams), value: r.upstreams.text(), err: err}
			}
		}
		b := c.balanceConfig()
		b.Policy = c.routePolicy(r)
		if err := b.Validate(); err != nil {
			return &settingError{key: r.variable(routePolicy), value: string(r.policy), err: err}
		}
	}
	return nil
}

// text writes l as its variable holds it.
func (l upstreamList) text() string {
	parts := make([]string, len(l))
	for i, s := range l {
		parts[i] = s.String()
	}
	return strings.Join(parts, ",")
}

// routeAttrs describes the routes for the start-up log line.
func (c *config) routeAttrs() []string {
	var out []string
	for i := range c.routes {
		r := &c.routes[i]
		out = append(out, fmt.Sprintf("%s: %s -> %s (%s)", r.name, strings.Join(r.domains, ","), r.upstreams.text(), c.routePolicy(r)))
	}
	return out
}

// routesUsage is -h's section on routes, whose variables are not in
// config since their names are the user's.
const routesUsage = `
Routes (split horizon): the queries for names under chosen domains go to upstreams of their own.
Each route is a set of variables named after it, NAME being an upper-case letter, then upper-case
letters, digits and _ (at most 32; DEFAULT is taken by DOTPROXY_UPSTREAMS). Its lower case, e.g.
corp, tags the metrics of the route's upstreams (route:corp).
  DOTPROXY_ROUTE_<NAME>_DOMAINS  (list of domain, required with UPSTREAMS)
      the route's domains, e.g. corp.example,10.in-addr.arpa: a query for one of them or for any name
      under one goes to the route. Names are compared label by label ignoring case, so corp.example
      takes www.CORP.example but not evilcorp.example; the route with the longest matching domain
      wins; a query no route takes, or with no question, goes to DOTPROXY_UPSTREAMS. No domain may be
      in two routes; the root is refused
  DOTPROXY_ROUTE_<NAME>_UPSTREAMS  (list of host[:port][#tls-name], required with DOMAINS)
      the route's resolvers, written as in DOTPROXY_UPSTREAMS: DNS-over-TLS only, never plain DNS
      (port 53). Each has a pool of its own, even if another route lists it too
  DOTPROXY_ROUTE_<NAME>_POLICY  (name, default DOTPROXY_POLICY)
      the route's load-balancing policy. Health, probes, retries and hedging work within each route;
      every other setting applies to every route alike
`
