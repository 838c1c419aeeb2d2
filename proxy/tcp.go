package proxy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

func (s *Server) serveTCP(ln net.Listener) {
	defer s.wg.Done()
	open := make(chan struct{}, s.cfg.TCPMaxConns)
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isStopping() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, most likely: let others close.
			s.log.Warn("tcp accept failed", "addr", ln.Addr().String(), "err", err.Error())
			time.Sleep(50 * time.Millisecond)
			continue
		}
		select {
		case open <- struct{}{}:
		default:
			s.obs.Dropped(TCP, DropConnLimit)
			c.Close()
			continue
		}
		if !s.track(c) {
			<-open
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-open }()
			s.serveTCPConn(c)
		}()
	}
}

// track registers a client connection so that Shutdown can reach it; it
// refuses once shutdown has begun.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// serveTCPConn reads framed queries and answers each as soon as its answer
// is ready, in whatever order that is (RFC 7766 §6.2.1.1).
func (s *Server) serveTCPConn(c net.Conn) {
	defer s.untrack(c)
	defer c.Close()
	client := remoteAddr(c)
	w := &frameWriter{c: c, timeout: s.cfg.TCPIdleTimeout}
	slots := make(chan struct{}, s.cfg.TCPMaxInFlight)
	var queries sync.WaitGroup
	defer queries.Wait() // answer what was asked before closing

	r := bufio.NewReader(c)
	for {
		if err := c.SetReadDeadline(time.Now().Add(s.cfg.TCPIdleTimeout)); err != nil {
			return
		}
		msg, err := readQueryFrame(r)
		if errors.Is(err, errBadFrame) {
			s.obs.Dropped(TCP, DropBadFrame)
			return
		}
		if err != nil {
			return // EOF, idle timeout or shutdown
		}
		arrived := time.Now()
		slots <- struct{}{}
		queries.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer queries.Done()
			defer func() { <-slots }()
			if reply := s.handle(TCP, client, msg, arrived); reply != nil {
				w.write(reply)
			}
		}()
	}
}

var errBadFrame = errors.New("proxy: frame shorter than a DNS header")

// readQueryFrame reads one length-prefixed message (RFC 1035 §4.2.2). A
// length too small for a DNS header is a broken stream.
func readQueryFrame(r io.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n < dnsmsg.HeaderLen {
		return nil, errBadFrame
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

// frameWriter writes whole frames from concurrent goroutines.
type frameWriter struct {
	c       net.Conn
	timeout time.Duration

	mu sync.Mutex // one frame at a time
}

func (w *frameWriter) write(msg []byte) {
	var hdr [2]byte
	binary.BigEndian.PutUint16(hdr[:], uint16(len(msg)))
	bufs := net.Buffers{hdr[:], msg}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.c.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return
	}
	if _, err := bufs.WriteTo(w.c); err != nil {
		w.c.Close() // a client that cannot take its answers is gone
	}
}

func remoteAddr(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr()
	}
	return netip.Addr{}
}
