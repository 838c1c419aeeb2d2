//go:build !linux

package proxy

// batchSize is one where dotproxy has no recvmmsg: one datagram per read.
const batchSize = 1

// batchReader reads one datagram at a time.
type batchReader struct {
	l   *udpListener
	buf []byte
	oob []byte
}

func newBatchReader(l *udpListener) (*batchReader, error) {
	return &batchReader{l: l, buf: make([]byte, maxDatagram), oob: make([]byte, oobSize)}, nil
}

func (r *batchReader) read(qs []*udpQuery) (int, error) {
	n, err := r.l.read(r.buf, r.oob, qs[0])
	if err != nil {
		return 0, err
	}
	qs[0].msg = append(qs[0].msg[:0], r.buf[:n]...)
	return 1, nil
}

// read reads one datagram into buf and oob, shared by every query of the
// listener, and keeps in q its client and, for a wildcard listener, the
// control message that sends the reply from the query's destination.
func (l *udpListener) read(buf, oob []byte, q *udpQuery) (n int, err error) {
	if !l.wildcard {
		n, q.client, err = l.pc.ReadFromUDPAddrPort(buf)
		q.replyOOB = q.replyOOB[:0]
		return n, err
	}
	n, oobn, _, client, err := l.pc.ReadMsgUDPAddrPort(buf, oob)
	q.client = client
	if err != nil {
		return n, err
	}
	q.replyOOB = appendReplySource(q.replyOOB[:0], oob[:oobn])
	return n, nil
}
