package plot

import (
	"math"
	"strconv"
)

// niceStep returns 1, 2, 2.5 or 5 times a power of ten, the smallest such
// step that cuts span into at most n intervals.
func niceStep(span float64, n int) float64 {
	if !(span > 0) || n < 1 {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*mag >= raw*(1-1e-9) {
			return m * mag
		}
	}
	return 10 * mag
}

// ticks lists the multiples of step within [lo, hi].
func ticks(lo, hi, step float64) []float64 {
	var out []float64
	k0 := math.Ceil(lo/step - 1e-9)
	for k := k0; ; k++ {
		v := k * step
		if v > hi+step*1e-9 || len(out) > 1000 {
			break
		}
		if math.Abs(v) < step*1e-9 {
			v = 0 // not -0
		}
		out = append(out, v)
	}
	return out
}

// decimals is how many digits after the point show every multiple of step
// exactly.
func decimals(step float64) int {
	for d := 0; d < 12; d++ {
		s := step * math.Pow(10, float64(d))
		if math.Abs(s-math.Round(s)) < 1e-6*s {
			return d
		}
	}
	return 12
}

func formatTick(v, step float64) string {
	if math.Abs(v) >= 1e7 || (step < 1e-4 && v != 0) {
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	return strconv.FormatFloat(v, 'f', decimals(step), 64)
}

// formatValue prints a bar's value with two or three significant digits.
func formatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e7:
		return strconv.FormatFloat(v, 'g', 3, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 0.01 || a == 0:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 2, 64)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// yAxis settles the value range and its ticks. fixedLo/fixedHi are the
// caller's bounds (nil: automatic); automatic ends are rounded out to a tick.
func yAxis(dataLo, dataHi float64, fixedLo, fixedHi *float64, n int) (lo, hi, step float64) {
	lo, hi = dataLo, dataHi
	if fixedLo != nil {
		lo = *fixedLo
	}
	if fixedHi != nil {
		hi = *fixedHi
	}
	if hi <= lo {
		// One value, or caller bounds that leave the data outside.
		pad := math.Max(math.Abs(lo)*0.1, 1)
		if fixedLo == nil {
			lo -= pad
		}
		if fixedHi == nil || hi <= lo {
			hi = lo + 2*pad
		}
	}
	step = niceStep(hi-lo, n)
	if fixedLo == nil {
		lo = math.Floor(lo/step+1e-9) * step
	}
	if fixedHi == nil {
		hi = math.Ceil(hi/step-1e-9) * step
	}
	return lo, hi, step
}
