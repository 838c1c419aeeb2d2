//go:build !linux

package proxy

// maxDatagram is the largest UDP payload: the one-datagram read takes it
// all, and a query over MaxQuerySize is then dropped.
const maxDatagram = 65535

// batchSize is one where dotproxy has no recvmmsg: one datagram per read.
const batchSize = 1

// batchReader reads one datagram at a time.
type batchReader struct {
	l        *udpListener
	qs       []*udpQuery
	batch    func(n int)
	stopping func() bool
	buf      []byte
	oob      []byte
}

func newBatchReader(l *udpListener, qs []*udpQuery, batch func(n int), stopping func() bool) (*batchReader, error) {
	return &batchReader{l: l, qs: qs, batch: batch, stopping: stopping,
		buf: make([]byte, maxDatagram), oob: make([]byte, oobSize)}, nil
}

// serve reads datagrams and hands each on until a read fails, or stopping
// reports true; then it returns the error, or nil.
func (r *batchReader) serve() error {
	for {
		q := r.qs[0]
		n, err := r.l.read(r.buf, r.oob, q)
		if err != nil {
			return err
		}
		q.msg = append(q.msg[:0], r.buf[:min(n, MaxQuerySize+1)]...) // more shows as too large
		r.batch(1)
		if r.stopping() {
			return nil
		}
	}
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
