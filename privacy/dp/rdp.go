package dp

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// AccountantVersion names this accountant in ledger entries and reports.
// Change the number when a change to this file can change an epsilon.
const AccountantVersion = "concord-rdp/1"

// ErrInvalid is returned (wrapped) for a parameter outside its domain.
var ErrInvalid = errors.New("invalid privacy parameter")

// DefaultOrders returns the Rényi orders Spent, Plan and Ledger use: 1.1 to
// 10.9 in steps of 0.1, the integers 11 to 63, and 128, 256, 512. The first
// two ranges are Opacus' DEFAULT_ALPHAS, so the optimum is found at the
// order Opacus finds; the large orders, as in Google's dp_accounting, serve
// small epsilons. More orders can only lower epsilon (every order gives a
// valid bound; the minimum is taken). Changing them changes epsilons: it
// needs a new AccountantVersion.
func DefaultOrders() []float64 { return slices.Clone(defaultOrders) }

var defaultOrders = makeOrders()

func makeOrders() []float64 {
	var o []float64
	for x := 1; x < 100; x++ {
		o = append(o, 1+float64(x)/10)
	}
	for a := 11; a < 64; a++ {
		o = append(o, float64(a))
	}
	return append(o, 128, 256, 512)
}

// Gaussian is the Poisson-subsampled Gaussian mechanism run Steps times:
// each step includes every example independently with probability
// SampleRate, clips each included example's contribution to L2 norm C and
// adds N(0, (NoiseMultiplier·C)²) to the sum. SampleRate 1 is the plain
// Gaussian mechanism. Sensitivity is under add/remove-one neighbouring.
type Gaussian struct {
	NoiseMultiplier float64
	SampleRate      float64
	Steps           int
}

// Validate reports a parameter outside its domain.
func (m Gaussian) Validate() error {
	switch {
	case !(m.NoiseMultiplier >= 0) || math.IsInf(m.NoiseMultiplier, 0):
		return fmt.Errorf("%w: noise multiplier %v: want a finite number >= 0", ErrInvalid, m.NoiseMultiplier)
	case !(m.SampleRate >= 0 && m.SampleRate <= 1):
		return fmt.Errorf("%w: sample rate %v: want a number in [0, 1]", ErrInvalid, m.SampleRate)
	case m.Steps < 0:
		return fmt.Errorf("%w: steps %d: want >= 0", ErrInvalid, m.Steps)
	}
	return nil
}

func checkOrders(orders []float64) error {
	if len(orders) == 0 {
		return fmt.Errorf("%w: no Rényi orders", ErrInvalid)
	}
	for _, a := range orders {
		if !(a > 1) {
			return fmt.Errorf("%w: Rényi order %v: want > 1", ErrInvalid, a)
		}
	}
	return nil
}

// RDP returns the mechanism's Rényi DP ε(α) at each order: Steps times the
// one-step value (RDP composes by addition). Integer orders use the exact
// binomial expansion, fractional orders the convergent series of Mironov,
// Talwar and Zhang (2019, Section 3.3), both summed in log space as Google's
// dp_accounting does (_compute_log_a_int, _compute_log_a_frac). A noise
// multiplier of 0 gives +Inf at every order (even with rate 0, as
// dp_accounting does); rate 0 or 0 steps gives 0.
func RDP(m Gaussian, orders []float64) ([]float64, error) {
	return rdp(m, orders, false)
}

func rdp(m Gaussian, orders []float64, signed bool) ([]float64, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := checkOrders(orders); err != nil {
		return nil, err
	}
	out := make([]float64, len(orders))
	for i, a := range orders {
		var r float64
		switch {
		case m.SampleRate == 0 || m.Steps == 0:
			r = 0
		case m.NoiseMultiplier == 0:
			r = math.Inf(1)
		case m.SampleRate == 1:
			r = a / (2 * m.NoiseMultiplier * m.NoiseMultiplier)
		default:
			la, err := logA(m.SampleRate, m.NoiseMultiplier, a, signed)
			if err != nil {
				return nil, fmt.Errorf("rdp at order %v (q=%v, sigma=%v): %w", a, m.SampleRate, m.NoiseMultiplier, err)
			}
			r = max(0, la/(a-1)) // A_α >= 1; a rounding below 0 is noise
		}
		out[i] = r * float64(m.Steps)
	}
	return out, nil
}

// Compose adds RDP curves evaluated at the same orders: the RDP of running
// every mechanism (on the same data) is the sum per order.
func Compose(curves ...[]float64) ([]float64, error) {
	if len(curves) == 0 {
		return nil, nil
	}
	out := make([]float64, len(curves[0]))
	for _, c := range curves {
		if len(c) != len(out) {
			return nil, fmt.Errorf("%w: RDP curves of %d and %d orders", ErrInvalid, len(out), len(c))
		}
		for i, v := range c {
			out[i] += v
		}
	}
	return out, nil
}

