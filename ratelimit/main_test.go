package ratelimit_test

import (
	"testing"

	"github.com/dotproxy/dotproxy/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }
