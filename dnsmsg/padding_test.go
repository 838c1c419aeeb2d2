package dnsmsg_test

import (
	"strings"
	"testing"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

func TestPadding_UnmarshalText(t *testing.T) {
	tests := []struct {
		in      string
		want    dnsmsg.Padding
		wantErr bool
	}{
		{"block", dnsmsg.PadBlock, false},
		{"off", dnsmsg.PadOff, false},
		{"Block", dnsmsg.PadBlock, false},
		{"OFF", dnsmsg.PadOff, false},
		{"", "", true},
		{"random", "", true},
		{"128", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p := dnsmsg.PadBlock
			err := p.UnmarshalText([]byte(tt.in))
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "block, off") {
					t.Fatalf("UnmarshalText(%q) = %v, want an error listing block and off", tt.in, err)
				}
				return
			}
			if err != nil || p != tt.want {
				t.Fatalf("UnmarshalText(%q) = %q, %v; want %q", tt.in, p, err, tt.want)
			}
		})
	}
}

func TestPadding_Block(t *testing.T) {
	tests := []struct {
		p    dnsmsg.Padding
		want int
	}{
		{dnsmsg.PadBlock, 128}, // RFC 8467 §4.1
		{dnsmsg.PadOff, 0},
		{"", 0},
	}
	for _, tt := range tests {
		if got := tt.p.Block(); got != tt.want {
			t.Errorf("Padding(%q).Block() = %d, want %d", tt.p, got, tt.want)
		}
	}
}