// Epsilon converts an RDP curve to (ε, δ)-DP with the bound of Canonne,
// Kamath and Steinke (2020, Prop. 12), the one dp_accounting and Opacus use:
//
//	ε = min over α of  RDP(α) + log(1 − 1/α) − (log δ + log α)/(α − 1)
//
// It returns the minimum (never below 0) and the order that gives it. As in
// dp_accounting, an order whose RDP is so small that δ² + expm1(−RDP) > 0
// yields ε = 0 (the KL bound), and orders ≤ 1.01 are skipped as numerically
// unstable. An infinite curve gives +Inf and order 0.
func Epsilon(rdp, orders []float64, delta float64) (eps, order float64, err error) {
	if err := checkOrders(orders); err != nil {
		return 0, 0, err
	}
	if len(rdp) != len(orders) {
		return 0, 0, fmt.Errorf("%w: %d RDP values for %d orders", ErrInvalid, len(rdp), len(orders))
	}
	if err := checkDelta(delta); err != nil {
		return 0, 0, err
	}
	eps, order = math.Inf(1), 0
	for i, a := range orders {
		r := rdp[i]
		if !(r >= 0) {
			return 0, 0, fmt.Errorf("%w: RDP %v at order %v: want >= 0", ErrInvalid, r, a)
		}
		var e float64
		switch {
		case delta*delta+math.Expm1(-r) > 0:
			e = 0
		case a > 1.01:
			e = r + math.Log1p(-1/a) - math.Log(delta*a)/(a-1)
		default:
			e = math.Inf(1)
		}
		if e < eps {
			eps, order = e, a
		}
	}
	return max(0, eps), order, nil
}

func checkDelta(delta float64) error {
	if !(delta > 0 && delta < 1) {
		return fmt.Errorf("%w: delta %v: want 0 < delta < 1 (typically below 1/number of records)", ErrInvalid, delta)
	}
	return nil
}

// Spent is the ε, at δ, of the Poisson-subsampled Gaussian mechanism with
// the given noise multiplier and sample rate run for steps steps, over
// DefaultOrders.
func Spent(noise, rate float64, steps int, delta float64) (float64, error) {
	return spentAt(Gaussian{NoiseMultiplier: noise, SampleRate: rate, Steps: steps}, delta)
}

func spentAt(m Gaussian, delta float64) (float64, error) {
	if err := checkDelta(delta); err != nil {
		return 0, err
	}
	r, err := RDP(m, defaultOrders)
	if err != nil {
		return 0, err
	}
	eps, _, err := Epsilon(r, defaultOrders, delta)
	return eps, err
}

// PlanPrecision is Plan's relative precision on the noise multiplier.
const PlanPrecision = 1e-6

// maxNoise bounds Plan's search: a target that needs more noise than this
// is refused rather than searched for ever.
const maxNoise = 1e6

