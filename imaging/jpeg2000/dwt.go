package jpeg2000

// Inverse discrete wavelet transforms (Annex F). A tile-component's coefficients sit
// in one array with the bands of each level side by side (LL, HL / LH, HH); each level
// of synthesis turns the top-left region of one resolution into the next.

// Lifting constants of the 9/7 filter (Table F.4), rounded to float32 as OpenJPEG
// rounds them. The high-pass scale is OpenJPEG's 1.625732422 (close to 2/K, the
// factor 2 standing for the sub-band gain left out of the step sizes, see makeBand):
// with the same constants and the same float32 operations in the same order, the
// result equals the decoder behind opj_decompress, Pillow and pydicom, not merely
// comes within a step of it.
const (
	alpha97   float32 = -1.586134342
	beta97    float32 = -0.052980118
	gamma97   float32 = 0.882911075
	delta97   float32 = 0.443506852
	k97       float32 = 1.230174105
	twoInvK97 float32 = 1.625732422
)

const dwtPad = 4

// reflect maps j into [0, n) by whole-sample symmetric extension.
func reflect(j, n int) int {
	if n == 1 {
		return 0
	}
	p := 2 * (n - 1)
	j %= p
	if j < 0 {
		j += p
	}
	if j >= n {
		j = p - j
	}
	return j
}

// level walks resolutions 1..top, calling row and column for every line of each.
func forLevels(tc *tileComp, top int, fn func(rw, rh, sn, snv, casx, casy int)) {
	for r := 1; r <= top; r++ {
		res, prev := &tc.res[r], &tc.res[r-1]
		fn(res.x1-res.x0, res.y1-res.y0, prev.x1-prev.x0, prev.y1-prev.y0, res.x0&1, res.y0&1)
	}
}

// idwt53 synthesises levels 1..top of a reversible tile-component in place.
func idwt53(a []int32, stride int, tc *tileComp, top int) {
	var buf, line []int32
	forLevels(tc, top, func(rw, rh, sn, snv, casx, casy int) {
		if n := max(rw, rh) + 2*dwtPad; cap(buf) < n {
			buf = make([]int32, n)
			line = make([]int32, max(rw, rh))
		}
		if rw > 0 {
			for y := 0; y < rh; y++ {
				row := a[y*stride : y*stride+rw]
				lift53(row, sn, casx, buf)
			}
		}
		if rh > 0 {
			col := line[:rh]
			for x := 0; x < rw; x++ {
				for y := range col {
					col[y] = a[y*stride+x]
				}
				lift53(col, snv, casy, buf)
				for y, v := range col {
					a[y*stride+x] = v
				}
			}
		}
	})
}

// lift53 turns x (sn low-pass then high-pass coefficients) into samples, where cas is
// the parity of the first sample's absolute index.
func lift53(x []int32, sn, cas int, buf []int32) {
	n := len(x)
	if n == 1 {
		if cas == 1 {
			x[0] /= 2
		}
		return
	}
	e := buf[:n+2*dwtPad]
	for j := 0; j < n; j++ {
		if (j+cas)&1 == 0 {
			e[dwtPad+j] = x[j/2]
		} else {
			e[dwtPad+j] = x[sn+j/2]
		}
	}
	for j := -2; j < 0; j++ {
		e[dwtPad+j] = e[dwtPad+reflect(j, n)]
		e[dwtPad+n-1-j] = e[dwtPad+reflect(n-1-j, n)]
	}
	start := -1
	if (start+cas)&1 != 0 {
		start++
	}
	for j := start; j <= n; j += 2 {
		k := dwtPad + j
		e[k] -= (e[k-1] + e[k+1] + 2) >> 2
	}
	start = 0
	if (start+cas)&1 == 0 {
		start++
	}
	for j := start; j < n; j += 2 {
		k := dwtPad + j
		e[k] += (e[k-1] + e[k+1]) >> 1
	}
	copy(x, e[dwtPad:dwtPad+n])
}

// idwt97 synthesises levels 1..top of an irreversible tile-component in place.
func idwt97(a []float32, stride int, tc *tileComp, top int) {
	var buf, line []float32
	forLevels(tc, top, func(rw, rh, sn, snv, casx, casy int) {
		if n := max(rw, rh) + 2*dwtPad; cap(buf) < n {
			buf = make([]float32, n)
			line = make([]float32, max(rw, rh))
		}
		if rw > 0 {
			for y := 0; y < rh; y++ {
				lift97(a[y*stride:y*stride+rw], sn, casx, buf)
			}
		}
		if rh > 0 {
			col := line[:rh]
			for x := 0; x < rw; x++ {
				for y := range col {
					col[y] = a[y*stride+x]
				}
				lift97(col, snv, casy, buf)
				for y, v := range col {
					a[y*stride+x] = v
				}
			}
		}
	})
}

func lift97(x []float32, sn, cas int, buf []float32) {
	n := len(x)
	if n == 1 {
		return // a lone sample, low- or high-pass, is its own synthesis
	}
	e := buf[:n+2*dwtPad]
	for j := 0; j < n; j++ {
		if (j+cas)&1 == 0 {
			e[dwtPad+j] = x[j/2] * k97
		} else {
			e[dwtPad+j] = x[sn+j/2] * twoInvK97
		}
	}
	for j := -dwtPad; j < 0; j++ {
		e[dwtPad+j] = e[dwtPad+reflect(j, n)]
		e[dwtPad+n-1-j] = e[dwtPad+reflect(n-1-j, n)]
	}
	step := func(from, to, parity int, c float32) {
		if (from+cas)&1 != parity {
			from++
		}
		for j := from; j < to; j += 2 {
			k := dwtPad + j
			// The conversion keeps the product rounded on its own (no fused multiply-add).
			e[k] += float32((e[k-1] + e[k+1]) * -c)
		}
	}
	step(-3, n+3, 0, delta97)
	step(-2, n+2, 1, gamma97)
	step(-1, n+1, 0, beta97)
	step(0, n, 1, alpha97)
	copy(x, e[dwtPad:dwtPad+n])
}
