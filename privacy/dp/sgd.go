package dp

import (
	"fmt"
	"math"
)

// SGD is the clipping and noise of record-level DP-SGD (Abadi et al. 2016)
// as a per-example gradient hook for learning.TrainConfig.PerExample.
//
// For each step, ClipAndNoise clips every example's gradient to L2 norm
// Clip, sums them and adds N(0, (NoiseMultiplier·Clip)²) to each
// coordinate. The trainer then divides the sum by the expected batch size
// SampleRate·N, not by the number of examples drawn (as Opacus does with
// Poisson sampling: dividing by the drawn count would make the sensitivity
// depend on the batch). Run with the trainer's SampleRate q for T steps, its
// privacy is that of Gaussian{NoiseMultiplier, q, T}; with shuffled
// fixed-size batches the accountant's figure does not apply (CheckSampling
// catches that).
//
// An SGD serves one training run at a time; its counters are not
// synchronised.
type SGD struct {
	Clip            float64 // C: the L2 bound on each example's gradient
	NoiseMultiplier float64 // σ: the noise std is σ·C per coordinate
	Source          Source  // the noise; NewSecureSource() in deployments

	Examples int // gradients clipped so far
	Clipped  int // of those, how many were longer than Clip
}

// Validate reports a configuration that would not give the privacy its
// parameters claim.
func (s *SGD) Validate() error {
	switch {
	case !(s.Clip > 0) || math.IsInf(s.Clip, 0):
		return fmt.Errorf("%w: clip norm %v: want a positive finite number", ErrInvalid, s.Clip)
	case !(s.NoiseMultiplier >= 0) || math.IsInf(s.NoiseMultiplier, 0):
		return fmt.Errorf("%w: noise multiplier %v: want a finite number >= 0", ErrInvalid, s.NoiseMultiplier)
	case s.NoiseMultiplier > 0 && s.Source == nil:
		return fmt.Errorf("%w: noise multiplier %v with no random source", ErrInvalid, s.NoiseMultiplier)
	}
	return nil
}

// ClipAndNoise implements learning.PerExampleHook: it clips each of grads in
// place and writes their sum plus noise to out (which the trainer zeroes).
// An empty grads (a Poisson batch that drew nobody) still gets its noise.
// It panics on a configuration Validate refuses, so that a misconfigured
// run never trains without its noise.
func (s *SGD) ClipAndNoise(grads [][]float32, out []float32) {
	if err := s.Validate(); err != nil {
		panic("dp.SGD: " + err.Error())
	}
	for _, g := range grads {
		if ClipL2(g, s.Clip) > s.Clip {
			s.Clipped++
		}
		s.Examples++
		for i, v := range g {
			out[i] += v
		}
	}
	if s.NoiseMultiplier > 0 {
		AddNoise(out, s.NoiseMultiplier*s.Clip, s.Source)
	}
}
