package route

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// named is a Resolver known by its name alone, which the match tests
// compare; it answers nothing.
type named string

func (named) Start([]byte, time.Time, Finisher)     {}
func (named) StartHeld([]byte, time.Time, Finisher) {}
func (named) Flush()                                {}

// testRoutes are the routes of the match tests: nested suffixes, reverse
// zones, and a suffix that another is a longer string of without being
// under it.
var testRoutes = []Route{
	{Name: "corp", Suffixes: []string{"corp.example", "10.in-addr.arpa", "CORP.test."}, Resolver: named("corp")},
	{Name: "lab", Suffixes: []string{"lab.corp.example", "168.192.in-addr.arpa"}, Resolver: named("lab")},
	{Name: "arpa", Suffixes: []string{"in-addr.arpa"}, Resolver: named("arpa")},
	{Name: "evil", Suffixes: []string{"evilcorp.example"}, Resolver: named("evil")},
}

func newTestRouter(t testing.TB, routes []Route) *Router {
	t.Helper()
	r, err := New(named("default"), routes)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// query packs a query for name with miekg/dns, an independent writer.
func query(t testing.TB, name string) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMatch(t *testing.T) {
	r := newTestRouter(t, testRoutes)
	tests := []struct{ name, want string }{
		{"corp.example.", "corp"},
		{"www.corp.example.", "corp"},
		{"WwW.CoRp.ExAmPlE.", "corp"},
		{"lab.corp.example.", "lab"},
		{"host.LAB.corp.example.", "lab"},
		{"xlab.corp.example.", "corp"},
		{"evilcorp.example.", "evil"},
		{"a.evilcorp.example.", "evil"},
		{"orp.example.", "default"},
		{"example.", "default"},
		{"corp.example.com.", "default"},
		{"corp.test.", "corp"},
		{"x.corp.test.", "corp"},
		{"4.3.2.10.in-addr.arpa.", "corp"},
		{"1.1.168.192.in-addr.arpa.", "lab"},
		{"1.1.169.192.in-addr.arpa.", "arpa"},
		{"in-addr.arpa.", "arpa"},
		{"arpa.", "default"},
		{"10.in-addr.arpa.com.", "default"},
		{".", "default"},
		// A dot inside a label is no label boundary: the first label of
		// a\.corp.example is "a.corp", so it is not under corp.example.
		{`a\.corp.example.`, "default"},
		{`www.corp\.example.`, "default"},
		{`x.lab\.corp.example.`, "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := query(t, tt.name)
			if got := r.nameOf(q); got != tt.want {
				t.Fatalf("%s went to %s, want %s", tt.name, got, tt.want)
			}
			// FuzzMatch's reference agrees, so that it is worth comparing with.
			if ref, ok := referenceRoute(q, testRoutes); !ok || ref != tt.want {
				t.Fatalf("the reference sends %s to %s (%v)", tt.name, ref, ok)
			}
		})
	}
}

// nameOf returns the name of the Resolver that r sends msg to.
func (r *Router) nameOf(msg []byte) string { return string(r.resolver(msg).(named)) }

// Queries with no name to route by go to the default route, whatever else
// they hold: the router is not where a malformed query is answered.
func TestMatchWithoutAName(t *testing.T) {
	r := newTestRouter(t, testRoutes)
	ok := query(t, "www.corp.example.")
	noQuestion := append([]byte(nil), ok...)
	binary.BigEndian.PutUint16(noQuestion[4:], 0)
	pointer := append(ok[:12:12], 0xC0, 12, 0, 1, 0, 1)
	tests := []struct {
		name string
		msg  []byte
	}{
		{"no question", noQuestion},
		{"empty", nil},
		{"header cut", ok[:11]},
		{"name cut", ok[:20]},
		{"compression pointer", pointer},
		{"obsolete label type", append(ok[:12:12], 0x44, 'c', 'o', 'r', 'p', 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.nameOf(tt.msg); got != "default" {
				t.Fatalf("went to %s", got)
			}
		})
	}
	// Only the name is read: a question cut after it, or a second
	// question, still routes.
	if got := r.nameOf(ok[:len(ok)-4]); got != "corp" {
		t.Fatalf("a question cut after its name went to %s", got)
	}
}

