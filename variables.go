package main

import (
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// envPrefix starts every variable dotproxy reads.
const envPrefix = "DOTPROXY"

// env names the variable DOTPROXY_key.
func env(key string) string { return envPrefix + "_" + key }

// variable is one setting: the name of its variable and the field that
// holds its value.
type variable struct {
	name  string
	field reflect.Value
}

// variables lists the settings of spec, a pointer to a struct such as
// config, in the order of its fields, named by envconfig itself: no
// variable's name is written by hand, so none can drift from its field.
func variables(spec any) ([]variable, error) {
	var vars []variable
	collect := func(name string, field reflect.Value) string {
		vars = append(vars, variable{name: name, field: field})
		return ""
	}
	tmpl := template.Must(template.New("variables").
		Funcs(template.FuncMap{"collect": collect}).
		Parse("{{range .}}{{collect .Key .Field}}{{end}}"))
	if err := envconfig.Usaget(envPrefix, spec, io.Discard, tmpl); err != nil {
		return nil, err
	}
	return vars, nil
}

// settingText writes a setting's value as its variable would hold it, the
// form that reads back as the same value: -h prints defaults with it. A
// list is written comma-separated, and an empty string or list as "".
func settingText(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case time.Duration:
		return durationText(x)
	case [sha256.Size]byte: // a pin
		return base64.StdEncoding.EncodeToString(x[:])
	case encoding.TextMarshaler: // before fmt's String: logLevel's is upper case
		if b, err := x.MarshalText(); err == nil {
			return string(b)
		}
	}
	if v.Kind() == reflect.Slice {
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = settingText(v.Index(i))
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v.Interface())
}

// durationText writes d as an operator would: in whole seconds where it is
// some, else in whole milliseconds, so 60s rather than Go's 1m0s and 1500ms
// rather than 1.5s.
func durationText(d time.Duration) string {
	switch {
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d%time.Millisecond == 0:
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
	}
	return d.String()
}

// settingError names the variable at fault and its value, in the one line
// that start-up prints before it exits.
type settingError struct {
	key, value string
	err        error
}

func (e *settingError) Error() string {
	return fmt.Sprintf("%s=%q: %v", e.key, e.value, e.err)
}
