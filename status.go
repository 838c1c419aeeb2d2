package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/dotproxy/dotproxy/internal/status"
)

// `dotproxy status` asks the running dotproxy, on its first listen
// address, for status.dotproxy. CH TXT over TCP, and prints what it says
// as a table (internal/status). The proxy answers only a client on
// loopback (proxy/local.go), so the question leaves from loopback even
// when the listen address is another of the host's: inside a container,
// `docker exec` runs in the container's own network namespace, whose
// loopback it is.

// statusCommand prints the status of the dotproxy configured by cfg.
func statusCommand(cfg *config, stdout io.Writer) error {
	r, err := askStatus(cfg)
	if err != nil {
		return err
	}
	status.Render(stdout, r)
	return nil
}

// askStatus asks the dotproxy configured by cfg for its status, within the
// query timeout and a second.
func askStatus(cfg *config) (*status.Report, error) {
	addr, err := localAddr(cfg.Listen[0])
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(cfg.QueryTimeout + time.Second)
	c, err := dialFromLoopback(addr, deadline)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	id := uint16(rand.Uint32())
	query := status.Query(id)
	frame := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(query)), uint16(len(query)))
	if _, err := c.Write(append(frame, query...)); err != nil {
		return nil, err
	}
	msg, err := readFrame(bufio.NewReader(c))
	if err != nil {
		return nil, fmt.Errorf("no status from %s: %w", addr, err)
	}
	return status.DecodeAnswer(msg, id)
}

// localAddr turns a listen address into one to query on this host: a
// wildcard or empty host becomes loopback.
func localAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	switch {
	case host == "" || host == "0.0.0.0":
		host = "127.0.0.1"
	case host == "::":
		host = "::1"
	default:
		if a, err := netip.ParseAddr(host); err == nil && a.IsUnspecified() {
			host = "127.0.0.1"
		}
	}
	return net.JoinHostPort(host, port), nil
}

// dialFromLoopback opens a TCP connection to addr, an address of this host,
// from loopback, which Linux allows for any local address. Where the
// kernel does not, the connection leaves from wherever it chooses, and the
// proxy says REFUSED if that is not loopback.
func dialFromLoopback(addr string, deadline time.Time) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Deadline: deadline}
	if to := ap.Addr().Unmap(); !to.IsLoopback() {
		src := netip.IPv6Loopback()
		if to.Is4() {
			src = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		if c, err := d.Dial("tcp", addr); err == nil {
			return c, nil
		}
		d.LocalAddr = nil
	}
	return d.Dial("tcp", addr)
}

// readFrame reads one length-prefixed DNS message.
func readFrame(r *bufio.Reader) ([]byte, error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(n[:]))
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	return msg, nil
}
