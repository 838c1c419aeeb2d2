package main

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/dotproxy/dotproxy/dnsmsg"
)

// healthcheck is liveness: it asks the first listen address for the root
// NS over UDP, through the whole path a query takes, and any answer, with
// any rcode, shows a process that serves. SERVFAIL too: it says that no
// upstream answered, which a restart would not mend (readiness, below, is
// what takes a replica out of service then). Only no answer at all, within
// the query timeout and a second, is unhealthy.
func healthcheck(cfg *config) error {
	addr, err := localAddr(cfg.Listen[0])
	if err != nil {
		return err
	}
	const id = 0x4843
	query, err := dnsmsg.NewQuery(id, ".", dnsmsg.TypeNS)
	if err != nil {
		return err
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(cfg.QueryTimeout + time.Second)); err != nil {
		return err
	}
	if _, err := c.Write(query); err != nil {
		return err
	}
	buf := make([]byte, 65535)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return fmt.Errorf("no answer from %s: %w", addr, err)
		}
		ans := buf[:n]
		if n < dnsmsg.HeaderLen || dnsmsg.ID(ans) != id || !dnsmsg.IsResponse(ans) {
			continue // not ours
		}
		return nil
	}
}

// readycheck is readiness: it asks the running dotproxy for its status
// (status.go) and reports why it is not ready, if it is not: every
// upstream of the default route down, or stopping (see readiness.go). No
// answer is not ready either.
func readycheck(cfg *config) error {
	r, err := askStatus(cfg)
	if err != nil {
		return err
	}
	if !r.Ready {
		return errors.New(r.Reason)
	}
	return nil
}
