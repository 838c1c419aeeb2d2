package emit

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/dotproxy/dotproxy/proxy"
	"github.com/dotproxy/dotproxy/upstream"
)

// Every reason the proxy and the pool report must get a tag of its own, not
// the catch-all. The reasons are read from the packages' source, so that a
// new constant there without a name here fails this test rather than
// being tagged "other" unnoticed.
func TestEveryReasonHasItsOwnTag(t *testing.T) {
	proxyConsts := constants(t, "../proxy")
	upstreamConsts := constants(t, "../upstream")
	checks := []struct {
		typ    string
		consts map[string][]string
		tag    func(string) string
	}{
		{"DropReason", proxyConsts, func(v string) string { return dropReasons[dropIndex(proxy.DropReason(v))] }},
		{"FailReason", proxyConsts, func(v string) string { return failReasons[failIndex(proxy.FailReason(v))] }},
		{"LimitAction", proxyConsts, func(v string) string { return limitActions[limitIndex(proxy.LimitAction(v))] }},
		{"CloseReason", upstreamConsts, func(v string) string { return closeReasons[closeIndex(upstream.CloseReason(v))] }},
		{"Stage", upstreamConsts, func(v string) string { return stages[stageIndex(upstream.Stage(v))] }},
	}
	for _, c := range checks {
		values := c.consts[c.typ]
		if len(values) == 0 {
			t.Fatalf("no constant of type %s found: has it been renamed?", c.typ)
		}
		for _, v := range values {
			if got := c.tag(v); got != v {
				t.Errorf("%s %q is tagged %q", c.typ, v, got)
			}
		}
	}
}

// constants returns the string values of the typed constants declared in
// the non-test files of the package in dir, by type name.
func constants(t *testing.T, dir string) map[string][]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	fset := token.NewFileSet()
	for _, name := range files {
		if filepath.Ext(name) != ".go" || len(name) > 8 && name[len(name)-8:] == "_test.go" {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				id, ok := vs.Type.(*ast.Ident)
				if !ok {
					continue
				}
				for _, v := range vs.Values {
					if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						s, _ := strconv.Unquote(lit.Value)
						out[id.Name] = append(out[id.Name], s)
					}
				}
			}
		}
	}
	return out
}
