package learning

import "fmt"

// matmulAcc adds A·B to C, where A is m×k read at a[i*ars+p*acs] (so a
// transposed A is just other strides), B is k×n row-major with row stride
// ldb, and C is m×n row-major with row stride ldc. pad is scratch of at
// least padLen(k) values.
//
// The SIMD kernels compute tiles of C of 8, 6 or 4 rows by sw columns
// (strips sw = 32 wide with AVX-512, which adds the 8-row tile; 16 with
// AVX2) from a k×sw panel of B. Where several row blocks share a strip, the
// strip is first packed into a contiguous panel, so the kernels stream it
// from cache instead of touching k pages of a wide B; a ragged right-hand
// strip is packed zero-padded, and rows left over by rowBlock go through a
// zero-padded 4-row block. A kernel sums its products in order of k and
// then adds the sum to C; where B is packed, a long k runs in blocks
// (kBlock), each added to C in turn. So every output is the same sum
// whichever kernel computes it, and the same as a sequence of GEMMs over
// those blocks of k.
func matmulAcc(m, n, k int, a []float32, ars, acs int, b []float32, ldb int, c []float32, ldc int, pad []float32) {
	if m == 0 || n == 0 || k == 0 {
		return
	}
	_ = b[(k-1)*ldb+n-1]
	gemm(m, n, k, a, ars, acs, bMat{b: b, ld: ldb}, c, ldc, pad)
}

// matmulAccT adds A·Bᵀ to C, with bt the n×k matrix Bᵀ, row-major with row
// stride ldbt: a convolution's weight gradient, dOut·colᵀ, reads the
// unfolded input as it lies.
func matmulAccT(m, n, k int, a []float32, ars, acs int, bt []float32, ldbt int, c []float32, ldc int, pad []float32) {
	if m == 0 || n == 0 || k == 0 {
		return
	}
	_ = bt[(n-1)*ldbt+k-1]
	gemm(m, n, k, a, ars, acs, bMat{b: bt, ld: ldbt, trans: true}, c, ldc, pad)
}

// matmulAccTOff is matmulAccT with column j of B (row j of Bᵀ) at
// bt[boff[j]:]: the weight gradient of a shifted-window convolution reads
// the padded input's windows in place.
func matmulAccTOff(m, n, k int, a []float32, ars, acs int, bt []float32, boff []int, c []float32, ldc int, pad []float32) {
	if m == 0 || n == 0 || k == 0 {
		return
	}
	checkOffsets(boff[:n], k, len(bt))
	gemm(m, n, k, a, ars, acs, bMat{b: bt, off: boff[:n], trans: true}, c, ldc, pad)
}

// checkOffsets panics unless every row [o, o+n) lies inside l values.
func checkOffsets(off []int, n, l int) {
	for _, o := range off {
		if o < 0 || o+n > l {
			panic(fmt.Sprintf("learning: B row offset %d with %d columns outside %d values", o, n, l))
		}
	}
}

// matmulAccOff is matmulAcc with row p of B at b[boff[p]:] instead of at a
// fixed stride: a 3×3 convolution reads its nine shifted input windows in
// place from a padded image this way, with no unfolded copy (im2col).
func matmulAccOff(m, n, k int, a []float32, ars, acs int, b []float32, boff []int, c []float32, ldc int, pad []float32) {
	if m == 0 || n == 0 || k == 0 {
		return
	}
	checkOffsets(boff[:k], n, len(b))
	gemm(m, n, k, a, ars, acs, bMat{b: b, off: boff[:k]}, c, ldc, pad)
}

// bMat is how gemm reads B (k×n): row p at b[p·ld:], or at b[off[p]:]
// when off is set; when trans, b holds Bᵀ and column j of B is at b[j·ld:],
// or at b[off[j]:].
type bMat struct {
	b     []float32
	ld    int
	off   []int
	trans bool
}

// row is the index in b of row p of B, or of Bᵀ when trans.
func (bm bMat) row(p int) int {
	if bm.off != nil {
		return bm.off[p]
	}
	return p * bm.ld
}

