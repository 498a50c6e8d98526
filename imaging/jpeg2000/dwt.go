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

// colBlock is how many neighbouring columns the vertical pass lifts together: it
// reads and writes whole row segments, not one sample per row, and the inner loops
// run across the columns.
const colBlock = 8

// parallelArea is the level size from which rows and column blocks are shared
// among workers; below it a goroutine costs more than it saves.
const parallelArea = 1 << 15

// idwt53 synthesises levels 1..top of a reversible tile-component in place, the
// rows and column blocks of a large level on up to workers goroutines (each
// writes its own rows or columns: the result does not depend on workers).
func idwt53(a []int32, stride int, tc *tileComp, top, workers int) {
	forLevels(tc, top, func(rw, rh, sn, snv, casx, casy int) {
		wk := workers
		if rw*rh < parallelArea {
			wk = 1
		}
		bufs := make([][]int32, wk)
		scratch := func(w, n int) []int32 {
			if cap(bufs[w]) < n {
				bufs[w] = make([]int32, n)
			}
			return bufs[w][:n]
		}
		if rw > 0 {
			_ = forEach(rh, wk, func(w, y int) error {
				lift53(a[y*stride:y*stride+rw], sn, casx, scratch(w, rw+2*dwtPad))
				return nil
			})
		}
		if rh > 0 {
			_ = forEach((rw+colBlock-1)/colBlock, wk, func(w, b int) error {
				lift53Cols(a, stride, b*colBlock, min(colBlock, rw-b*colBlock), rh, snv, casy, scratch(w, (rh+2*dwtPad)*colBlock))
				return nil
			})
		}
	})
}

// lift53Cols is lift53 on columns x0..x0+bw-1 (bw <= colBlock) of n rows.
func lift53Cols(a []int32, stride, x0, bw, n, sn, cas int, e []int32) {
	const B = colBlock
	if n == 1 {
		if cas == 1 {
			for x := x0; x < x0+bw; x++ {
				a[x] /= 2
			}
		}
		return
	}
	for j := 0; j < n; j++ {
		src := j / 2
		if (j+cas)&1 != 0 {
			src = sn + j/2
		}
		copy(e[(dwtPad+j)*B:(dwtPad+j)*B+bw], a[src*stride+x0:src*stride+x0+bw])
	}
	for j := -2; j < 0; j++ {
		copy(e[(dwtPad+j)*B:(dwtPad+j+1)*B], e[(dwtPad+reflect(j, n))*B:])
		copy(e[(dwtPad+n-1-j)*B:(dwtPad+n-j)*B], e[(dwtPad+reflect(n-1-j, n))*B:])
	}
	start := -1
	if (start+cas)&1 != 0 {
		start++
	}
	for j := start; j <= n; j += 2 {
		k := (dwtPad + j) * B
		m, p, c := e[k-B:k], e[k+B:k+2*B], e[k:k+B]
		for q := range c {
			c[q] -= (m[q] + p[q] + 2) >> 2
		}
	}
	start = 0
	if (start+cas)&1 == 0 {
		start++
	}
	for j := start; j < n; j += 2 {
		k := (dwtPad + j) * B
		m, p, c := e[k-B:k], e[k+B:k+2*B], e[k:k+B]
		for q := range c {
			c[q] += (m[q] + p[q]) >> 1
		}
	}
	for j := 0; j < n; j++ {
		copy(a[j*stride+x0:j*stride+x0+bw], e[(dwtPad+j)*B:])
	}
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

// idwt97 synthesises levels 1..top of an irreversible tile-component in place,
// shared among workers as idwt53.
func idwt97(a []float32, stride int, tc *tileComp, top, workers int) {
	forLevels(tc, top, func(rw, rh, sn, snv, casx, casy int) {
		wk := workers
		if rw*rh < parallelArea {
			wk = 1
		}
		bufs := make([][]float32, wk)
		scratch := func(w, n int) []float32 {
			if cap(bufs[w]) < n {
				bufs[w] = make([]float32, n)
			}
			return bufs[w][:n]
		}
		if rw > 0 {
			_ = forEach(rh, wk, func(w, y int) error {
				lift97(a[y*stride:y*stride+rw], sn, casx, scratch(w, rw+2*dwtPad))
				return nil
			})
		}
		if rh > 0 {
			_ = forEach((rw+colBlock-1)/colBlock, wk, func(w, b int) error {
				lift97Cols(a, stride, b*colBlock, min(colBlock, rw-b*colBlock), rh, snv, casy, scratch(w, (rh+2*dwtPad)*colBlock))
				return nil
			})
		}
	})
}

// lift97Cols is lift97 on columns x0..x0+bw-1 (bw <= colBlock) of n rows, with the
// same float32 operations in the same order.
func lift97Cols(a []float32, stride, x0, bw, n, sn, cas int, e []float32) {
	const B = colBlock
	if n == 1 {
		return
	}
	for j := 0; j < n; j++ {
		row := e[(dwtPad+j)*B : (dwtPad+j)*B+bw]
		if (j+cas)&1 == 0 {
			for q, v := range a[(j/2)*stride+x0 : (j/2)*stride+x0+bw] {
				row[q] = v * k97
			}
		} else {
			for q, v := range a[(sn+j/2)*stride+x0 : (sn+j/2)*stride+x0+bw] {
				row[q] = v * twoInvK97
			}
		}
	}
	for j := -dwtPad; j < 0; j++ {
		copy(e[(dwtPad+j)*B:(dwtPad+j+1)*B], e[(dwtPad+reflect(j, n))*B:])
		copy(e[(dwtPad+n-1-j)*B:(dwtPad+n-j)*B], e[(dwtPad+reflect(n-1-j, n))*B:])
	}
	step := func(from, to, parity int, c float32) {
		if (from+cas)&1 != parity {
			from++
		}
		for j := from; j < to; j += 2 {
			k := (dwtPad + j) * B
			m, p, r := e[k-B:k], e[k+B:k+2*B], e[k:k+B]
			for q := range r {
				// The conversion keeps the product rounded on its own (no fused multiply-add).
				r[q] += float32((m[q] + p[q]) * -c)
			}
		}
	}
	step(-3, n+3, 0, delta97)
	step(-2, n+2, 1, gamma97)
	step(-1, n+1, 0, beta97)
	step(0, n, 1, alpha97)
	for j := 0; j < n; j++ {
		copy(a[j*stride+x0:j*stride+x0+bw], e[(dwtPad+j)*B:])
	}
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
