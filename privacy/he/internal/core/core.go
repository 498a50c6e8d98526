// Package core holds the lattigo plumbing shared by the coordinator side (package he)
// and the site side (package party): the parameter sets, the framing of polynomials on
// the wire, the common reference polynomials and the fixed-point encoding of values.
//
// It holds no secret material and no secret-key type appears in its API, so the
// coordinator may reach it. Callers must not share a sampler or a PRNG between
// goroutines; ring operations on distinct polynomials are safe to run concurrently.
package core

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/tuneinsight/lattigo/v5/utils/sampling"
)

// Spec is the plain description of a parameter set.
type Spec struct {
	Name          string
	LogN          int
	LogQ          int
	LogScale      int
	SmudgingSigma float64
	MaxSites      int
}

// Specs lists the supported parameter sets; the first is the default.
//
// n12-q60: ring degree 2^12 and one 60-bit prime. logQ = 60 is below the 109 bits the
// HE standard (Albrecht et al. 2018, table for ternary secrets) allows for 128-bit
// security at N = 2^12. Values are fixed point with scale 2^40; decryption shares are
// flooded with a Gaussian of sigma 2^20.
var Specs = []Spec{
	{Name: "n12-q60", LogN: 12, LogQ: 60, LogScale: 40, SmudgingSigma: 1 << 20, MaxSites: 256},
}

// MaxLogQ128 is the largest logQ with 128-bit security per ring degree, from the HE
// standard's table for ternary secrets (classical attacks).
var MaxLogQ128 = map[int]int{10: 27, 11: 54, 12: 109, 13: 218, 14: 438, 15: 881}

// Params is a validated, ready-to-use parameter set.
type Params struct {
	Spec
	RLWE  rlwe.Parameters
	Ring  *ring.Ring
	Q     uint64
	Scale float64
	ID    [4]byte
	Bits  uint // bits per packed coefficient
}

var (
	cacheMu sync.Mutex
	cache   = map[string]*Params{}
)

// ErrUnknownParams is returned for a parameter-set name that is not in Specs.
var ErrUnknownParams = errors.New("unknown parameter set")

// Lookup returns the ready parameter set with the given name.
func Lookup(name string) (*Params, error) {
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if p, ok := cache[name]; ok {
		return p, nil
	}
	for _, s := range Specs {
		if s.Name == name {
			p, err := build(s)
			if err != nil {
				return nil, err
			}
			cache[name] = p
			return p, nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownParams, name)
}

func build(s Spec) (p *Params, err error) {
	defer Recover(&err, "build parameters "+s.Name)
	if max, ok := MaxLogQ128[s.LogN]; !ok || s.LogQ > max || s.LogQ > 61 {
		return nil, fmt.Errorf("parameter set %q: logQ %d exceeds the 128-bit bound for logN %d", s.Name, s.LogQ, s.LogN)
	}
	rp, err := rlwe.NewParametersFromLiteral(rlwe.ParametersLiteral{
		LogN:    s.LogN,
		LogQ:    []int{s.LogQ},
		NTTFlag: true,
	})
	if err != nil {
		return nil, fmt.Errorf("parameter set %q: %w", s.Name, err)
	}
	q := rp.Q()[0]
	sum := sha256.Sum256([]byte("concord-he-params/" + s.Name))
	p = &Params{
		Spec:  s,
		RLWE:  rp,
		Ring:  rp.RingQ(),
		Q:     q,
		Scale: math.Ldexp(1, s.LogScale),
		Bits:  uint(bits.Len64(q - 1)),
	}
	copy(p.ID[:], sum[:4])
	return p, nil
}

// Recover turns a lattigo panic into an error stored in *err.
func Recover(err *error, what string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: lattigo panicked: %v", what, r)
	}
}

// N is the ring degree: values per ciphertext.
func (p *Params) N() int { return p.RLWE.N() }

// Count returns how many ciphertexts hold numValues values plus the weight.
func (p *Params) Count(numValues int) int {
	return (numValues + 1 + p.N() - 1) / p.N()
}

// NoiseBound is a worst-case bound, in integer units of the plaintext, on the noise of a
// decrypted sum over sites contributions and threshold decryption shares: every
// Gaussian is cut at 6 sigma by lattigo, and each rounding adds at most 1/2.
func (p *Params) NoiseBound(sites, threshold int) float64 {
	// lattigo rejects Gaussian samples above the bound, then rounds (+1/2).
	enc := rlwe.DefaultNoiseBound + 0.5 + 0.5
	return float64(sites)*enc + float64(threshold)*(6*p.SmudgingSigma+0.5)
}

// MaxAbsInput is the largest |weight*value| (and weight) one of sites contributions may
// carry so that the sum stays inside the modulus with room for the noise.
func (p *Params) MaxAbsInput(sites int) float64 {
	if sites < 1 {
		sites = 1
	}
	half := float64(p.Q/2) - p.NoiseBound(sites, sites)
	return math.Floor(half / (p.Scale * float64(sites)))
}

// ErrorBound is the worst-case absolute error of each decrypted sum.
func (p *Params) ErrorBound(sites, threshold int) float64 {
	return p.NoiseBound(sites, threshold) / p.Scale
}

// WireBytes is the size of one framed polynomial.
func (p *Params) WireBytes() int {
	return HeaderSize + (p.N()*int(p.Bits)+7)/8
}

// JobTag binds wire objects to a job: a digest of the job id and its public seed.
func JobTag(jobID string, crsSeed []byte) [8]byte {
	h := sha256.New()
	h.Write([]byte("concord-he-job\x00"))
	h.Write([]byte(jobID))
	h.Write([]byte{0})
	h.Write(crsSeed)
	var t [8]byte
	copy(t[:], h.Sum(nil))
	return t
}

// CRP writes into out (NTT domain) the common reference polynomial of ciphertext index
// of round: every party derives the same one from the job's public seed, so it never
// travels. A fresh polynomial per (round, index) is what keeps a site's key safe when it
// encrypts many vectors.
func (p *Params) CRP(crsSeed []byte, round uint64, index int, out ring.Poly) error {
	key := sha256.New()
	key.Write([]byte("concord-he-crp\x00"))
	key.Write(crsSeed)
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], round)
	binary.LittleEndian.PutUint32(b[8:], uint32(index))
	key.Write(b[:])
	prng, err := sampling.NewKeyedPRNG(key.Sum(nil))
	if err != nil {
		return fmt.Errorf("crp prng: %w", err)
	}
	ring.NewUniformSampler(prng, p.Ring).Read(out)
	return nil
}

// EncodeValues writes round(v*scale) mod q into the coefficients of out (coefficient
// domain); the remaining coefficients are zero. Callers have checked the bounds.
func (p *Params) EncodeValues(vals []float64, out ring.Poly) {
	c := out.Coeffs[0]
	q := p.Q
	for i := range c {
		if i >= len(vals) {
			c[i] = 0
			continue
		}
		x := math.Round(vals[i] * p.Scale)
		if x >= 0 {
			c[i] = uint64(x) % q
		} else {
			c[i] = q - uint64(-x)%q
			if c[i] == q {
				c[i] = 0
			}
		}
	}
}

// DecodeValues reads centred coefficients of in (coefficient domain) divided by the scale.
func (p *Params) DecodeValues(in ring.Poly, out []float64) {
	c := in.Coeffs[0]
	q := p.Q
	half := q / 2
	for i := range out {
		v := c[i]
		if v > half {
			out[i] = -float64(q-v) / p.Scale
		} else {
			out[i] = float64(v) / p.Scale
		}
	}
}