// at is B[p][j].
func (bm bMat) at(p, j int) float32 {
	if bm.trans {
		return bm.b[bm.row(j)+p]
	}
	return bm.b[bm.row(p)+j]
}

// pack copies rows p0..p0+kb of columns j..j+w of B (w ≤ sw) into panel,
// kb×sw row-major, zero-padding columns w..sw.
func (bm bMat) pack(p0, kb, j, w, sw int, panel []float32) {
	switch {
	case bm.trans:
		if w < sw {
			clear(panel[:kb*sw])
		}
		// Eight columns at a time in 8×8 register transposes; the last
		// kb%8 rows and a ragged group of columns element by element.
		k8, jj := kb&^7, 0
		var off [8]int
		for ; jj+8 <= w && k8 > 0; jj += 8 {
			for r := range off {
				off[r] = bm.row(j+jj+r) + p0
			}
			packT8(k8/8, &bm.b[0], &off[0], &panel[jj], sw)
		}
		for c := 0; c < w; c++ {
			r := bm.row(j+c) + p0
			q0 := k8
			if c >= jj {
				q0 = 0
			}
			for p, v := range bm.b[r+q0 : r+kb] {
				panel[(q0+p)*sw+c] = v
			}
		}
	case w == sw && bm.off != nil:
		packStripO(kb, &bm.b[j], &bm.off[p0], &panel[0], sw)
	case w == sw:
		packStrip(kb, &bm.b[p0*bm.ld+j], bm.ld, &panel[0], sw)
	default:
		for p := 0; p < kb; p++ {
			row := panel[p*sw : p*sw+sw]
			at := bm.row(p0+p) + j
			copy(row, bm.b[at:at+w])
			clear(row[w:])
		}
	}
}

