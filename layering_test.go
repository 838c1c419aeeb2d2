package main_test

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The root's files are laid out in layers: the main row of
// docs/architecture.md lists them top down, and says that each uses only
// those below it. A file that uses one listed above it, or one that the row
// leaves out, fails here, so that the list and the code cannot drift apart
// as features are merged.
func TestFilesUseOnlyThoseBelowThem(t *testing.T) {
	order := documentedOrder(t)
	rank := make(map[string]int, len(order))
	for i, f := range order {
		if _, twice := rank[f]; twice {
			t.Errorf("docs/architecture.md lists %s twice in the main row", f)
		}
		rank[f] = i
	}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if name := e.Name(); strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			files = append(files, name)
		}
	}
	for _, f := range files {
		if _, ok := rank[f]; !ok {
			t.Errorf("%s is not in the main row of docs/architecture.md: list it below the files that use it and above those it uses", f)
		}
	}
	for _, f := range order {
		if !slices.Contains(files, f) {
			t.Errorf("docs/architecture.md lists %s in the main row, which is no file of the root", f)
		}
	}
	for _, u := range fileUses(t) {
		from, okFrom := rank[u.from]
		to, okTo := rank[u.to]
		if okFrom && okTo && to <= from {
			t.Errorf("%s uses %s (%s), which docs/architecture.md lists above it: move what it uses down, or the list",
				u.from, u.to, strings.Join(u.names, ", "))
		}
	}
}

// documentedOrder returns the files that the main row of
// docs/architecture.md names, in its order.
func documentedOrder(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(doc)) {
		if !strings.HasPrefix(line, "| `main` (root) |") {
			continue
		}
		if !strings.Contains(line, "Each file uses only those below it in this list") {
			t.Fatal("the main row of docs/architecture.md no longer says that each file uses only those below it")
		}
		var order []string
		for _, m := range regexp.MustCompile("`([a-z0-9_]+\\.go)`").FindAllStringSubmatch(line, -1) {
			order = append(order, m[1])
		}
		return order
	}
	t.Fatal("docs/architecture.md has no main row")
	return nil
}

// fileUse is one file of the root using declarations of another.
type fileUse struct {
	from, to string
	names    []string
}

// fileUses type-checks the root's files, as this platform builds them,
// and returns which file uses which, naming what it uses: a function,
// type, constant or variable, and a field or a method too, which a file
// may declare away from its type.
func fileUses(t *testing.T) []fileUse {
	t.Helper()
	goList := func(args ...string) []string {
		cmd := exec.Command("go", append([]string{"list"}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
		}
		return strings.Fields(string(out))
	}
	// The imported packages are read from the compiler's export data, as
	// the build made it.
	exports := map[string]string{}
	for _, kv := range goList("-export", "-deps", "-f", "{{if .Export}}{{.ImportPath}}={{.Export}}{{end}}", ".") {
		path, file, _ := strings.Cut(kv, "=")
		exports[path] = file
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range goList("-f", `{{join .GoFiles " "}}`, ".") {
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	conf := types.Config{Importer: importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		file, ok := exports[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(file)
	})}
	info := &types.Info{Uses: map[*ast.Ident]types.Object{}}
	pkg, err := conf.Check("main", fset, files, info)
	if err != nil {
		t.Fatal(err)
	}
	type pair struct{ from, to string }
	names := map[pair]map[string]bool{}
	for id, obj := range info.Uses {
		if obj.Pkg() != pkg || !obj.Pos().IsValid() {
			continue
		}
		p := pair{filepath.Base(fset.Position(id.Pos()).Filename), filepath.Base(fset.Position(obj.Pos()).Filename)}
		if p.from == p.to {
			continue
		}
		if names[p] == nil {
			names[p] = map[string]bool{}
		}
		names[p][obj.Name()] = true
	}
	var uses []fileUse
	for p, ns := range names {
		u := fileUse{from: p.from, to: p.to}
		for n := range ns {
			u.names = append(u.names, n)
		}
		slices.Sort(u.names)
		uses = append(uses, u)
	}
	slices.SortFunc(uses, func(a, b fileUse) int {
		return strings.Compare(a.from+" "+a.to, b.from+" "+b.to)
	})
	return uses
}
