//go:build !linux

package proxy

// rawWrite is empty where replies are not written raw.
type rawWrite struct{}

// tryWrite writes nothing: every reply goes through the writer goroutine.
func (w *replyWriter) tryWrite(hdr, msg []byte) int { return 0 }