// gemm is matmulAcc, matmulAccT and matmulAccOff once B is bounds-checked.
func gemm(m, n, k int, a []float32, ars, acs int, bm bMat, c []float32, ldc int, pad []float32) {
	// Bounds checked once here so the kernels can use raw pointers.
	_ = a[(m-1)*ars+(k-1)*acs]
	_ = c[(m-1)*ldc+n-1]
	if !useKernel {
		for i := 0; i < m; i++ {
			crow := c[i*ldc : i*ldc+n]
			for p := 0; p < k; p++ {
				av := a[i*ars+p*acs]
				for j := range crow {
					crow[j] += av * bm.at(p, j)
				}
			}
		}
		return
	}
	sw := 16
	if useWide {
		sw = 32
	}
	// tile runs one r×sw kernel over kb values of k on B at b: strided
	// (ldb), or at the offsets of bm from row p0 when off.
	tile := func(r, kb, p0 int, a *float32, ars, acs int, b *float32, off bool, ldb int, c *float32, ldc int) {
		switch {
		case r == 8: // packed, AVX-512 only
			kern8x32(kb, a, ars, acs, b, ldb, c, ldc)
		case sw == 32 && off && r == 6:
			kern6x32o(kb, a, ars, acs, b, &bm.off[p0], c, ldc)
		case sw == 32 && off:
			kern4x32o(kb, a, ars, acs, b, &bm.off[p0], c, ldc)
		case sw == 32 && r == 6:
			kern6x32(kb, a, ars, acs, b, ldb, c, ldc)
		case sw == 32:
			kern4x32(kb, a, ars, acs, b, ldb, c, ldc)
		case off && r == 6:
			kern6x16o(kb, a, ars, acs, b, &bm.off[p0], c, ldc)
		case off:
			kern4x16o(kb, a, ars, acs, b, &bm.off[p0], c, ldc)
		case r == 6:
			kern6x16(kb, a, ars, acs, b, ldb, c, ldc)
		default:
			kern4x16(kb, a, ars, acs, b, ldb, c, ldc)
		}
	}
	mk := 0 // rows in full row blocks
	for r := rowBlock(m); r > 0; r = rowBlock(m - mk) {
		mk += r
	}
	rest := m - mk
	as := pad[:4*k]           // the left-over rows of A, zero-padded to four
	cs := pad[4*k : 4*k+8*sw] // a kernel's output for a ragged strip or the left-over rows
	panels := pad[4*k+8*sw:]  // strips of B, packed
	if rest > 0 {
		for ii := 0; ii < 4; ii++ {
			row := as[ii*k : (ii+1)*k]
			for p := range row {
				row[p] = 0
				if ii < rest {
					row[p] = a[(mk+ii)*ars+p*acs]
				}
			}
		}
	}
	// addRows adds the first rows of cs (sw wide) to C at row i, column j.
	addRows := func(rows, i, j int) {
		for ii := 0; ii < rows; ii++ {
			dst := c[(i+ii)*ldc+j : (i+ii)*ldc+min(j+sw, n)]
			for jj := range dst {
				dst[jj] += cs[ii*sw+jj]
			}
		}
	}
	// Packing a strip costs kb·sw copies and saves strided reads in every
	// row block after the first. Packed strips go in groups as large as
	// the scratch holds (about a megabyte, so they stay in L2), and each
	// row block of A sweeps a whole group: A, which for a deep layer's
	// weights is megabytes, then streams from memory once per group
	// rather than once per strip. A long k is taken in blocks of rows of
	// B (kBlock), so that a group holds many strips and a row block of A
	// stays in L1 while it sweeps them.
	packAll := bm.trans || m >= 12 || rowBlock(m) == 8
	group, kc := 1, k
	if packAll {
		kc = kBlock(k)
		group = min(len(panels)/(kc*sw), maxGroup)
	}
	type strip struct {
		j, w int
		b    *float32
		ldb  int
		off  bool
	}
	var strips [maxGroup]strip
	for j0 := 0; j0 < n; j0 += group * sw {
		ns := min(group, (n-j0+sw-1)/sw)
		for p0 := 0; p0 < k; p0 += kc {
			kb := min(kc, k-p0)
			for si := range ns {
				st := strip{j: j0 + si*sw, w: min(sw, n-j0-si*sw), ldb: sw}
				if packAll || st.w < sw {
					panel := panels[si*kb*sw : (si+1)*kb*sw]
					bm.pack(p0, kb, st.j, st.w, sw, panel)
					st.b = &panel[0]
				} else { // unblocked: p0 is 0
					st.b, st.off, st.ldb = &bm.b[st.j], bm.off != nil, bm.ld
				}
				strips[si] = st
			}
			for i, r := 0, rowBlock(m); r > 0; i, r = i+r, rowBlock(m-i-r) {
				for _, st := range strips[:ns] {
					if st.w == sw {
						tile(r, kb, p0, &a[i*ars+p0*acs], ars, acs, st.b, st.off, st.ldb, &c[i*ldc+st.j], ldc)
						continue
					}
					clear(cs)
					tile(r, kb, p0, &a[i*ars+p0*acs], ars, acs, st.b, st.off, st.ldb, &cs[0], sw)
					addRows(r, i, st.j)
				}
			}
			if rest > 0 {
				for _, st := range strips[:ns] {
					clear(cs)
					tile(4, kb, p0, &as[p0], k, 1, st.b, st.off, st.ldb, &cs[0], sw)
					addRows(rest, mk, st.j)
				}
			}
		}
	}
}

// kBlock is the rows of B packed at a time for an inner dimension k: all
// of them up to 768, else equal blocks of at most 512 (a row block of A,
// 8·512 values, then fills a third of L1).
func kBlock(k int) int {
	if k <= 768 {
		return k
	}
	nb := (k + 511) / 512
	return (k + nb - 1) / nb
}

// maxGroup bounds the strips of B packed together; panelFloats is the
// scratch for them that padLen gives beyond one strip (1.25 MiB).
const (
	maxGroup    = 64
	panelFloats = 320 << 10
)

