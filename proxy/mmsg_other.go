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
