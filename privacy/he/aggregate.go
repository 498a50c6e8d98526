package he

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/tuneinsight/lattigo/v5/ring"

	"github.com/concord-fl/concord/privacy/he/internal/core"
)

// Errors of Add and AddShare; the wrapped message says what was wrong.
var (
	ErrRejected  = errors.New("rejected")
	ErrDuplicate = errors.New("already received")
)

// Aggregate is the running encrypted sum of one round at the coordinator: one
// polynomial per ciphertext index, whatever the number of sites. It is safe for
// concurrent use.
type Aggregate struct {
	p         *core.Params
	ps        ParamSet
	job       Job
	tag       [8]byte
	round     uint64
	numValues int

	mu   sync.Mutex
	sums []ring.Poly // NTT domain
	seen [][]byte    // per index, a bitset of the points that added it

	pool sync.Pool
}

// NewAggregate starts the encrypted sum of round for updates of numValues values.
func NewAggregate(ps ParamSet, job Job, round uint64, numValues int) (*Aggregate, error) {
	p, err := ps.core()
	if err != nil {
		return nil, err
	}
	if err := job.Validate(); err != nil {
		return nil, err
	}
	if numValues < 1 {
		return nil, fmt.Errorf("he aggregate: %d values, want at least 1", numValues)
	}
	a := &Aggregate{p: p, ps: ps, job: job, tag: core.JobTag(job.ID, job.CRSSeed), round: round, numValues: numValues}
	count := p.Count(numValues)
	a.sums = make([]ring.Poly, count)
	a.seen = make([][]byte, count)
	for i := range a.sums {
		a.sums[i] = p.Ring.NewPoly()
		a.seen[i] = make([]byte, (job.Sites+8)/8)
	}
	a.pool.New = func() any { poly := p.Ring.NewPoly(); return &poly }
	return a, nil
}

// Ciphertexts is the number of ciphertexts each site uploads.
func (a *Aggregate) Ciphertexts() int { return len(a.sums) }

// NumValues is the length of the update vectors.
func (a *Aggregate) NumValues() int { return a.numValues }

// Round is the round this sum belongs to.
func (a *Aggregate) Round() uint64 { return a.round }

// StateBytes is the memory held by the running sum's polynomials.
func (a *Aggregate) StateBytes() int { return len(a.sums) * a.p.N() * 8 }

