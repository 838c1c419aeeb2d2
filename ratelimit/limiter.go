package ratelimit

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Verdict is what Take decides for one request.
type Verdict uint8

// The verdicts.
const (
	// Allow: the request is within its prefix's limit, and charged to it.
	Allow Verdict = iota
	// Drop: the request is over the limit.
	Drop
	// Slip: the request is over the limit, and one of those the caller
	// should answer cheaply (see Config.Slip). Only unverified requests
	// slip.
	Slip
)

// ways is how many entries make a set: a prefix can be in any of its
// set's, and one of them gives way to a newcomer.
const ways = 8

// entry is one prefix's bucket, in 40 bytes.
type entry struct {
	key key
	// tat is when the bucket will be full again, in nanoseconds since
	// the Limiter's epoch; at or before now it is full. The zero entry is
	// a full bucket, as good as empty.
	tat int64
	// demand is tat as it would be had every request been charged, those
	// over the limit too, up to maxAhead past the last: how hard the
	// prefix presses, which keeps it in the table (see set.find).
	demand int64
	// nextReport is the second since the epoch from which this prefix
	// may be reported over its limit again.
	nextReport uint32
	// overs counts the unverified requests over the limit, for slips.
	overs uint32
}

// set is a few entries under one lock.
type set struct {
	mu sync.Mutex // guards e
	e  [ways]entry
}

// Limiter limits the requests of each client prefix (see the package doc).
// It is safe for concurrent use; Take allocates nothing and holds one set's
// lock for a few dozen instructions. A nil *Limiter limits nothing.
type Limiter struct {
	cfg      Config
	epoch    time.Time
	interval int64 // nanoseconds per request, the bucket's refill
	tol      int64 // how far a bucket may be drawn below full: Burst intervals
	maxAhead int64 // how far past now an entry's demand may run
	slip     uint32
	v4mask   uint64 // the low word's mask of an IPv4-mapped address
	v6hi     uint64 // the masks of an IPv6 address's two words
	v6lo     uint64
	seed     [3]uint64
	exempt   []netip.Prefix
	sets     []set
	setMask  uint64

	// reportTAT paces the reports over the whole table, as an entry's tat
	// paces its prefix's requests; unreported counts the prefixes that
	// were due a report and did not get one.
	reportTAT  atomic.Int64
	unreported atomic.Int64
}

// New returns a Limiter for cfg, with its whole table allocated. With a
// zero Rate it returns nil, which limits nothing.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Rate == 0 {
		return nil, nil
	}
	cfg = cfg.withDefaults()
	interval := max(int64(math.Round(float64(time.Second)/cfg.Rate)), 1)
	nsets := 1
	for nsets*ways < cfg.Entries {
		nsets <<= 1
	}
	l := &Limiter{
		cfg:      cfg,
		epoch:    time.Now(),
		interval: interval,
		tol:      int64(cfg.Burst) * interval,
		// Past both the deepest overdraft and an hour, a prefix's
		// demand tells no more about how hard it presses.
		maxAhead: max(2*int64(cfg.Burst)*interval+interval, int64(time.Hour)),
		slip:     uint32(cfg.Slip),
		v4mask:   ^uint64(0) << (32 - cfg.IPv4Prefix),
		seed:     [3]uint64{rand.Uint64(), rand.Uint64(), rand.Uint64()},
		sets:     make([]set, nsets),
		setMask:  uint64(nsets - 1),
	}
	l.cfg.Entries = nsets * ways
	if b := cfg.IPv6Prefix; b >= 64 {
		l.v6hi, l.v6lo = ^uint64(0), ^uint64(0)<<(128-b)
	} else {
		l.v6hi = ^uint64(0) << (64 - b)
	}
	for _, p := range cfg.Exempt {
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		l.exempt = append(l.exempt, p.Masked())
	}
	return l, nil
}

