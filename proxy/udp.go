package proxy

import (
	"errors"
	"net"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

func (s *Server) serveUDP(pc *net.UDPConn) {
	defer s.wg.Done()
	slots := make(chan struct{}, s.cfg.UDPMaxInFlight)
	buf := make([]byte, maxDatagram)
	for {
		n, client, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if s.isStopping() || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("udp read failed", "addr", pc.LocalAddr().String(), "err", err.Error())
			continue
		}
		arrived := time.Now()
		if n < dnsmsg.HeaderLen {
			s.obs.Dropped(UDP, DropShort)
			continue
		}
		// The query leaves the shared buffer: the resolver may still be
		// reading it (a hedged copy) after the reply has gone.
		msg := make([]byte, n)
		copy(msg, buf)
		slots <- struct{}{}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-slots }()
			reply := s.handle(UDP, client.Addr(), msg, arrived)
			if reply == nil {
				return
			}
			if _, err := pc.WriteToUDPAddrPort(reply, client); err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("udp write failed", "client", client.String(), "err", err.Error())
			}
		}()
	}
}