// Add adds ciphertext ct uploaded by the site at point from. Chunks of different sites
// may interleave in any order. A ciphertext for another job, round, parameter set or
// site, a malformed one, or a second copy of one already added, is rejected with the
// reason and leaves the sum unchanged.
func (a *Aggregate) Add(from int, ct []byte) error {
	scratch := a.pool.Get().(*ring.Poly)
	defer a.pool.Put(scratch)
	h, err := a.p.Decode(ct, *scratch)
	if err != nil {
		return fmt.Errorf("ciphertext from site %d: %w: %w", from, ErrRejected, err)
	}
	if err := a.checkHeader(h, core.KindCiphertext, from); err != nil {
		return fmt.Errorf("ciphertext from site %d: %w: %w", from, ErrRejected, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	bit := a.seen[h.Index]
	if bit[from/8]&(1<<(from%8)) != 0 {
		return fmt.Errorf("ciphertext %d from site %d: %w", h.Index, from, ErrDuplicate)
	}
	a.p.Ring.Add(a.sums[h.Index], *scratch, a.sums[h.Index])
	bit[from/8] |= 1 << (from % 8)
	return nil
}

func (a *Aggregate) checkHeader(h core.Header, kind byte, from int) error {
	switch {
	case h.Kind != kind:
		return fmt.Errorf("object of kind %d where kind %d was expected", h.Kind, kind)
	case h.Job != a.tag:
		return fmt.Errorf("made for another job (tag %x, want %x)", h.Job, a.tag)
	case h.Round != a.round:
		return fmt.Errorf("made for round %d, this is round %d", h.Round, a.round)
	case from < 1 || from > a.job.Sites:
		return fmt.Errorf("sender %d is not a site of this job (1..%d)", from, a.job.Sites)
	case h.Point != from:
		return fmt.Errorf("made by site %d, received from site %d", h.Point, from)
	case h.Index >= len(a.sums):
		return fmt.Errorf("index %d, the update has %d ciphertexts", h.Index, len(a.sums))
	}
	return nil
}

// Contributors returns the sorted points that uploaded every ciphertext, and the sorted
// points that uploaded some but not all.
func (a *Aggregate) Contributors() (complete, partial []int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for pt := 1; pt <= a.job.Sites; pt++ {
		n := 0
		for _, bits := range a.seen {
			if bits[pt/8]&(1<<(pt%8)) != 0 {
				n++
			}
		}
		switch {
		case n == len(a.seen):
			complete = append(complete, pt)
		case n > 0:
			partial = append(partial, pt)
		}
	}
	return complete, partial
}

// DecryptionRequest closes the round: available are the points reachable now. The
// committee is the threshold smallest of them. It fails, and the round must be aborted
// without decryption, when an upload is partial, when fewer sites than the threshold
// contributed, or when fewer than the threshold are available.
func (a *Aggregate) DecryptionRequest(available []int) (DecryptionRequest, error) {
	complete, partial := a.Contributors()
	if len(partial) > 0 {
		return DecryptionRequest{}, fmt.Errorf("close round %d: %w: sites %v (let them finish or abort the round)", a.round, ErrIncompleteUploads, partial)
	}
	if len(complete) < a.job.Threshold {
		return DecryptionRequest{}, fmt.Errorf("close round %d: %d sites contributed: %w %d", a.round, len(complete), ErrTooFewContributors, a.job.Threshold)
	}
	var avail []int
	for _, pt := range sortedUnique(available) {
		if pt >= 1 && pt <= a.job.Sites {
			avail = append(avail, pt)
		}
	}
	if len(avail) < a.job.Threshold {
		return DecryptionRequest{}, fmt.Errorf("close round %d: %d sites available: %w (%d)", a.round, len(avail), ErrNotEnoughParties, a.job.Threshold)
	}
	return DecryptionRequest{
		Round:        a.round,
		Contributors: complete,
		Committee:    avail[:a.job.Threshold],
		Ciphertexts:  len(a.sums),
	}, nil
}

const aggMagic = "CAG1"

// MarshalBinary encodes the running sum so the coordinator can persist it and resume
// the round after a restart.
func (a *Aggregate) MarshalBinary() ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	polyBytes := (a.p.N()*int(a.p.Bits) + 7) / 8
	b := make([]byte, 0, 40+len(a.sums)*(polyBytes+len(a.seen[0])))
	b = append(b, aggMagic...)
	b = append(b, a.p.ID[:]...)
	b = append(b, a.tag[:]...)
	b = binary.LittleEndian.AppendUint64(b, a.round)
	b = binary.LittleEndian.AppendUint32(b, uint32(a.numValues))
	b = binary.LittleEndian.AppendUint16(b, uint16(a.job.Sites))
	b = binary.LittleEndian.AppendUint16(b, uint16(a.job.Threshold))
	coeffs := make([]uint64, a.p.N())
	buf := make([]byte, polyBytes)
	for i, s := range a.sums {
		b = append(b, a.seen[i]...)
		copy(coeffs, s.Coeffs[0])
		core.Pack(buf, coeffs, a.p.Bits)
		b = append(b, buf...)
	}
	return b, nil
}

// UnmarshalAggregate restores a sum written by MarshalBinary for the same job.
func UnmarshalAggregate(ps ParamSet, job Job, data []byte) (*Aggregate, error) {
	if len(data) < 32 || string(data[:4]) != aggMagic {
		return nil, errors.New("restore aggregate: not a concord aggregate")
	}
	p, err := ps.core()
	if err != nil {
		return nil, err
	}
	var id [4]byte
	var tag [8]byte
	copy(id[:], data[4:])
	copy(tag[:], data[8:])
	if id != p.ID {
		return nil, fmt.Errorf("restore aggregate: made with another parameter set than %s", ps.Name)
	}
	if tag != core.JobTag(job.ID, job.CRSSeed) {
		return nil, fmt.Errorf("restore aggregate: made for another job than %q", job.ID)
	}
	round := binary.LittleEndian.Uint64(data[16:])
	numValues := int(binary.LittleEndian.Uint32(data[24:]))
	sites := int(binary.LittleEndian.Uint16(data[28:]))
	threshold := int(binary.LittleEndian.Uint16(data[30:]))
	if sites != job.Sites || threshold != job.Threshold {
		return nil, fmt.Errorf("restore aggregate: saved for %d sites threshold %d, job has %d and %d", sites, threshold, job.Sites, job.Threshold)
	}
	a, err := NewAggregate(ps, job, round, numValues)
	if err != nil {
		return nil, fmt.Errorf("restore aggregate: %w", err)
	}
	polyBytes := (p.N()*int(p.Bits) + 7) / 8
	rest := data[32:]
	per := len(a.seen[0]) + polyBytes
	if len(rest) != per*len(a.sums) {
		return nil, fmt.Errorf("restore aggregate: %d bytes of sums, want %d", len(rest), per*len(a.sums))
	}
	for i := range a.sums {
		copy(a.seen[i], rest[:len(a.seen[i])])
		rest = rest[len(a.seen[i]):]
		c := a.sums[i].Coeffs[0]
		core.Unpack(rest[:polyBytes], c, p.Bits)
		rest = rest[polyBytes:]
		if slices.ContainsFunc(c, func(v uint64) bool { return v >= p.Q }) {
			return nil, fmt.Errorf("restore aggregate: sum %d is not reduced modulo q", i)
		}
	}
	return a, nil
}
