package learning

import "fmt"

// matmulAcc adds A·B to C, where A is m×k read at a[i*ars+p*acs] (so a
// transposed A is just other strides), B is k×n row-major with row stride
// ldb, and C is m×n row-major with row stride ldc. pad is scratch of at
// least padLen(k) values.
//
// Full 6×16 and 4×16 tiles go to the SIMD kernels when the CPU has them; the
// ragged right-hand columns are copied into a zero-padded 16-wide strip, and
// rows left over by rowBlock into a zero-padded 4-row block, so that they
// use the kernels too. The k-loop always runs in order, so a given machine
// gets the same bits every time.
func matmulAcc(m, n, k int, a []float32, ars, acs int, b []float32, ldb int, c []float32, ldc int, pad []float32) {
	if m == 0 || n == 0 || k == 0 {
		return
	}
	_ = b[(k-1)*ldb+n-1]
	gemm(m, n, k, a, ars, acs, b, ldb, nil, c, ldc, pad)
}

// matmulAccOff is matmulAcc with row p of B at b[boff[p]:] instead of at a
// fixed stride: a 3×3 convolution reads its nine shifted input windows in
// place from a padded image this way, with no unfolded copy (im2col).
func matmulAccOff(m, n, k int, a []float32, ars, acs int, b []float32, boff []int, c []float32, ldc int, pad []float32) {
	if m == 0 || n == 0 || k == 0 {
		return
	}
	for _, o := range boff[:k] {
		if o < 0 || o+n > len(b) {
			panic(fmt.Sprintf("learning: B row offset %d with %d columns outside %d values", o, n, len(b)))
		}
	}
	gemm(m, n, k, a, ars, acs, b, 0, boff[:k], c, ldc, pad)
}

// gemm is matmulAcc and matmulAccOff once B is bounds-checked: row p of B
// starts at boff[p], or at p·ldb when boff is nil.
func gemm(m, n, k int, a []float32, ars, acs int, b []float32, ldb int, boff []int, c []float32, ldc int, pad []float32) {
	// Bounds checked once here so the kernels can use raw pointers.
	_ = a[(m-1)*ars+(k-1)*acs]
	_ = c[(m-1)*ldc+n-1]
	bRow := func(p int) int {
		if boff != nil {
			return boff[p]
		}
		return p * ldb
	}
	if !useKernel {
		for i := 0; i < m; i++ {
			crow := c[i*ldc : i*ldc+n]
			for p := 0; p < k; p++ {
				av := a[i*ars+p*acs]
				for j, bv := range b[bRow(p) : bRow(p)+n] {
					crow[j] += av * bv
				}
			}
		}
		return
	}
	// tile runs one r×16 kernel; B at b (strided, or offset when off).
	tile := func(r int, a *float32, ars, acs int, b *float32, off bool, ldb int, c *float32, ldc int) {
		switch {
		case off && r == 6:
			kern6x16o(k, a, ars, acs, b, &boff[0], c, ldc)
		case off:
			kern4x16o(k, a, ars, acs, b, &boff[0], c, ldc)
		case r == 6:
			kern6x16(k, a, ars, acs, b, ldb, c, ldc)
		default:
			kern4x16(k, a, ars, acs, b, ldb, c, ldc)
		}
	}
	off := boff != nil
	n16 := n &^ 15
	mk := 0
	for r := rowBlock(m); r > 0; r = rowBlock(m - mk) {
		mk += r
	}
	bs := pad[:k*16]             // the ragged strip of B, zero-padded to 16 columns
	cs := pad[k*16 : k*16+96]    // a kernel's output for the ragged strip or the left-over rows
	as := pad[k*16+96 : k*20+96] // the left-over rows of A, zero-padded to four
	if r := n - n16; r > 0 {
		for p := 0; p < k; p++ {
			row := bs[p*16 : p*16+16]
			copy(row, b[bRow(p)+n16:bRow(p)+n])
			clear(row[r:])
		}
	}
	// addRows adds the first rows of cs (16 wide) to C at row i, column j.
	addRows := func(rows, i, j int) {
		for ii := 0; ii < rows; ii++ {
			dst := c[(i+ii)*ldc+j : (i+ii)*ldc+min(j+16, n)]
			for jj := range dst {
				dst[jj] += cs[ii*16+jj]
			}
		}
	}
	for j := 0; j < n16; j += 16 {
		for i, r := 0, rowBlock(m); r > 0; i, r = i+r, rowBlock(m-i-r) {
			tile(r, &a[i*ars], ars, acs, &b[j], off, ldb, &c[i*ldc+j], ldc)
		}
	}
	if n16 < n {
		for i, r := 0, rowBlock(m); r > 0; i, r = i+r, rowBlock(m-i-r) {
			clear(cs)
			tile(r, &a[i*ars], ars, acs, &bs[0], false, 16, &cs[0], 16)
			addRows(r, i, n16)
		}
	}
	if rest := m - mk; rest > 0 {
		for ii := 0; ii < 4; ii++ {
			row := as[ii*k : (ii+1)*k]
			for p := range row {
				row[p] = 0
				if ii < rest {
					row[p] = a[(mk+ii)*ars+p*acs]
				}
			}
		}
		for j := 0; j < n; j += 16 {
			clear(cs)
			if j < n16 {
				tile(4, &as[0], k, 1, &b[j], off, ldb, &cs[0], 16)
			} else {
				tile(4, &as[0], k, 1, &bs[0], false, 16, &cs[0], 16)
			}
			addRows(rest, mk, j)
		}
	}
}

// rowBlock is the height of the next row block when rem rows are left: six
// where it fits, four for the rest (16 = 6+6+4, 32 = 6·4+4+4, 144 = 6·24),
// and 0 when fewer than four are left.
func rowBlock(rem int) int {
	switch {
	case rem < 4:
		return 0
	case rem >= 6 && rem != 8:
		return 6
	default:
		return 4
	}
}

// padLen is the scratch matmulAcc needs for an inner dimension k.
func padLen(k int) int { return 20*k + 96 }

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

// KernelName says which matrix kernel this process uses: "avx2-fma" (Go
// assembly) or "go" (portable loops; also forced by the purego build tag).
func KernelName() string {
	if useKernel {
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
