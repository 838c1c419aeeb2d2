package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// root is dotproxy's module, three levels up.
var root = filepath.Join("..", "..", "..")

// TestFactsMatchDotproxy reads the checker's copies of dotproxy's defaults
// from the main module's source, so that the rules follow dotproxy when a
// default or the stop budget changes.
func TestFactsMatchDotproxy(t *testing.T) {
	for _, f := range []struct {
		file, name string
		want       int64
	}{
		{"proxy/config.go", "DefaultQueryTimeout", int64(defaultQueryTimeout)},
		{"proxy/config.go", "DefaultMaxInFlightBytes", defaultInflightMiB << 20},
		{"memlimit.go", "memoryHeadroom", memoryHeadroomMiB << 20},
	} {
		got, err := constInt(filepath.Join(root, f.file), f.name)
		if err != nil {
			t.Fatal(err)
		}
		if got != f.want {
			t.Errorf("%s %s = %d, the checker assumes %d", f.file, f.name, got, f.want)
		}
	}
	// The stop budget: past the queries' deadline, shutdown.go's steps
	// share a second.
	var steps int64
	for _, name := range []string{"answerGrace", "upstreamCloseWait", "metricsCloseWait", "exitRoom"} {
		d, err := constInt(filepath.Join(root, "shutdown.go"), name)
		if err != nil {
			t.Fatal(err)
		}
		steps += d
	}
	if steps > int64(stopRoom) {
		t.Errorf("shutdown.go's steps after the query deadline take %v, the checker allows %v", time.Duration(steps), stopRoom)
	}
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("\nUSER %d:%d\n", imageUID, imageUID); !regexp.MustCompile(regexp.QuoteMeta(want)).Match(dockerfile) {
		t.Errorf("the Dockerfile's USER is not %d", imageUID)
	}
}

// constInt evaluates the package-level constant name in file: integer
// literals, time units and + - * << between them, which is all dotproxy's
// defaults use.
func constInt(file, name string) (int64, error) {
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
	if err != nil {
		return 0, err
	}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if n.Name == name && i < len(vs.Values) {
					return eval(vs.Values[i])
				}
			}
		}
	}
	return 0, fmt.Errorf("%s: no constant %s", file, name)
}

func eval(e ast.Expr) (int64, error) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.INT {
			return 0, fmt.Errorf("literal %s", e.Value)
		}
		return strconv.ParseInt(e.Value, 0, 64)
	case *ast.ParenExpr:
		return eval(e.X)
	case *ast.SelectorExpr:
		units := map[string]time.Duration{"Nanosecond": time.Nanosecond, "Microsecond": time.Microsecond,
			"Millisecond": time.Millisecond, "Second": time.Second, "Minute": time.Minute, "Hour": time.Hour}
		if x, ok := e.X.(*ast.Ident); ok && x.Name == "time" {
			if u, ok := units[e.Sel.Name]; ok {
				return int64(u), nil
			}
		}
		return 0, fmt.Errorf("selector %s", e.Sel.Name)
	case *ast.BinaryExpr:
		x, err := eval(e.X)
		if err != nil {
			return 0, err
		}
		y, err := eval(e.Y)
		if err != nil {
			return 0, err
		}
		switch e.Op {
		case token.ADD:
			return x + y, nil
		case token.SUB:
			return x - y, nil
		case token.MUL:
			return x * y, nil
		case token.SHL:
			return x << y, nil
		}
		return 0, fmt.Errorf("operator %s", e.Op)
	}
	return 0, fmt.Errorf("expression %T", e)
}