// Plan returns the smallest noise multiplier σ (to within a relative
// PlanPrecision, rounded up) for which Spent(σ, rate, steps, delta) <=
// targetEps, found by bisection; ε falls as σ grows. The returned σ always
// meets the target: Spent(Plan(...)) <= targetEps.
func Plan(targetEps, delta, rate float64, steps int) (float64, error) {
	switch {
	case !(targetEps > 0) || math.IsInf(targetEps, 0):
		return 0, fmt.Errorf("%w: target epsilon %v: want a finite number > 0", ErrInvalid, targetEps)
	case !(rate > 0 && rate <= 1):
		return 0, fmt.Errorf("%w: sample rate %v: want 0 < rate <= 1", ErrInvalid, rate)
	case steps < 1:
		return 0, fmt.Errorf("%w: steps %d: want >= 1", ErrInvalid, steps)
	}
	if err := checkDelta(delta); err != nil {
		return 0, err
	}
	eps := func(s float64) (float64, error) {
		return Spent(s, rate, steps, delta)
	}
	lo, hi := 0.0, 1.0
	for {
		e, err := eps(hi)
		if err != nil {
			return 0, err
		}
		if e <= targetEps {
			break
		}
		lo, hi = hi, 2*hi
		if hi > maxNoise {
			return 0, fmt.Errorf("%w: epsilon %v at delta %v over %d steps at rate %v needs a noise multiplier above %v: raise the budget, lower the rate or the steps",
				ErrInvalid, targetEps, delta, steps, rate, maxNoise)
		}
	}
	for i := 0; i < 200 && hi-lo > PlanPrecision*hi; i++ {
		mid := lo + (hi-lo)/2
		e, err := eps(mid)
		if err != nil {
			return 0, err
		}
		if e <= targetEps {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}

// logA is log A_α for the subsampled Gaussian with 0 < q < 1.
func logA(q, sigma, alpha float64, signed bool) (float64, error) {
	if alpha == math.Trunc(alpha) && alpha < 1<<20 {
		return logAInt(q, sigma, int(alpha)), nil
	}
	return logAFrac(q, sigma, alpha, signed)
}

// logAInt: A_α = Σ_i C(α,i) q^i (1−q)^(α−i) exp((i²−i)/(2σ²)).
func logAInt(q, sigma float64, alpha int) float64 {
	la := math.Inf(-1)
	lq, l1q := math.Log(q), math.Log1p(-q)
	for i := 0; i <= alpha; i++ {
		fi := float64(i)
		c := logComb(alpha, i) + fi*lq + float64(alpha-i)*l1q
		la = logAdd(la, c+(fi*fi-fi)/(2*sigma*sigma))
	}
	return la
}

// logAFrac is the series of Mironov, Talwar and Zhang for fractional α as
// dp_accounting computes it today: every term is added with the absolute
// value of its generalised binomial coefficient, which bounds the
// alternating series from above (a conservative ε), and the sum stops once
// both terms decrease and fall 30 nats below the total. A series that has
// not converged after maxFracTerms terms gives +Inf, which Epsilon then
// never picks.
//
// With signed, the terms keep their signs and the sum stops when both fall
// below e^-30, as Opacus and the older TF Privacy accountant do: the exact
// value of the series, slightly smaller. Only the tests use it, to show
// that the rest of the computation reproduces Opacus' figures.
func logAFrac(q, sigma, alpha float64, signed bool) (float64, error) {
	la0, la1 := math.Inf(-1), math.Inf(-1)
	last0, last1 := math.Inf(-1), math.Inf(-1)
	z0 := sigma*sigma*math.Log(1/q-1) + 0.5
	lq, l1q := math.Log(q), math.Log1p(-q)
	logCoef, positive := 0.0, true // log|C(α, i)| and its sign, by recurrence
	for i := 0; i < maxFracTerms; i++ {
		if i > 0 {
			f := (alpha - float64(i-1)) / float64(i)
			logCoef += math.Log(math.Abs(f))
			if f < 0 {
				positive = !positive
			}
		}
		fi := float64(i)
		j := alpha - fi
		lt0 := logCoef + fi*lq + j*l1q
		lt1 := logCoef + j*lq + fi*l1q
		le0 := math.Log(0.5) + logErfc((fi-z0)/(math.Sqrt2*sigma))
		le1 := math.Log(0.5) + logErfc((z0-j)/(math.Sqrt2*sigma))
		ls0 := lt0 + (fi*fi-fi)/(2*sigma*sigma) + le0
		ls1 := lt1 + (j*j-j)/(2*sigma*sigma) + le1
		if !signed {
			la0, la1 = logAdd(la0, ls0), logAdd(la1, ls1)
			total := logAdd(la0, la1)
			if ls0 < last0 && ls1 < last1 && max(ls0, ls1) < total-30 {
				return total, nil
			}
			last0, last1 = ls0, ls1
			continue
		}
		if positive {
			la0, la1 = logAdd(la0, ls0), logAdd(la1, ls1)
		} else {
			var err0, err1 error
			la0, err0 = logSub(la0, ls0)
			la1, err1 = logSub(la1, ls1)
			if err := errors.Join(err0, err1); err != nil {
				return 0, err
			}
		}
		if max(ls0, ls1) < -30 {
			return logAdd(la0, la1), nil
		}
	}
	return math.Inf(1), nil
}

// logSub is log(e^x − e^y) for x >= y.
func logSub(x, y float64) (float64, error) {
	switch {
	case x < y:
		return 0, errors.New("negative partial sum in the fractional-order series")
	case math.IsInf(y, -1):
		return x, nil
	case x == y:
		return math.Inf(-1), nil
	}
	d := math.Expm1(x - y)
	if math.IsInf(d, 1) {
		return x, nil
	}
	return math.Log(d) + y, nil
}

// maxFracTerms bounds the fractional-order series, as dp_accounting does.
const maxFracTerms = 1000

func logComb(n, k int) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}

// logAdd is log(e^x + e^y).
func logAdd(x, y float64) float64 {
	a, b := min(x, y), max(x, y)
	if math.IsInf(a, -1) {
		return b
	}
	return math.Log1p(math.Exp(a-b)) + b
}

// logErfc is log(erfc(x)), accurate where erfc(x) underflows: beyond x = 20
// it uses the asymptotic series erfc(x) = e^{−x²}/(x√π)·(1 − 1/(2x²) +
// 3/(4x⁴) − 15/(8x⁶) + 105/(16x⁸)), whose next term is below 1e-14 there.
func logErfc(x float64) float64 {
	if x < 20 {
		return math.Log(math.Erfc(x))
	}
	u := 1 / (2 * x * x)
	s := 1 - u + 3*u*u - 15*u*u*u + 105*u*u*u*u
	return -x*x - math.Log(x) - 0.5*math.Log(math.Pi) + math.Log(s)
}
