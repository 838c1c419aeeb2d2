package proxy

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

// udpListener is one UDP socket. On a wildcard address it learns each
// query's destination address from the kernel, so that the reply leaves from
// the address the client asked: on a host with several addresses the kernel
// would otherwise choose the source by route, and a client whose socket is
// connected to the address it queried would drop the reply.
type udpListener struct {
	pc       *net.UDPConn
	wildcard bool
}

func newUDPListener(pc *net.UDPConn) *udpListener {
	l := &udpListener{pc: pc}
	if a, ok := pc.LocalAddr().(*net.UDPAddr); ok && a.IP.IsUnspecified() {
		l.wildcard = enablePktinfo(pc)
	}
	return l
}

// oobSize holds the IP_PKTINFO and the IPV6_PKTINFO that an IPv4 query on a
// dual-stack socket brings, with room to spare: a truncated buffer would drop
// the second.
const oobSize = 128

// read reads one datagram into buf. For a wildcard listener it also returns
// the control message that sends the reply from the query's destination.
func (l *udpListener) read(buf, oob []byte) (n int, client netip.AddrPort, replyOOB []byte, err error) {
	if !l.wildcard {
		n, client, err = l.pc.ReadFromUDPAddrPort(buf)
		return n, client, nil, err
	}
	n, oobn, _, client, err := l.pc.ReadMsgUDPAddrPort(buf, oob)
	if err != nil {
		return n, client, nil, err
	}
	return n, client, replySource(oob[:oobn]), nil
}

func (l *udpListener) write(reply, oob []byte, client netip.AddrPort) error {
	if oob == nil {
		_, err := l.pc.WriteToUDPAddrPort(reply, client)
		return err
	}
	_, _, err := l.pc.WriteMsgUDPAddrPort(reply, oob, client)
	return err
}

func (s *Server) serveUDP(pc *net.UDPConn) {
	defer s.wg.Done()
	l := newUDPListener(pc)
	slots := make(chan struct{}, s.cfg.UDPMaxInFlight)
	buf := make([]byte, maxDatagram)
	oob := make([]byte, oobSize)
	for {
		n, client, replyOOB, err := l.read(buf, oob)
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
			if err := l.write(reply, replyOOB, client); err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("udp write failed", "client", client.String(), "err", err.Error())
			}
		}()
	}
}
