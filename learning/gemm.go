package learning

// matmulAcc adds A·B to C, where A is m×k read at a[i*ars+p*acs] (so a
// transposed A is just other strides), B is k×n row-major with row stride
// ldb, and C is m×n row-major with row stride ldc. pad is scratch of at
// least padLen(k) values.
//
// Full 4×16 tiles go to the SIMD kernel when the CPU has one; the ragged
// right-hand columns are copied into a zero-padded 16-wide strip so they use
// the kernel too, and only the last m%4 rows use plain Go. The k-loop always
// runs in order, so a given machine gets the same bits every time.
func matmulAcc(m, n, k int, a []float32, ars, acs int, b []float32, ldb int, c []float32, ldc int, pad []float32) {
	if m == 0 || n == 0 || k == 0 {
		return
	}
	// Bounds checked once here so the kernel can use raw pointers.
	_ = a[(m-1)*ars+(k-1)*acs]
	_ = b[(k-1)*ldb+n-1]
	_ = c[(m-1)*ldc+n-1]
	if !useKernel {
		matmulGo(m, 0, n, k, a, ars, acs, b, ldb, c, ldc)
		return
	}
	m4, n16 := m&^3, n&^15
	for j := 0; j < n16; j += 16 {
		for i := 0; i < m4; i += 4 {
			kern4x16(k, &a[i*ars], ars, acs, &b[j], ldb, &c[i*ldc+j], ldc)
		}
	}
	if r := n - n16; r > 0 && m4 > 0 {
		bs := pad[:k*16]
		cs := pad[k*16 : k*16+64]
		for p := 0; p < k; p++ {
			row := bs[p*16 : p*16+16]
			copy(row, b[p*ldb+n16:p*ldb+n])
			clear(row[r:])
		}
		for i := 0; i < m4; i += 4 {
			clear(cs)
			kern4x16(k, &a[i*ars], ars, acs, &bs[0], 16, &cs[0], 16)
			for ii := 0; ii < 4; ii++ {
				dst := c[(i+ii)*ldc+n16 : (i+ii)*ldc+n]
				for jj := range dst {
					dst[jj] += cs[ii*16+jj]
				}
			}
		}
	}
	if m4 < m {
		matmulGo(m-m4, 0, n, k, a[m4*ars:], ars, acs, b, ldb, c[m4*ldc:], ldc)
	}
}

// padLen is the scratch matmulAcc needs for an inner dimension k.
func padLen(k int) int { return 16*k + 64 }

// matmulGo adds A·B to C for rows 0..m-1 and columns j0..j1-1.
func matmulGo(m, j0, j1, k int, a []float32, ars, acs int, b []float32, ldb int, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		crow := c[i*ldc+j0 : i*ldc+j1]
		for p := 0; p < k; p++ {
			av := a[i*ars+p*acs]
			brow := b[p*ldb+j0 : p*ldb+j1]
			for j, bv := range brow {
				crow[j] += av * bv
			}
		}
	}
}

// transpose writes the rows×cols matrix src into dst as cols×rows.
func transpose(src []float32, rows, cols int, dst []float32) {
	const blk = 32
	for r0 := 0; r0 < rows; r0 += blk {
		for c0 := 0; c0 < cols; c0 += blk {
			for r := r0; r < min(r0+blk, rows); r++ {
				for cc := c0; cc < min(c0+blk, cols); cc++ {
					dst[cc*rows+r] = src[r*cols+cc]
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
