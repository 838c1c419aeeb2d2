package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/lmittmann/tint"
)

// logLevel is DOTPROXY_LOG_LEVEL.
type logLevel slog.Level

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *logLevel) UnmarshalText(text []byte) error {
	switch strings.ToLower(string(text)) {
	case "debug":
		*l = logLevel(slog.LevelDebug)
	case "info":
		*l = logLevel(slog.LevelInfo)
	case "warn", "warning":
		*l = logLevel(slog.LevelWarn)
	case "error":
		*l = logLevel(slog.LevelError)
	default:
		return fmt.Errorf("unknown level (allowed: debug, info, warn, error)")
	}
	return nil
}

// MarshalText implements encoding.TextMarshaler: the name UnmarshalText
// reads, for -h.
func (l logLevel) MarshalText() ([]byte, error) {
	return []byte(strings.ToLower(slog.Level(l).String())), nil
}

func (l logLevel) slog() slog.Level { return slog.Level(l) }

func (l logLevel) String() string { return slog.Level(l).String() }

// logFormat is DOTPROXY_LOG_FORMAT.
type logFormat string

const (
	formatAuto logFormat = "auto"
	formatText logFormat = "text"
	formatJSON logFormat = "json"
)

// UnmarshalText implements encoding.TextUnmarshaler.
func (f *logFormat) UnmarshalText(text []byte) error {
	switch v := logFormat(strings.ToLower(string(text))); v {
	case formatAuto, formatText, formatJSON:
		*f = v
	default:
		return fmt.Errorf("unknown format (allowed: auto, text, json)")
	}
	return nil
}

// isTerminal reports whether f is a character device, as a terminal is.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// newLogger logs through tint's text handler on a terminal and as JSON
// elsewhere, unless DOTPROXY_LOG_FORMAT says otherwise.
func newLogger(level logLevel, format logFormat, w io.Writer) *slog.Logger {
	color := format == formatAuto // a terminal; an explicit "text" may be a file
	if format == formatAuto {
		format = formatJSON
		if f, ok := w.(*os.File); ok && isTerminal(f) {
			format = formatText
		}
	}
	if format == formatJSON {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level.slog()}))
	}
	return slog.New(tint.NewTextHandler(w, &tint.Options{Level: level.slog(), NoColor: !color, TimeFormat: time.RFC3339}))
}
