package dp

import (
	cryptorand "crypto/rand"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Source is the randomness of noise and sampling. *math/rand/v2.Rand
// satisfies it. Tests pass a seeded generator to be reproducible; a
// deployment passes NewSecureSource(), because noise or a batch that an
// observer can predict protects nobody.
type Source interface {
	NormFloat64() float64 // a standard normal draw
	Float64() float64     // a uniform draw in [0, 1)
}

// NewSecureSource returns a ChaCha8 generator seeded with 32 bytes from
// crypto/rand. It is not safe for concurrent use.
func NewSecureSource() *rand.Rand {
	var seed [32]byte
	cryptorand.Read(seed[:]) // never fails (crypto/rand panics rather than return short)
	return rand.New(rand.NewChaCha8(seed))
}

// ClipL2 scales v in place to L2 norm at most bound and returns its norm
// before clipping. A vector whose norm is NaN or infinite is zeroed: it
// contributes nothing rather than poison the sum. bound must be positive
// and finite (ClipL2 panics otherwise: a bad bound is a programming error,
// which SGD.Validate catches up front).
func ClipL2(v []float32, bound float64) (normBefore float64) {
	if !(bound > 0) || math.IsInf(bound, 0) {
		panic(fmt.Sprintf("dp.ClipL2: bound %v, want a positive finite number", bound))
	}
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	norm := math.Sqrt(s)
	switch {
	case math.IsNaN(norm) || math.IsInf(norm, 0):
		clear(v)
	case norm > bound:
		f := float32(bound / norm)
		for i := range v {
			v[i] *= f
		}
	}
	return norm
}

// AddNoise adds an independent N(0, std²) draw from src to every element
// of v.
func AddNoise(v []float32, std float64, src Source) {
	for i := range v {
		v[i] += float32(std * src.NormFloat64())
	}
}

// PoissonBatch returns, in increasing order, the indices of the examples
// 0..n−1 drawn for one step: each independently with probability rate, so
// the batch size varies and may be 0. This is the sampling that
// Gaussian.SampleRate assumes; a shuffled fixed-size batch is not.
func PoissonBatch(n int, rate float64, src Source) []int {
	var out []int
	for i := 0; i < n; i++ {
		if src.Float64() < rate {
			out = append(out, i)
		}
	}
	return out
}

// ErrSampling is returned (wrapped) by CheckSampling when the examples
// actually drawn do not fit the declared sample rate.
var ErrSampling = errors.New("sampling does not match the declared sample rate")

// CheckSampling checks that selected, the total number of examples drawn
// over steps Poisson draws from n examples, is consistent with rate: the
// count is Binomial(n·steps, rate), and a deviation from rate·n·steps of
// more than 6 standard deviations + 1 (a chance below 2e-9 for a genuine
// Poisson sampler) returns an error wrapping ErrSampling. It catches a
// trainer that declares one rate and samples at another, or that uses
// fixed-size batches of another size, which would make the accountant's
// epsilon wrong.
func CheckSampling(selected, n, steps int, rate float64) error {
	switch {
	case n < 0 || steps < 0 || selected < 0:
		return fmt.Errorf("%w: %d selected, %d examples, %d steps: want non-negative counts", ErrInvalid, selected, n, steps)
	case !(rate >= 0 && rate <= 1):
		return fmt.Errorf("%w: sample rate %v: want a number in [0, 1]", ErrInvalid, rate)
	}
	trials := float64(n) * float64(steps)
	want := rate * trials
	tol := 6*math.Sqrt(trials*rate*(1-rate)) + 1
	if d := math.Abs(float64(selected) - want); d > tol {
		return fmt.Errorf("%w: %d examples drawn over %d steps from %d, expected %.1f ± %.1f at rate %v (the real rate is %.4g)",
			ErrSampling, selected, steps, n, want, tol, rate, float64(selected)/max(trials, 1))
	}
	return nil
}
