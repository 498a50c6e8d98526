package he

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/tuneinsight/lattigo/v5/ring"

	"github.com/concord-fl/concord/privacy/he/internal/core"
)

// ErrMissingShares is returned by Result until every committee member has sent a share
// of every ciphertext.
var ErrMissingShares = errors.New("decryption shares missing")

// Decryption collects the committee's decryption shares of one closed round. It keeps
// one running sum of shares per ciphertext, not the shares themselves. It is safe for
// concurrent use.
type Decryption struct {
	a      *Aggregate
	req    DecryptionRequest
	digest [8]byte
	member map[int]int // point -> position in the committee

	mu   sync.Mutex
	sums []ring.Poly
	got  [][]bool // [index][committee position]
	done bool
}

// NewDecryption starts collecting shares for req, which must be the request this
// aggregate produced (same round, same contributors).
func (a *Aggregate) NewDecryption(req DecryptionRequest) (*Decryption, error) {
	if err := req.Validate(a.job); err != nil {
		return nil, err
	}
	complete, partial := a.Contributors()
	switch {
	case req.Round != a.round:
		return nil, fmt.Errorf("decryption of round %d: the aggregate is round %d", req.Round, a.round)
	case len(partial) > 0 || !slices.Equal(complete, req.Contributors):
		return nil, fmt.Errorf("decryption of round %d: contributors %v do not match the aggregate's %v (partial %v)", req.Round, req.Contributors, complete, partial)
	case req.Ciphertexts != len(a.sums):
		return nil, fmt.Errorf("decryption of round %d: %d ciphertexts, the aggregate has %d", req.Round, req.Ciphertexts, len(a.sums))
	}
	d := &Decryption{a: a, req: req, digest: req.Digest(), member: map[int]int{}}
	for i, pt := range req.Committee {
		d.member[pt] = i
	}
	d.sums = make([]ring.Poly, len(a.sums))
	d.got = make([][]bool, len(a.sums))
	for i := range d.sums {
		d.sums[i] = a.p.Ring.NewPoly()
		d.got[i] = make([]bool, len(req.Committee))
	}
	return d, nil
}

// ValidateShare checks a decryption share from the site at point from without using it.
func (d *Decryption) ValidateShare(from int, share []byte) error {
	scratch := d.a.pool.Get().(*ring.Poly)
	defer d.a.pool.Put(scratch)
	_, err := d.decode(from, share, *scratch)
	return err
}

func (d *Decryption) decode(from int, share []byte, into ring.Poly) (core.Header, error) {
	if _, ok := d.member[from]; !ok {
		return core.Header{}, fmt.Errorf("decryption share from site %d: %w: site %d is not in the committee %v of round %d", from, ErrRejected, from, d.req.Committee, d.req.Round)
	}
	h, err := d.a.p.Decode(share, into)
	if err != nil {
		return h, fmt.Errorf("decryption share from site %d: %w: %w", from, ErrRejected, err)
	}
	if err := d.a.checkHeader(h, core.KindShare, from); err != nil {
		return h, fmt.Errorf("decryption share from site %d: %w: %w", from, ErrRejected, err)
	}
	if h.Context != d.digest {
		return h, fmt.Errorf("decryption share from site %d: %w: computed for another decryption request", from, ErrRejected)
	}
	return h, nil
}

// AddShare adds the share of one ciphertext from a committee member.
func (d *Decryption) AddShare(from int, share []byte) error {
	scratch := d.a.pool.Get().(*ring.Poly)
	defer d.a.pool.Put(scratch)
	h, err := d.decode(from, share, *scratch)
	if err != nil {
		return err
	}
	pos := d.member[from]
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done {
		return errors.New("decryption share: the round is already decrypted")
	}
	if d.got[h.Index][pos] {
		return fmt.Errorf("decryption share %d from site %d: %w", h.Index, from, ErrDuplicate)
	}
	d.a.p.Ring.Add(d.sums[h.Index], *scratch, d.sums[h.Index])
	d.got[h.Index][pos] = true
	return nil
}

// Missing returns the committee members that still owe at least one share.
func (d *Decryption) Missing() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []int
	for pos, pt := range d.req.Committee {
		for i := range d.got {
			if !d.got[i][pos] {
				out = append(out, pt)
				break
			}
		}
	}
	return out
}

// Result is a decrypted round.
type Result struct {
	// Sum is the sum over contributors of weight*update.
	Sum []float64
	// TotalWeight is the sum of the contributors' weights.
	TotalWeight float64
	// Contributors are the points whose updates are in Sum.
	Contributors []int
}