// The longest name there is, 255 octets: every label is looked at, and
// the deepest suffix there can be (127 labels) is found.
func TestMatchLongestNames(t *testing.T) {
	deep := strings.TrimSuffix(strings.Repeat("a.", 127), ".")
	long := strings.Repeat(strings.Repeat("x", 63)+".", 3) + strings.Repeat("y", 61)
	r := newTestRouter(t, []Route{
		{Name: "deep", Suffixes: []string{deep}, Resolver: named("deep")},
		{Name: "long", Suffixes: []string{long}, Resolver: named("long")},
		{Name: "tail", Suffixes: []string{"a"}, Resolver: named("tail")},
	})
	for name, want := range map[string]string{
		deep + ".": "deep",
		long + ".": "long",
		strings.TrimSuffix(strings.Repeat("a.", 126), ".") + ".":        "tail",
		"b." + strings.TrimSuffix(strings.Repeat("a.", 126), ".") + ".": "tail",
	} {
		if got := r.nameOf(query(t, name)); got != want {
			t.Errorf("%d-octet name went to %s, want %s", len(name)+1, got, want)
		}
	}
}

func TestNoRoutesSendsEverythingToTheDefault(t *testing.T) {
	r := newTestRouter(t, nil)
	if got := r.nameOf(query(t, "corp.example.")); got != "default" {
		t.Fatalf("went to %s", got)
	}
}

func TestParseSuffix(t *testing.T) {
	good := map[string]string{
		"corp.example":          "corp.example",
		"CoRp.Example.":         "corp.example",
		"10.in-addr.arpa":       "10.in-addr.arpa",
		"_msdcs.corp.example":   "_msdcs.corp.example",
		"xn--bcher-kva.example": "xn--bcher-kva.example",
		"local":                 "local",
		strings.Repeat("x", 63): strings.Repeat("x", 63),
	}
	for in, want := range good {
		if got, err := ParseSuffix(in); err != nil || got != want {
			t.Errorf("ParseSuffix(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", ".", "..", "corp..example", ".corp.example", "corp.example..",
		"*.corp.example", "corp example", `corp\.example`, "bücher.example", "corp/example",
		strings.Repeat("x", 64) + ".example",
		strings.Repeat("x.", 127) + "x", // 255 characters
		strings.Repeat("x.", 127) + "x.",
	} {
		if got, err := ParseSuffix(in); !errors.Is(err, ErrBadSuffix) {
			t.Errorf("ParseSuffix(%q) = %q, %v; want ErrBadSuffix", in, got, err)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name   string
		def    Resolver
		routes []Route
		want   error
		naming []string
	}{
		{"no default", nil, nil, ErrNoResolver, nil},
		{"no resolver", named("d"), []Route{{Name: "corp", Suffixes: []string{"corp.example"}}}, ErrNoResolver, []string{`"corp"`}},
		{"no suffix", named("d"), []Route{{Name: "corp", Resolver: named("c")}}, ErrBadSuffix, []string{`"corp"`}},
		{"bad suffix", named("d"), []Route{{Name: "corp", Suffixes: []string{"corp..example"}, Resolver: named("c")}},
			ErrBadSuffix, []string{`"corp"`, `"corp..example"`}},
		{"the same suffix in two routes", named("d"), []Route{
			{Name: "a", Suffixes: []string{"corp.example"}, Resolver: named("a")},
			{Name: "b", Suffixes: []string{"CORP.example."}, Resolver: named("b")},
		}, ErrDuplicateSuffix, []string{`"corp.example"`, `"a"`, `"b"`}},
		{"the same suffix twice in a route", named("d"), []Route{
			{Name: "a", Suffixes: []string{"corp.example", "corp.example"}, Resolver: named("a")},
		}, ErrDuplicateSuffix, []string{`"corp.example"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.def, tt.routes)
			if !errors.Is(err, tt.want) || r != nil {
				t.Fatalf("New = %v, %v; want %v", r, err, tt.want)
			}
			for _, s := range tt.naming {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not name %s", err, s)
				}
			}
		})
	}
}

// A zone transfer whose route's resolver cannot pass transfers on fails
// with ErrNoTransfer, rather than going to another route's.
func TestTransferWithoutTransferer(t *testing.T) {
	r := newTestRouter(t, testRoutes)
	m := new(dns.Msg)
	m.SetAxfr("corp.example.")
	wire, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Transfer(wire, time.Now().Add(time.Second), time.Second, nil); !errors.Is(err, ErrNoTransfer) {
		t.Fatalf("Transfer = %v, want ErrNoTransfer", err)
	}
}
