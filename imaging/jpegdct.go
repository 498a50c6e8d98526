package imaging

import (
	"encoding/binary"
	"fmt"
)

// This file decodes sequential Huffman DCT JPEG (processes 1, 2 and 4) at 8 or 12 bits,
// for the 12-bit images the standard library cannot read. The inverse DCT is IJG
// libjpeg 6b's jpeg_idct_islow, the one dcmtk's decoders use, so results match
// dcmdjpeg exactly. Components must not be subsampled.

var zigzag = [64]int{
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
}

func extend(v int32, s int) int32 {
	if v < 1<<uint(s-1) {
		return v - (1 << uint(s)) + 1
	}
	return v
}

// dctPlane is one decoded component at its own (possibly subsampled) resolution.
type dctPlane struct {
	h, v   int // sampling factors
	w, ht  int // component size in samples
	stride int
	pix    []int32
}

// decodeDCT decodes a sequential DCT JPEG into rows*cols*spp samples, interleaved.
// Subsampled chroma is upsampled as libjpeg does ("fancy" triangle filter for 2x1 and
// 2x2); components are returned as coded (no colour conversion).
func decodeDCT(b []byte, rows, cols, spp int) ([]int32, int, error) {
	planes, prec, err := decodeDCTPlanes(b, rows, cols, spp)
	if err != nil {
		return nil, 0, err
	}
	hmax, vmax := 1, 1
	for _, p := range planes {
		hmax, vmax = max(hmax, p.h), max(vmax, p.v)
	}
	out := make([]int32, rows*cols*spp)
	for c, p := range planes {
		full := upsamplePlane(p, hmax/p.h, vmax/p.v, cols, rows)
		for k, v := range full {
			out[k*spp+c] = v
		}
	}
	return out, prec, nil
}