// Mean returns Sum/TotalWeight, the weighted mean of the contributors' updates.
func (r Result) Mean() ([]float64, error) {
	if !(r.TotalWeight > 0) {
		return nil, fmt.Errorf("weighted mean: total weight %g is not positive", r.TotalWeight)
	}
	out := make([]float64, len(r.Sum))
	for i, v := range r.Sum {
		out[i] = v / r.TotalWeight
	}
	return out, nil
}

// Result decrypts the sum once every committee member has sent every share. It refuses,
// decrypting nothing, while a share is missing.
func (d *Decryption) Result() (Result, error) {
	if m := d.Missing(); len(m) > 0 {
		return Result{}, fmt.Errorf("decrypt round %d: %w from sites %v", d.req.Round, ErrMissingShares, m)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.a.mu.Lock()
	defer d.a.mu.Unlock()
	p := d.a.p
	n := p.N()
	flat := make([]float64, len(d.sums)*n)
	tmp := p.Ring.NewPoly()
	for i := range d.sums {
		p.Ring.Add(d.a.sums[i], d.sums[i], tmp)
		p.Ring.INTT(tmp, tmp)
		p.DecodeValues(tmp, flat[i*n:(i+1)*n])
	}
	d.done = true
	nv := d.a.numValues
	return Result{
		Sum:          flat[:nv:nv],
		TotalWeight:  flat[nv],
		Contributors: slices.Clone(d.req.Contributors),
	}, nil
}

// Combine is the one-call form of NewDecryption, AddShare and Result: shares maps each
// committee member's point to its shares, one per ciphertext in index order.
func (a *Aggregate) Combine(req DecryptionRequest, shares map[int][][]byte) (Result, error) {
	d, err := a.NewDecryption(req)
	if err != nil {
		return Result{}, err
	}
	for _, pt := range slices.Sorted(maps.Keys(shares)) {
		for _, s := range shares[pt] {
			if err := d.AddShare(pt, s); err != nil {
				return Result{}, err
			}
		}
	}
	return d.Result()
}

const decMagic = "CDC1"

// MarshalBinary encodes the shares collected so far (their running sum and which
// arrived) so that a restarted coordinator resumes the decryption with
// Aggregate.UnmarshalDecryption instead of asking the committee again.
func (d *Decryption) MarshalBinary() ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	req, err := d.req.MarshalBinary()
	if err != nil {
		return nil, err
	}
	p := d.a.p
	polyBytes := (p.N()*int(p.Bits) + 7) / 8
	b := make([]byte, 0, 8+len(req)+len(d.sums)*(polyBytes+len(d.req.Committee)))
	b = append(b, decMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(req)))
	b = append(b, req...)
	buf := make([]byte, polyBytes)
	for i, s := range d.sums {
		for _, g := range d.got[i] {
			if g {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		}
		core.Pack(buf, s.Coeffs[0], p.Bits)
		b = append(b, buf...)
	}
	return b, nil
}

// UnmarshalDecryption restores a Decryption of this aggregate written by MarshalBinary.
func (a *Aggregate) UnmarshalDecryption(data []byte) (*Decryption, error) {
	if len(data) < 8 || string(data[:4]) != decMagic {
		return nil, errors.New("restore decryption: not a concord decryption")
	}
	n := int(binary.LittleEndian.Uint32(data[4:]))
	if n > len(data)-8 {
		return nil, errors.New("restore decryption: truncated request")
	}
	req, err := UnmarshalDecryptionRequest(data[8 : 8+n])
	if err != nil {
		return nil, fmt.Errorf("restore decryption: %w", err)
	}
	d, err := a.NewDecryption(req)
	if err != nil {
		return nil, fmt.Errorf("restore decryption: %w", err)
	}
	p := a.p
	polyBytes := (p.N()*int(p.Bits) + 7) / 8
	rest := data[8+n:]
	per := len(req.Committee) + polyBytes
	if len(rest) != per*len(d.sums) {
		return nil, fmt.Errorf("restore decryption: %d bytes of shares, want %d", len(rest), per*len(d.sums))
	}
	for i := range d.sums {
		for j := range d.got[i] {
			switch rest[j] {
			case 0:
			case 1:
				d.got[i][j] = true
			default:
				return nil, fmt.Errorf("restore decryption: bad share flag %d", rest[j])
			}
		}
		rest = rest[len(req.Committee):]
		c := d.sums[i].Coeffs[0]
		core.Unpack(rest[:polyBytes], c, p.Bits)
		rest = rest[polyBytes:]
		if slices.ContainsFunc(c, func(v uint64) bool { return v >= p.Q }) {
			return nil, fmt.Errorf("restore decryption: share sum %d is not reduced modulo q", i)
		}
	}
	return d, nil
}
