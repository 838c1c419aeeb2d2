package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/dotproxy/dotproxy/balance"
)

// Each route is read from its variables, in the order of the names: its
// name in lower case, its domains as they are compared, its upstreams, and
// its own policy or none (DOTPROXY_POLICY's).
func TestLoadRoutes(t *testing.T) {
	c, err := loadWith(t, map[string]string{
		"DOTPROXY_POLICY":                "round_robin",
		"DOTPROXY_ROUTE_CORP_DOMAINS":    "CoRp.Example., 10.in-addr.arpa",
		"DOTPROXY_ROUTE_CORP_UPSTREAMS":  "10.0.0.53:853#dns.corp.example,10.0.0.54",
		"DOTPROXY_ROUTE_CORP_POLICY":     "failover",
		"DOTPROXY_ROUTE_LAB_2_DOMAINS":   "lab.corp.example",
		"DOTPROXY_ROUTE_LAB_2_UPSTREAMS": "[fd00::53]:8853",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []routeConfig{
		{name: "corp", upper: "CORP", domains: []string{"corp.example", "10.in-addr.arpa"},
			upstreams: upstreamList{{Addr: "10.0.0.53:853", ServerName: "dns.corp.example"}, {Addr: "10.0.0.54:853", ServerName: "10.0.0.54"}},
			policy:    balance.Failover},
		{name: "lab_2", upper: "LAB_2", domains: []string{"lab.corp.example"},
			upstreams: upstreamList{{Addr: "[fd00::53]:8853", ServerName: "fd00::53"}}},
	}
	if !reflect.DeepEqual(c.routes, want) {
		t.Fatalf("routes:\n%+v\nwant\n%+v", c.routes, want)
	}
	if p := c.routePolicy(&c.routes[1]); p != balance.RoundRobin {
		t.Fatalf("a route without a policy of its own has %s, want DOTPROXY_POLICY's", p)
	}
	if _, err := loadWith(t, nil); err != nil {
		t.Fatal(err)
	}
}

// Each bad route setting stops start-up with one line naming the variable
// at fault and its value, and, where another variable is part of the
// fault, that one too.
func TestRouteSettingErrors(t *testing.T) {
	corp := func(extra ...string) map[string]string {
		env := map[string]string{
			"DOTPROXY_ROUTE_CORP_DOMAINS":   "corp.example",
			"DOTPROXY_ROUTE_CORP_UPSTREAMS": "10.0.0.53",
		}
		for i := 0; i+1 < len(extra); i += 2 {
			env[extra[i]] = extra[i+1]
		}
		return env
	}
	tests := []struct {
		name string
		env  map[string]string
		key  string   // the variable the error is about
		also []string // more it must say
	}{
		{"name with a dash", corp("DOTPROXY_ROUTE_CORP-EU_DOMAINS", "eu.corp.example"), "DOTPROXY_ROUTE_CORP-EU_DOMAINS", []string{`"CORP-EU"`}},
		{"name in lower case", corp("DOTPROXY_ROUTE_corp_DOMAINS", "corp.test"), "DOTPROXY_ROUTE_corp_DOMAINS", []string{"upper-case"}},
		{"name starting with a digit", corp("DOTPROXY_ROUTE_1CORP_UPSTREAMS", "10.0.0.1"), "DOTPROXY_ROUTE_1CORP_UPSTREAMS", nil},
		{"no name", corp("DOTPROXY_ROUTE_DOMAINS", "corp.test"), "DOTPROXY_ROUTE_DOMAINS", []string{"no route name"}},
		{"name too long", corp("DOTPROXY_ROUTE_"+strings.Repeat("A", 33)+"_POLICY", "random"), "DOTPROXY_ROUTE_" + strings.Repeat("A", 33) + "_POLICY", nil},
		{"the default route's name", map[string]string{"DOTPROXY_ROUTE_DEFAULT_DOMAINS": "corp.example", "DOTPROXY_ROUTE_DEFAULT_UPSTREAMS": "10.0.0.53"},
			"DOTPROXY_ROUTE_DEFAULT_", []string{"taken", "DOTPROXY_UPSTREAMS"}},
		{"domains without upstreams", map[string]string{"DOTPROXY_ROUTE_CORP_DOMAINS": "corp.example"},
			"DOTPROXY_ROUTE_CORP_DOMAINS", []string{"DOTPROXY_ROUTE_CORP_UPSTREAMS is not set"}},
		{"upstreams without domains", map[string]string{"DOTPROXY_ROUTE_CORP_UPSTREAMS": "10.0.0.53"},
			"DOTPROXY_ROUTE_CORP_UPSTREAMS", []string{"DOTPROXY_ROUTE_CORP_DOMAINS is not set"}},
		{"a policy alone", map[string]string{"DOTPROXY_ROUTE_CORP_POLICY": "failover"},
			"DOTPROXY_ROUTE_CORP_POLICY", []string{"DOTPROXY_ROUTE_CORP_DOMAINS", "DOTPROXY_ROUTE_CORP_UPSTREAMS"}},
		{"an empty label", corp("DOTPROXY_ROUTE_CORP_DOMAINS", "corp..example"), "DOTPROXY_ROUTE_CORP_DOMAINS", []string{`"corp..example"`}},
		{"not a name", corp("DOTPROXY_ROUTE_CORP_DOMAINS", "corp.example,10.0.0.0/8"), "DOTPROXY_ROUTE_CORP_DOMAINS", []string{`"10.0.0.0/8"`}},
		{"a wildcard", corp("DOTPROXY_ROUTE_CORP_DOMAINS", "*.corp.example"), "DOTPROXY_ROUTE_CORP_DOMAINS", nil},
		{"the root", corp("DOTPROXY_ROUTE_CORP_DOMAINS", "."), "DOTPROXY_ROUTE_CORP_DOMAINS", []string{"root"}},
		{"no domain", corp("DOTPROXY_ROUTE_CORP_DOMAINS", " , "), "DOTPROXY_ROUTE_CORP_DOMAINS", []string{"at least one"}},
		{"a domain twice", corp("DOTPROXY_ROUTE_CORP_DOMAINS", "corp.example,CORP.example."), "DOTPROXY_ROUTE_CORP_DOMAINS", []string{"twice"}},
		{"a domain in two routes", corp("DOTPROXY_ROUTE_LAB_DOMAINS", "lab.example,Corp.Example", "DOTPROXY_ROUTE_LAB_UPSTREAMS", "10.0.0.54"),
			"DOTPROXY_ROUTE_LAB_DOMAINS", []string{`"corp.example" is also in DOTPROXY_ROUTE_CORP_DOMAINS`}},
		{"plain DNS port", corp("DOTPROXY_ROUTE_CORP_UPSTREAMS", "10.0.0.53:853,10.0.0.54:53"), "DOTPROXY_ROUTE_CORP_UPSTREAMS", []string{`"10.0.0.54:53"`, "port 53"}},
		{"plain DNS scheme", corp("DOTPROXY_ROUTE_CORP_UPSTREAMS", "udp://10.0.0.53"), "DOTPROXY_ROUTE_CORP_UPSTREAMS", []string{"udp://"}},
		{"a TLS scheme", corp("DOTPROXY_ROUTE_CORP_UPSTREAMS", "tls://10.0.0.53"), "DOTPROXY_ROUTE_CORP_UPSTREAMS", []string{"tls://"}},
		{"a bad port", corp("DOTPROXY_ROUTE_CORP_UPSTREAMS", "10.0.0.53:99999"), "DOTPROXY_ROUTE_CORP_UPSTREAMS", []string{"99999"}},
		{"no upstream", corp("DOTPROXY_ROUTE_CORP_UPSTREAMS", ","), "DOTPROXY_ROUTE_CORP_UPSTREAMS", []string{"at least one"}},
		{"too many upstreams", corp("DOTPROXY_ROUTE_CORP_UPSTREAMS", strings.Repeat("10.0.0.53,", balance.MaxUpstreams+1)),
			"DOTPROXY_ROUTE_CORP_UPSTREAMS", []string{"at most"}},
		{"an unknown policy", corp("DOTPROXY_ROUTE_CORP_POLICY", "fastest_please"), "DOTPROXY_ROUTE_CORP_POLICY", []string{"failover"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadWith(t, tt.env)
			var se *settingError
			if !errors.As(err, &se) || !strings.HasPrefix(se.key, tt.key) {
				t.Fatalf("loadConfig() = %v, want an error naming %s", err, tt.key)
			}
			if se.value != tt.env[se.key] {
				t.Errorf("the error quotes %q, want %q", se.value, tt.env[se.key])
			}
			for _, s := range tt.also {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not say %s", err, s)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("%q: want one line", err)
			}
		})
	}
}

// A route variable with a typo in its key, or in ROUTE, is an unknown
// setting, and the error names the variable meant; those of a route are
// known settings, not unknown ones.
func TestMistypedRouteVariables(t *testing.T) {
	ups := map[string]string{"DOTPROXY_ROUTE_CORP_UPSTREAMS": "10.0.0.53", "DOTPROXY_ROUTE_CORP_DOMAINS": "corp.example"}
	tests := []struct{ name, near string }{
		{"DOTPROXY_ROUTE_CORP_DOMIANS", "DOTPROXY_ROUTE_CORP_DOMAINS"},
		{"DOTPROXY_ROUTE_CORP_DOMAIN", "DOTPROXY_ROUTE_CORP_DOMAINS"},
		{"DOTPROXY_ROUTE_CORP_UPSTREAM", "DOTPROXY_ROUTE_CORP_UPSTREAMS"},
		{"DOTPROXY_ROUTE_CORP_POLCY", "DOTPROXY_ROUTE_CORP_POLICY"},
		{"DOTPROXY_ROUTE_CORP_EU_POLICIES", "DOTPROXY_ROUTE_CORP_EU_POLICY"},
		{"DOTPROXY_ROUTES_CORP_POLICY", "DOTPROXY_ROUTE_CORP_POLICY"},
		{"DOTPROXY_RUOTE_LAB_DOMAINS", "DOTPROXY_ROUTE_LAB_DOMAINS"},
		{"dotproxy_route_corp_policy", "DOTPROXY_ROUTE_CORP_POLICY"},
		{"DOTPROXY_ROUTE_CORP_CACHE_SIZE", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{tt.name: "x"}
			for k, v := range ups {
				env[k] = v
			}
			_, err := loadWith(t, env)
			var u unknownSettingsError
			if !errors.As(err, &u) || len(u) != 1 || u[0].name != tt.name || u[0].near != tt.near {
				t.Fatalf("loadConfig() = %v, want %s unknown, near %q", err, tt.name, tt.near)
			}
		})
	}
}

// An orchestrator's link variables for a Service named dotproxy-route
// are no routes, whatever their names end with.
func TestRouteNamedLinkVariablesAreNoRoutes(t *testing.T) {
	c, err := loadWith(t, map[string]string{
		"DOTPROXY_ROUTE_SERVICE_HOST":        "10.0.0.11",
		"DOTPROXY_ROUTE_SERVICE_PORT_POLICY": "8053",
	})
	if err != nil || len(c.routes) != 0 {
		t.Fatalf("routes %v, %v; want none", c, err)
	}
}

// checkRoutes validates each route's upstreams as the default route's
// are, naming the route's variable.
func TestCheckRoutesNamesTheRoute(t *testing.T) {
	c := defaultConfig()
	c.routes = []routeConfig{{name: "corp", upper: "CORP", domains: []string{"corp.example"},
		upstreams: upstreamList{{Addr: "no-port", ServerName: "10.0.0.53"}}}}
	var se *settingError
	if err := c.checkRoutes(); !errors.As(err, &se) || se.key != "DOTPROXY_ROUTE_CORP_UPSTREAMS" {
		t.Fatalf("checkRoutes() = %v, want an error naming DOTPROXY_ROUTE_CORP_UPSTREAMS", err)
	}
	c.routes[0].upstreams = upstreamList{{Addr: "10.0.0.53:853", ServerName: "10.0.0.53"}}
	c.routes[0].policy = "nonsense"
	if err := c.checkRoutes(); !errors.As(err, &se) || se.key != "DOTPROXY_ROUTE_CORP_POLICY" {
		t.Fatalf("checkRoutes() = %v, want an error naming DOTPROXY_ROUTE_CORP_POLICY", err)
	}
}