func decodeDCTPlanes(b []byte, rows, cols, spp int) ([]dctPlane, int, error) {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return nil, 0, fmt.Errorf("%w: no start-of-image marker", ErrMalformed)
	}
	var qt [4][64]int32
	var dc, ac [4]huffTable
	var prec, restart int
	type comp struct{ id, h, v, tq int }
	var comps []comp
	var coefs [][]int32 // per component, per block: 64 coefficients (dequantised at the end)
	var bws, bhs []int  // per component block grid (padded to whole MCUs)
	mcusX, mcusY, hmax, vmax := 0, 0, 1, 1
	framed := false
	scans := 0
	k := 2
	for {
		m, p, end, err := nextSegment(b, k, true)
		if err != nil {
			return nil, 0, err
		}
		if m == 0xD9 {
			break
		}
		switch m {
		case 0xC0, 0xC1:
			if len(p) < 6 {
				return nil, 0, fmt.Errorf("%w: short frame header", ErrMalformed)
			}
			prec = int(p[0])
			h, w, nf := int(binary.BigEndian.Uint16(p[1:])), int(binary.BigEndian.Uint16(p[3:])), int(p[5])
			if prec != 8 && prec != 12 {
				return nil, 0, fmt.Errorf("%w: dct precision %d", ErrMalformed, prec)
			}
			if w != cols || h != rows || nf != spp || len(p) < 6+3*nf {
				return nil, 0, fmt.Errorf("%w: jpeg is %dx%dx%d, header says %dx%dx%d", ErrMalformed, w, h, nf, cols, rows, spp)
			}
			for c := 0; c < nf; c++ {
				cp := comp{int(p[6+3*c]), int(p[7+3*c] >> 4), int(p[7+3*c] & 15), int(p[8+3*c] & 3)}
				if cp.h < 1 || cp.h > 2 || cp.v < 1 || cp.v > 2 {
					return nil, 0, fmt.Errorf("%w: jpeg sampling factors %dx%d", ErrUnsupported, cp.h, cp.v)
				}
				hmax, vmax = max(hmax, cp.h), max(vmax, cp.v)
				comps = append(comps, cp)
			}
			mcusX, mcusY = (w+8*hmax-1)/(8*hmax), (h+8*vmax-1)/(8*vmax)
			for _, cp := range comps {
				bws, bhs = append(bws, mcusX*cp.h), append(bhs, mcusY*cp.v)
				coefs = append(coefs, make([]int32, mcusX*cp.h*mcusY*cp.v*64))
			}
			framed = true
		case 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF:
			return nil, 0, fmt.Errorf("%w: jpeg process (marker %02X)", ErrUnsupported, m)
		case 0xDB:
			for len(p) > 0 {
				pq, tq := int(p[0]>>4), int(p[0]&3)
				n := 64 * (pq + 1)
				if len(p) < 1+n {
					return nil, 0, fmt.Errorf("%w: quantisation table cut off", ErrTruncated)
				}
				for i := 0; i < 64; i++ {
					if pq == 0 {
						qt[tq][zigzag[i]] = int32(p[1+i])
					} else {
						qt[tq][zigzag[i]] = int32(binary.BigEndian.Uint16(p[1+2*i:]))
					}
				}
				p = p[1+n:]
			}
		case 0xC4:
			for len(p) > 0 {
				if len(p) < 17 {
					return nil, 0, fmt.Errorf("%w: huffman table cut off", ErrTruncated)
				}
				class, id := p[0]>>4, int(p[0]&3)
				total := 0
				for _, c := range p[1:17] {
					total += int(c)
				}
				if len(p) < 17+total {
					return nil, 0, fmt.Errorf("%w: huffman table cut off", ErrTruncated)
				}
				t, err := buildHuff(p[1:17], p[17:17+total])
				if err != nil {
					return nil, 0, err
				}
				if class == 0 {
					dc[id] = t
				} else {
					ac[id] = t
				}
				p = p[17+total:]
			}
		case 0xDD:
			if len(p) >= 2 {
				restart = int(binary.BigEndian.Uint16(p))
			}
		case 0xDA:
			if !framed {
				return nil, 0, fmt.Errorf("%w: scan before frame header", ErrMalformed)
			}
			ns := int(p[0])
			if ns < 1 || len(p) < 1+2*ns+3 {
				return nil, 0, fmt.Errorf("%w: bad scan header", ErrMalformed)
			}
			var sc []int
			var td, ta []*huffTable
			for s := 0; s < ns; s++ {
				idx := -1
				for c := range comps {
					if comps[c].id == int(p[1+2*s]) {
						idx = c
					}
				}
				d, a := &dc[p[2+2*s]>>4&3], &ac[p[2+2*s]&3]
				if idx < 0 || !d.ok || !a.ok {
					return nil, 0, fmt.Errorf("%w: scan names unknown component or table", ErrMalformed)
				}
				sc, td, ta = append(sc, idx), append(td, d), append(ta, a)
			}
			r := &bitReader{b: b, pos: end}
			preds := make([]int32, len(sc))
			// blocks lists, per MCU, the (component, block index) pairs in coding order.
			type ref struct{ i, c, blk int }
			var nMCU int
			var mcuBlocks func(m int, dst []ref) []ref
			if len(sc) == 1 {
				c := sc[0]
				cw := (cols*comps[c].h + hmax - 1) / hmax
				ch := (rows*comps[c].v + vmax - 1) / vmax
				bx, by := (cw+7)/8, (ch+7)/8
				nMCU = bx * by
				mcuBlocks = func(m int, dst []ref) []ref { return append(dst, ref{0, c, (m/bx)*bws[c] + m%bx}) }
			} else {
				nMCU = mcusX * mcusY
				mcuBlocks = func(m int, dst []ref) []ref {
					mx, my := m%mcusX, m/mcusX
					for i, c := range sc {
						for v := 0; v < comps[c].v; v++ {
							for h := 0; h < comps[c].h; h++ {
								dst = append(dst, ref{i, c, (my*comps[c].v+v)*bws[c] + mx*comps[c].h + h})
							}
						}
					}
					return dst
				}
			}
			var refs []ref
			for mcu := 0; mcu < nMCU; mcu++ {
				if restart > 0 && mcu > 0 && mcu%restart == 0 {
					if err := r.restart(); err != nil {
						return nil, 0, err
					}
					for i := range preds {
						preds[i] = 0
					}
				}
				refs = mcuBlocks(mcu, refs[:0])
				for _, rf := range refs {
					i := rf.i
					blk := coefs[rf.c][rf.blk*64 : rf.blk*64+64]
					s, err := r.decode(td[i])
					if err != nil {
						return nil, 0, err
					}
					if s > 15 {
						return nil, 0, fmt.Errorf("%w: dc category %d", ErrMalformed, s)
					}
					if s > 0 {
						preds[i] += extend(int32(r.bits(uint(s))), s)
					}
					blk[0] = preds[i]
					for z := 1; z < 64; z++ {
						rs, err := r.decode(ta[i])
						if err != nil {
							return nil, 0, err
						}
						run, size := rs>>4, rs&15
						if size == 0 {
							if run != 15 {
								break
							}
							z += 15
							continue
						}
						z += run
						if z > 63 {
							return nil, 0, fmt.Errorf("%w: ac coefficients overrun the block", ErrMalformed)
						}
						blk[zigzag[z]] = extend(int32(r.bits(uint(size))), size)
					}
				}
			}
			scans++
			k = afterScan(b, r.pos)
			continue
		}
		k = end
	}
	if scans == 0 {
		return nil, 0, fmt.Errorf("%w: no scan", ErrTruncated)
	}
	var blk [64]int32
	planes := make([]dctPlane, len(comps))
	for c, cp := range comps {
		q := &qt[cp.tq]
		pl := dctPlane{h: cp.h, v: cp.v, w: (cols*cp.h + hmax - 1) / hmax, ht: (rows*cp.v + vmax - 1) / vmax, stride: bws[c] * 8}
		pl.pix = make([]int32, pl.stride*bhs[c]*8)
		for by := 0; by < bhs[c]; by++ {
			for bx := 0; bx < bws[c]; bx++ {
				idctIslow(coefs[c][(by*bws[c]+bx)*64:], q, prec, &blk)
				for y := 0; y < 8; y++ {
					copy(pl.pix[(by*8+y)*pl.stride+bx*8:], blk[y*8:y*8+8])
				}
			}
		}
		planes[c] = pl
	}
	return planes, prec, nil
}

