package he

import (
	"fmt"
	"sort"

	"github.com/concord-fl/concord/privacy/he/internal/core"
)

// Default is the name of the parameter set used when a job names none.
const Default = "n12-q60"

// ParamSet describes a validated parameter set. It is plain data: pass its Name in the
// job spec and look it up on every side.
type ParamSet struct {
	Name string
	// LogN is log2 of the ring degree; the ring degree is ValuesPerCiphertext.
	LogN int
	// LogQ is the bit size of the single ciphertext modulus.
	LogQ int
	// LogScale is log2 of the fixed-point scale of the values.
	LogScale int
	// SecurityBits is the security level by the HE standard's bounds for ternary secrets.
	SecurityBits int
	// ValuesPerCiphertext is how many values one ciphertext carries.
	ValuesPerCiphertext int
	// SmudgingSigma is the standard deviation of the flooding noise of a decryption share.
	SmudgingSigma float64
	// MaxSites is the largest federation the bounds below are documented for.
	MaxSites int
	// Precision is the worst-case absolute error of each decrypted sum at MaxSites sites
	// with threshold MaxSites; ErrorBound gives it for a given federation.
	Precision float64
	// CiphertextBytes is the size of one uploaded ciphertext (and of one decryption share).
	CiphertextBytes int
}

// ParamSets lists the supported parameter sets, the default first.
func ParamSets() []ParamSet {
	out := make([]ParamSet, 0, len(core.Specs))
	for _, s := range core.Specs {
		ps, err := Lookup(s.Name)
		if err == nil {
			out = append(out, ps)
		}
	}
	return out
}

// Lookup returns the parameter set with the given name ("" means Default).
func Lookup(name string) (ParamSet, error) {
	if name == "" {
		name = Default
	}
	p, err := core.Lookup(name)
	if err != nil {
		names := make([]string, 0, len(core.Specs))
		for _, s := range core.Specs {
			names = append(names, s.Name)
		}
		sort.Strings(names)
		return ParamSet{}, fmt.Errorf("he parameters: %w (known: %v)", err, names)
	}
	return ParamSet{
		Name:                p.Name,
		LogN:                p.LogN,
		LogQ:                p.LogQ,
		LogScale:            p.LogScale,
		SecurityBits:        128,
		ValuesPerCiphertext: p.N(),
		SmudgingSigma:       p.SmudgingSigma,
		MaxSites:            p.MaxSites,
		Precision:           p.ErrorBound(p.MaxSites, p.MaxSites),
		CiphertextBytes:     p.WireBytes(),
	}, nil
}

func (ps ParamSet) core() (*core.Params, error) {
	p, err := core.Lookup(ps.Name)
	if err != nil {
		return nil, fmt.Errorf("he parameters: %w", err)
	}
	return p, nil
}

// CiphertextsFor returns how many ciphertexts carry numValues values and the weight.
func CiphertextsFor(ps ParamSet, numValues int) int {
	if ps.ValuesPerCiphertext <= 0 || numValues < 0 {
		return 0
	}
	return (numValues + 1 + ps.ValuesPerCiphertext - 1) / ps.ValuesPerCiphertext
}

// MaxAbsInput is the largest |weight*value|, and the largest weight, that one site may
// encrypt in a federation of sites sites: sites*MaxAbsInput*2^LogScale plus the noise
// stays below q/2. Callers clip to it; party.Encrypt refuses anything beyond it.
func (ps ParamSet) MaxAbsInput(sites int) float64 {
	p, err := ps.core()
	if err != nil {
		return 0
	}
	return p.MaxAbsInput(sites)
}

// ErrorBound is the worst-case absolute error of each decrypted sum (of weight*value and
// of the weights) for sites contributors and a committee of threshold parties. The error
// of a mean is ErrorBound divided by the total weight, so sample counts make better
// weights than fractions.
func (ps ParamSet) ErrorBound(sites, threshold int) float64 {
	p, err := ps.core()
	if err != nil {
		return 0
	}
	return p.ErrorBound(sites, threshold)
}

// BytesPerValue is the upload size per value of a site's update of numValues values,
// headers included.
func (ps ParamSet) BytesPerValue(numValues int) float64 {
	if numValues <= 0 {
		return 0
	}
	return float64(CiphertextsFor(ps, numValues)*ps.CiphertextBytes) / float64(numValues)
}
