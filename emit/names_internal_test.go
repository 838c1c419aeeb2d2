package emit

import (
	"testing"

	"github.com/dotproxy/dotproxy/proxy"
	"github.com/dotproxy/dotproxy/upstream"
)

// Every reason the proxy and the pool report must get a tag of its own, not
// the catch-all: a new constant there needs a name here.
func TestEveryReasonHasItsOwnTag(t *testing.T) {
	for _, r := range []proxy.DropReason{proxy.DropShort, proxy.DropResponse, proxy.DropBadFrame, proxy.DropConnLimit} {
		if got := dropReasons[dropIndex(r)]; got != string(r) {
			t.Errorf("drop reason %q is tagged %q", r, got)
		}
	}
	for _, r := range []proxy.FailReason{proxy.FailDeadline, proxy.FailUpstream, proxy.FailUnreachable} {
		if got := failReasons[failIndex(r)]; got != string(r) {
			t.Errorf("fail reason %q is tagged %q", r, got)
		}
	}
	for _, r := range []upstream.CloseReason{upstream.CloseIdle, upstream.CloseServerClosed, upstream.CloseError, upstream.CloseShutdown} {
		if got := closeReasons[closeIndex(r)]; got != string(r) {
			t.Errorf("close reason %q is tagged %q", r, got)
		}
	}
	for _, s := range []upstream.Stage{upstream.StageConnect, upstream.StageHandshake, upstream.StageVerify, upstream.StageIO} {
		if got := stages[stageIndex(s)]; got != string(s) {
			t.Errorf("stage %q is tagged %q", s, got)
		}
	}
}
