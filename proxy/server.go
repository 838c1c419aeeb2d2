package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dotproxy/dotproxy/ratelimit"
)

// Server serves DNS on every listen address over UDP and TCP. Start it once,
// then Shutdown it once.
type Server struct {
	cfg   Config
	xfr   Transferer // cfg.Resolver, if it can pass zone transfers on
	obs   Observer
	log   *slog.Logger
	debug bool // log every query: checked once, not per query
	mem   memBudget
	limit *ratelimit.Limiter // nil: no rate limit
	// limitLoopback limits loopback clients too: for tests, which have
	// no other addresses to send from (export_test.go).
	limitLoopback bool

	wg sync.WaitGroup // every serving goroutine and query

	// stopping is set once Shutdown has begun. It is set under mu, so that
	// track and Shutdown agree, and read without it by the UDP readers
	// after every batch.
	stopping atomic.Bool

	mu    sync.Mutex // guards the fields below
	udp   []*net.UDPConn
	tcp   []net.Listener
	conns map[net.Conn]struct{} // open client TCP connections
	addrs []string
}

// New checks cfg and returns a Server that is not yet listening.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	limit, err := ratelimit.New(cfg.RateLimit)
	if err != nil {
		return nil, err
	}
	s := &Server{
		limit: limit,
		cfg:   cfg,
		obs:   cfg.Observer,
		log:   cfg.Logger,
		debug: cfg.Logger.Enabled(context.Background(), slog.LevelDebug),
		conns: map[net.Conn]struct{}{},
	}
	s.mem.limit = cfg.MaxInFlightBytes
	s.xfr, _ = cfg.Resolver.(Transferer)
	return s, nil
}

// Start binds every listen address and starts serving. If any address cannot
// be bound, nothing is left listening and the error names the address.
func (s *Server) Start() error {
	for _, addr := range s.cfg.Listen {
		pcs, ln, err := bindPair(addr, s.cfg.UDPSockets)
		if err != nil {
			s.closeListeners()
			return err
		}
		s.mu.Lock()
		s.udp = append(s.udp, pcs...)
		s.tcp = append(s.tcp, ln)
		s.addrs = append(s.addrs, ln.Addr().String())
		s.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pc := range s.udp {
		s.wg.Add(1)
		go s.serveUDP(pc)
	}
	for _, ln := range s.tcp {
		s.wg.Add(1)
		go s.serveTCP(ln)
	}
	return nil
}

// Addrs returns the bound addresses, one per listen address, each served on
// both UDP and TCP.
func (s *Server) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.addrs...)
}

// bindPair listens on addr over TCP and on udpSockets UDP sockets, on the
// same port. With port 0 the TCP port is chosen first and UDP follows it,
// trying again if that UDP port is taken. Several UDP sockets share the
// address with SO_REUSEPORT; the TCP listener never does, so that a second
// dotproxy on the same address still fails to start.
func bindPair(addr string, udpSockets int) ([]*net.UDPConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen address %q: %w", addr, err)
	}
	var lc net.ListenConfig
	if udpSockets > 1 {
		lc.Control = reusePort
	}
	for try := 0; ; try++ {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen on tcp %s: %w", addr, err)
		}
		bound := net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
		pcs, err := listenUDP(lc, bound, max(udpSockets, 1))
		if err == nil {
			return pcs, ln, nil
		}
		ln.Close()
		if port != "0" || try == 10 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("listen on udp %s: %w", bound, err)
		}
	}
}

// listenUDP binds n UDP sockets to addr, or none.
func listenUDP(lc net.ListenConfig, addr string, n int) ([]*net.UDPConn, error) {
	var pcs []*net.UDPConn
	for range n {
		pc, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			for _, pc := range pcs {
				pc.Close()
			}
			return nil, err
		}
		pcs = append(pcs, pc.(*net.UDPConn))
	}
	return pcs, nil
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pc := range s.udp {
		pc.Close()
	}
	for _, ln := range s.tcp {
		ln.Close()
	}
	s.udp, s.tcp, s.addrs = nil, nil, nil
}

// Shutdown stops accepting queries and waits for those in flight to be
// answered; each is bounded by the query timeout. If ctx ends first, client
// connections and sockets are closed at once and Shutdown returns ctx's
// error; the queries still in flight end by their own deadlines, with no one
// left to answer.
func (s *Server) Shutdown(ctx context.Context) error {
	past := time.Unix(1, 0)
	s.mu.Lock()
	s.stopping.Store(true)
	for _, pc := range s.udp {
		pc.SetReadDeadline(past) // wakes the reader; replies can still be written
	}
	for _, ln := range s.tcp {
		ln.Close()
	}
	for c := range s.conns {
		c.SetReadDeadline(past)
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	}
	s.closeListeners()
	return err
}

func (s *Server) isStopping() bool { return s.stopping.Load() }
