package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
)

func TestHandshakeStage(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Stage
	}{
		{"refused after a Fast Open connect", &net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.ECONNREFUSED)}, StageConnect},
		{"unreachable", &net.OpError{Op: "write", Err: syscall.EHOSTUNREACH}, StageConnect},
		{"pin", fmt.Errorf("tls: %w", ErrPinMismatch), StageVerify},
		{"unknown authority", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, StageVerify},
		{"alert", errors.New("remote error: tls: handshake failure"), StageHandshake},
		{"deadline", os.ErrDeadlineExceeded, StageHandshake},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := handshakeStage(tt.err); got != tt.want {
				t.Fatalf("handshakeStage(%v) = %s, want %s", tt.err, got, tt.want)
			}
		})
	}
}