// rowBlock is the height of the next row block when rem rows are left:
// with the AVX-512 kernels eight where what remains still splits (64 =
// 8·8), then six where it fits, four for the rest (16 = 6+6+4, 32 =
// 6·4+4+4, 144 = 6·24), and 0 when fewer than four are left.
func rowBlock(rem int) int {
	switch {
	case useWide && rem >= 8 && (rem == 8 || rem >= 12):
		return 8
	case rem < 4:
		return 0
	case rem >= 6 && rem != 8:
		return 6
	default:
		return 4
	}
}

// padLen is the scratch matmulAcc needs for an inner dimension k: the
// left-over rows of A, a kernel's output, and packed strips of B up to 32
// wide, at least one (of kBlock(k) rows) and about a megabyte's worth.
func padLen(k int) int { return 4*k + 8*32 + max(32*kBlock(k), panelFloats) }

// transpose writes the rows×cols matrix src into dst as cols×rows.
func transpose(src []float32, rows, cols int, dst []float32) {
	transposeStrided(src, rows, cols, cols, dst)
}

// transposeStrided is transpose for a src whose rows are stride apart.
func transposeStrided(src []float32, rows, cols, stride int, dst []float32) {
	const blk = 32
	for r0 := 0; r0 < rows; r0 += blk {
		for c0 := 0; c0 < cols; c0 += blk {
			for r := r0; r < min(r0+blk, rows); r++ {
				for cc := c0; cc < min(c0+blk, cols); cc++ {
					dst[cc*rows+r] = src[r*stride+cc]
				}
			}
		}
	}
}

// KernelName says which matrix kernel this process uses: "avx512" or
// "avx2-fma" (Go assembly) or "go" (portable loops; also forced by the purego build tag).
func KernelName() string {
	switch {
	case useWide:
		return "avx512"
	case useKernel:
		return "avx2-fma"
	}
	return "go"
}

// dotAcc adds A·Bᵀ to C: A is m×k and B is n×k, row-major with row strides
// lda and ldb; C[i][j] is c[i*ldc+j*ccs]. Both operands run along k, so a
// convolution's weight gradient (output gradient times shifted input, both
// along the image) needs no transposed copy. Rows past m or n in the last
// 4×2 tile repeat the last row and their sums are dropped; the k%8 tail is
// summed in Go.
func dotAcc(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc, ccs int) {
	if m == 0 || n == 0 || k == 0 {
		return
	}
	_ = a[(m-1)*lda+k-1]
	_ = b[(n-1)*ldb+k-1]
	_ = c[(m-1)*ldc+(n-1)*ccs]
	k8 := k &^ 7
	if !useKernel {
		k8 = 0
	}
	var out [8]float32
	if k8 > 0 {
		for i := 0; i < m; i += 4 {
			for j := 0; j < n; j += 2 {
				// A row stride of 0 repeats a row for a ragged tile.
				lb := ldb
				if j+2 > n {
					lb = 0
				}
				if i+4 <= m {
					kernDot4x2(k8/8, &a[i*lda], lda, &b[j*ldb], lb, &out)
					for ii := 0; ii < 4; ii++ {
						for jj := 0; jj < min(2, n-j); jj++ {
							c[(i+ii)*ldc+(j+jj)*ccs] += out[2*ii+jj]
						}
					}
					continue
				}
				for ii := i; ii < m; ii++ {
					kernDot4x2(k8/8, &a[ii*lda], 0, &b[j*ldb], lb, &out)
					for jj := 0; jj < min(2, n-j); jj++ {
						c[ii*ldc+(j+jj)*ccs] += out[jj]
					}
				}
			}
		}
	}
	if k8 == k {
		return
	}
	for i := 0; i < m; i++ {
		ar := a[i*lda+k8 : i*lda+k]
		for j := 0; j < n; j++ {
			br := b[j*ldb+k8 : j*ldb+k]
			var s float32
			for p, v := range ar {
				s += v * br[p]
			}
			c[i*ldc+j*ccs] += s
		}
	}
}
