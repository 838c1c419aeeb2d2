//go:build !linux

package proxy

// peer is empty where replies are sent with Go's own calls.
type peer struct{}

// send writes reply to q's client.
func (l *udpListener) send(q *udpQuery, reply []byte) error {
	return l.write(reply, q.replyOOB, q.client)
}