// upsamplePlane returns a w x h plane from p, replicating for factors other than 2x1
// and 2x2, and for those using libjpeg's fancy upsampling (jdsample.c) with edge rows
// replicated, as libjpeg's main controller provides them.
func upsamplePlane(p dctPlane, fx, fy, w, h int) []int32 {
	out := make([]int32, w*h)
	at := func(x, y int) int32 { return p.pix[y*p.stride+x] }
	cw := p.w
	switch {
	case fx == 1 && fy == 1:
		for y := 0; y < h; y++ {
			copy(out[y*w:(y+1)*w], p.pix[y*p.stride:y*p.stride+w])
		}
	case fx == 2 && fy == 1 && cw >= 2:
		for y := 0; y < h; y++ {
			row := out[y*w:]
			put := func(x int, v int32) {
				if x < w {
					row[x] = v
				}
			}
			put(0, at(0, y))
			put(1, (at(0, y)*3+at(1, y)+2)>>2)
			for i := 1; i < cw-1; i++ {
				v := at(i, y) * 3
				put(2*i, (v+at(i-1, y)+1)>>2)
				put(2*i+1, (v+at(i+1, y)+2)>>2)
			}
			put(2*(cw-1), (at(cw-1, y)*3+at(cw-2, y)+1)>>2)
			put(2*(cw-1)+1, at(cw-1, y))
		}
	case fx == 2 && fy == 2 && cw >= 2:
		ch := p.ht
		for y := 0; y < h; y++ {
			row := out[y*w:]
			put := func(x int, v int32) {
				if x < w {
					row[x] = v
				}
			}
			cy := y / 2
			ny := cy - 1
			if y%2 == 1 {
				ny = cy + 1
			}
			ny = clampInt(ny, 0, ch-1)
			sum := func(x int) int32 { return at(x, cy)*3 + at(x, ny) }
			this, next := sum(0), sum(1)
			put(0, (this*4+8)>>4)
			put(1, (this*3+next+7)>>4)
			last := this
			this = next
			for i := 1; i < cw-1; i++ {
				next = sum(i + 1)
				put(2*i, (this*3+last+8)>>4)
				put(2*i+1, (this*3+next+7)>>4)
				last, this = this, next
			}
			put(2*(cw-1), (this*3+last+8)>>4)
			put(2*(cw-1)+1, (this*4+7)>>4)
		}
	default:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				out[y*w+x] = at(min(x/fx, cw-1), min(y/fy, p.ht-1))
			}
		}
	}
	return out
}