// Take charges one request from addr, arriving at now, to its prefix's
// bucket, and says whether it is within the limit. verified says that the
// source address is known to be genuine (a completed handshake): such a
// request may overdraw the bucket by one more Burst, and never slips.
//
// report is true for a request over the limit when its prefix has not been
// reported for ReportInterval and the table's reports are not coming faster
// than ten an interval: the caller should tell the operator about it,
// naming Prefix(addr). At most one report per prefix per interval is due
// in any case; Unreported counts those held back.
func (l *Limiter) Take(addr netip.Addr, now time.Time, verified bool) (v Verdict, report bool) {
	if l == nil {
		return Allow, false
	}
	addr = addr.Unmap().WithZone("") // netip.Prefix.Contains takes no zoned address
	if l.isExempt(addr) {
		return Allow, false
	}
	k := l.keyOf(addr)
	t := max(int64(now.Sub(l.epoch)), 0) // before the epoch: as at it
	limit := l.tol
	if verified {
		limit += l.tol
	}

	s := &l.sets[l.hash(k)&l.setMask]
	s.mu.Lock()
	e := s.find(k, t)
	e.demand = min(max(e.demand, t)+l.interval, t+l.maxAhead)
	tat := max(e.tat, t)
	if tat+l.interval-t <= limit {
		e.tat = tat + l.interval
		s.mu.Unlock()
		return Allow, false
	}
	v = Drop
	if !verified {
		e.overs++
		if l.slip != 0 && (e.overs-1)%l.slip == 0 {
			v = Slip
		}
	}
	sec := uint32(t / int64(time.Second))
	due := sec >= e.nextReport
	if due {
		e.nextReport = sec + uint32(ReportInterval/time.Second)
	}
	s.mu.Unlock()
	return v, due && l.mayReport(t)
}

// find returns k's entry in s, making one if k has none. The entry that
// gives way is one whose bucket is full at t, whose state is a new entry's,
// so that nothing is lost; failing that, the one that presses least: one
// request charged to a newcomer, from a spoofed source say, weighs less than
// a prefix refused again and again, which keeps its place and its empty
// bucket. s.mu must be held.
func (s *set) find(k key, t int64) *entry {
	victim := -1
	for i := range s.e {
		e := &s.e[i]
		switch {
		case e.key == k:
			return e
		case victim >= 0 && s.e[victim].tat <= t:
			// a full bucket is found already
		case victim < 0 || e.tat <= t || e.demand < s.e[victim].demand:
			victim = i
		}
	}
	s.e[victim] = entry{key: k}
	return &s.e[victim]
}

// mayReport says whether a report is within the pace of reportBurst per
// ReportInterval over the whole table, and counts it as unreported if not.
func (l *Limiter) mayReport(t int64) bool {
	const every = int64(ReportInterval) / reportBurst
	for {
		old := l.reportTAT.Load()
		tat := max(old, t) + every
		if tat-t > int64(ReportInterval) {
			l.unreported.Add(1)
			return false
		}
		if l.reportTAT.CompareAndSwap(old, tat) {
			return true
		}
	}
}

// Unreported returns how many prefixes were due a report and did not get
// one since the last call, and starts counting again.
func (l *Limiter) Unreported() int64 {
	if l == nil {
		return 0
	}
	return l.unreported.Swap(0)
}

func (l *Limiter) isExempt(addr netip.Addr) bool {
	for _, p := range l.exempt {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Prefix returns the network whose bucket addr's requests are charged to.
func (l *Limiter) Prefix(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	b := l.cfg.IPv6Prefix
	if addr.Is4() {
		b = l.cfg.IPv4Prefix
	}
	p, _ := addr.WithZone("").Prefix(b)
	return p
}

// Config returns the Limiter's configuration, its defaults filled in and
// Entries the table's actual size.
func (l *Limiter) Config() Config { return l.cfg }

// hash spreads keys over the sets with a multiply-and-fold keyed by the
// random seed, so that no sender can aim its sources at one set without
// knowing the seed.
func (l *Limiter) hash(k key) uint64 {
	hi, lo := bits.Mul64(k.hi^l.seed[0], k.lo^l.seed[1])
	hi, lo = bits.Mul64(hi^lo^l.seed[2], 0x9e3779b97f4a7c15)
	return hi ^ lo
}