// idctIslow is jidctint.c of IJG libjpeg 6b (CONST_BITS 13; PASS1_BITS 2 at 8 bits and
// 1 at 12 bits), output level-shifted and clamped to the sample range.
func idctIslow(in []int32, q *[64]int32, prec int, out *[64]int32) {
	const (
		constBits = 13
		f0298     = 2446
		f0390     = 3196
		f0541     = 4433
		f0765     = 6270
		f0899     = 7373
		f1175     = 9633
		f1501     = 12299
		f1847     = 15137
		f1961     = 16069
		f2053     = 16819
		f2562     = 20995
		f3072     = 25172
	)
	pass1 := uint(2)
	if prec == 12 {
		pass1 = 1
	}
	descale := func(x int64, n uint) int64 { return (x + 1<<(n-1)) >> n }
	maxv := int64(1)<<uint(prec) - 1
	center := int64(1) << uint(prec-1)
	var ws, dqv [64]int64
	for i := range dqv {
		dqv[i] = int64(in[i]) * int64(q[i])
	}
	for c := 0; c < 8; c++ {
		if in[8+c] == 0 && in[16+c] == 0 && in[24+c] == 0 && in[32+c] == 0 && in[40+c] == 0 && in[48+c] == 0 && in[56+c] == 0 {
			d := dqv[c] << pass1
			for r := 0; r < 8; r++ {
				ws[r*8+c] = d
			}
			continue
		}
		z2, z3 := dqv[16+c], dqv[48+c]
		z1 := (z2 + z3) * f0541
		tmp2 := z1 + z3*(-f1847)
		tmp3 := z1 + z2*f0765
		z2, z3 = dqv[c], dqv[32+c]
		tmp0 := (z2 + z3) << constBits
		tmp1 := (z2 - z3) << constBits
		tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
		tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2
		tmp0, tmp1, tmp2, tmp3 = dqv[56+c], dqv[40+c], dqv[24+c], dqv[8+c]
		z1, z2, z3 = tmp0+tmp3, tmp1+tmp2, tmp0+tmp2
		z4 := tmp1 + tmp3
		z5 := (z3 + z4) * f1175
		tmp0 *= f0298
		tmp1 *= f2053
		tmp2 *= f3072
		tmp3 *= f1501
		z1 *= -f0899
		z2 *= -f2562
		z3 *= -f1961
		z4 *= -f0390
		z3 += z5
		z4 += z5
		tmp0 += z1 + z3
		tmp1 += z2 + z4
		tmp2 += z2 + z3
		tmp3 += z1 + z4
		n := constBits - pass1
		ws[0*8+c], ws[7*8+c] = descale(tmp10+tmp3, n), descale(tmp10-tmp3, n)
		ws[1*8+c], ws[6*8+c] = descale(tmp11+tmp2, n), descale(tmp11-tmp2, n)
		ws[2*8+c], ws[5*8+c] = descale(tmp12+tmp1, n), descale(tmp12-tmp1, n)
		ws[3*8+c], ws[4*8+c] = descale(tmp13+tmp0, n), descale(tmp13-tmp0, n)
	}
	clamp := func(v int64) int32 {
		v += center
		if v < 0 {
			return 0
		}
		if v > maxv {
			return int32(maxv)
		}
		return int32(v)
	}
	for r := 0; r < 8; r++ {
		w := ws[r*8 : r*8+8]
		if w[1] == 0 && w[2] == 0 && w[3] == 0 && w[4] == 0 && w[5] == 0 && w[6] == 0 && w[7] == 0 {
			// DC only: same result as the full path (jidctint.c's zero-row shortcut).
			d := clamp(descale(w[0], pass1+3))
			for i := 0; i < 8; i++ {
				out[r*8+i] = d
			}
			continue
		}
		z2, z3 := w[2], w[6]
		z1 := (z2 + z3) * f0541
		tmp2 := z1 + z3*(-f1847)
		tmp3 := z1 + z2*f0765
		tmp0 := (w[0] + w[4]) << constBits
		tmp1 := (w[0] - w[4]) << constBits
		tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
		tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2
		tmp0, tmp1, tmp2, tmp3 = w[7], w[5], w[3], w[1]
		z1, z2, z3 = tmp0+tmp3, tmp1+tmp2, tmp0+tmp2
		z4 := tmp1 + tmp3
		z5 := (z3 + z4) * f1175
		tmp0 *= f0298
		tmp1 *= f2053
		tmp2 *= f3072
		tmp3 *= f1501
		z1 *= -f0899
		z2 *= -f2562
		z3 *= -f1961
		z4 *= -f0390
		z3 += z5
		z4 += z5
		tmp0 += z1 + z3
		tmp1 += z2 + z4
		tmp2 += z2 + z3
		tmp3 += z1 + z4
		n := constBits + pass1 + 3
		o := out[r*8 : r*8+8]
		o[0], o[7] = clamp(descale(tmp10+tmp3, n)), clamp(descale(tmp10-tmp3, n))
		o[1], o[6] = clamp(descale(tmp11+tmp2, n)), clamp(descale(tmp11-tmp2, n))
		o[2], o[5] = clamp(descale(tmp12+tmp1, n)), clamp(descale(tmp12-tmp1, n))
		o[3], o[4] = clamp(descale(tmp13+tmp0, n)), clamp(descale(tmp13-tmp0, n))
	}
}
