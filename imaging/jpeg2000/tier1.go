package jpeg2000

import (
	"fmt"
	"math/bits"
)

// Tier-1 (Annex D): the three coding passes of EBCOT over one code-block.
//
// Coefficients are kept with one extra fractional bit, so that a coefficient found
// significant at bit-plane p is reconstructed at the middle of its interval
// (1.5 * 2^p), as OpenJPEG does; the reversible path divides by two afterwards.

// Each coefficient has a 16-bit flag word: which of its eight neighbours are
// significant and the signs of the four direct ones (kept up to date by setSig, so a
// context is one table look-up), and its own state. Neighbours that a context must
// not see (the next stripe in vertically causal mode) are never marked.
const (
	nW, nE, nN, nS     = 1 << 0, 1 << 1, 1 << 2, 1 << 3
	nNW, nNE, nSW, nSE = 1 << 4, 1 << 5, 1 << 6, 1 << 7
	nbrMask            = 0xFF
	sW, sE, sN, sS     = 1 << 8, 1 << 9, 1 << 10, 1 << 11 // negative neighbour
	fSig               = 1 << 12
	fVisit             = 1 << 13
	fRefined           = 1 << 14
	fNeg               = 1 << 15 // the coefficient itself is negative
)

// zcLUT[orient][f&nbrMask] is the zero-coding context (Table D.1); signLUT[i], i
// being the direct neighbours' significance and sign bits (signIndex), is the
// sign context (Table D.3) with the bit to exclusive-or with the decision.
var (
	zcLUT   [4][256]uint8
	signLUT [256]struct{ ctx, xor uint8 }
)

func init() {
	bit := func(m, b int) int {
		if m&b != 0 {
			return 1
		}
		return 0
	}
	for m := 0; m < 256; m++ {
		h := bit(m, nW) + bit(m, nE)
		v := bit(m, nN) + bit(m, nS)
		d := bit(m, nNW) + bit(m, nNE) + bit(m, nSW) + bit(m, nSE)
		for o := 0; o < 4; o++ {
			zcLUT[o][m] = zcContext(o, h, v, d)
		}
		// m here is signIndex's layout: significance of W, E, N, S in bits 0-3,
		// their signs in bits 4-7.
		contrib := func(sig, neg int) int {
			if m&sig == 0 {
				return 0
			}
			if m&neg != 0 {
				return -1
			}
			return 1
		}
		hc := clamp1(contrib(nW, sW>>4) + contrib(nE, sE>>4))
		vc := clamp1(contrib(nN, sN>>4) + contrib(nS, sS>>4))
		var ctx, xor int
		switch hc {
		case 1:
			ctx = 12 + vc
		case 0:
			ctx = 9 + vc*vc
			if vc < 0 {
				xor = 1
			}
		default:
			ctx, xor = 12-vc, 1
		}
		signLUT[m].ctx, signLUT[m].xor = uint8(ctx), uint8(xor)
	}
}

func signIndex(f uint16) int {
	return int(f&0xF | f>>4&0xF0)
}

func zcContext(orient, h, v, d int) uint8 {
	if orient == 1 { // HL: the roles of horizontal and vertical swap
		h, v = v, h
	}
	if orient == 3 {
		hv := h + v
		switch {
		case d >= 3:
			return 8
		case d == 2:
			if hv >= 1 {
				return 7
			}
			return 6
		case d == 1:
			if hv >= 2 {
				return 5
			}
			if hv == 1 {
				return 4
			}
			return 3
		}
		if hv >= 2 {
			return 2
		}
		return uint8(hv)
	}
	switch {
	case h == 2:
		return 8
	case h == 1:
		if v >= 1 {
			return 7
		}
		if d >= 1 {
			return 6
		}
		return 5
	case v == 2:
		return 4
	case v == 1:
		return 3
	case d >= 2:
		return 2
	}
	return uint8(d)
}

// rep has a 1 in the lowest bit of each of the four 16-bit flag words a column
// word holds: rep*fSig, for example, tests or sets fSig in all four rows.
const rep = 0x0001_0001_0001_0001

type blockDecoder struct {
	w, h int
	sw   int // column words per stripe: w+2
	// flags holds one 64-bit word per column of a stripe (four rows), the flag
	// word of row r in bits 16r..16r+15, so that the passes test a whole stripe
	// column with one load. Stripe s, column x is at (s+1)*sw + x+1: a border
	// column left and right and a border stripe above and below take the
	// neighbours' marks of the edge coefficients.
	flags  []uint64
	val    []int32
	orient int
	vc     bool
	mq     mqDecoder
	raw    rawDecoder
	useRaw bool
}

func (t *blockDecoder) reset(w, h int) {
	t.w, t.h, t.sw = w, h, w+2
	n := ((h+3)/4 + 2) * (w + 2)
	if cap(t.flags) < n {
		t.flags = make([]uint64, n)
	}
	t.flags = t.flags[:n]
	clear(t.flags)
	if cap(t.val) < w*h {
		t.val = make([]int32, w*h)
	}
	t.val = t.val[:w*h]
	clear(t.val)
}

func clamp1(v int) int {
	return max(-1, min(1, v))
}

// setSig makes the coefficient in row r of column word j (block row y, column x)
// significant and tells its neighbours.
func (t *blockDecoder) setSig(j, r, y, x int, neg int, mag int32) {
	f, sw := t.flags, t.sw
	_ = f[j+sw+1]
	_ = f[j-sw-1]
	sh := uint(16 * r)
	// What the west, east, north and south neighbours learn.
	var we, ew, ns, sn uint64 = nE, nW, nS, nN
	if neg != 0 {
		we, ew, ns, sn = nE|sE, nW|sW, nS|sS, nN|sN
		f[j] |= fNeg << sh
	}
	f[j-1] |= we << sh
	f[j+1] |= ew << sh
	if r > 0 {
		f[j] |= ns << (sh - 16)
		f[j-1] |= nSE << (sh - 16)
		f[j+1] |= nSW << (sh - 16)
	} else if !t.vc { // in vertically causal mode the stripe above does not see this one
		f[j-sw] |= ns << 48
		f[j-sw-1] |= nSE << 48
		f[j-sw+1] |= nSW << 48
	}
	if r < 3 {
		f[j] |= sn << (sh + 16)
		f[j-1] |= nNE << (sh + 16)
		f[j+1] |= nNW << (sh + 16)
	} else {
		f[j+sw] |= sn
		f[j+sw-1] |= nNE
		f[j+sw+1] |= nNW
	}
	f[j] |= fSig << sh
	t.val[y*t.w+x] = mag // the passes work on magnitudes; decodeBlock applies the signs
}

// The passes keep the MQ decoder's A and C registers in local variables (the
// compiler keeps fields of a struct in memory): the common case of a decision
// (mq.decide's) written out, the rest through mq.slow and mq.decide, which take
// and return the registers. They are stored back at the end of the pass.

func (t *blockDecoder) sigPass(bp int) {
	oph := int32(1)<<uint(bp) | int32(1)<<uint(bp)>>1
	f, sw, w, h := t.flags, t.sw, t.w, t.h
	zc := &zcLUT[t.orient&3]
	mq := &t.mq
	raw := t.useRaw
	a, c := mq.a, mq.c
	for y0, j0 := 0, sw+1; y0 < h; y0, j0 = y0+4, j0+sw {
		rows := min(4, h-y0)
		for x, col := range f[j0 : j0+w] {
			if col&(rep*nbrMask) == 0 || col&(rep*fSig) == rep*fSig {
				continue // no coefficient has a significant neighbour, or all are significant
			}
			j := j0 + x
			for r := 0; r < rows; r++ {
				sh := uint(16 * r)
				fl := uint16(f[j] >> sh)
				if fl&(fSig|fVisit) != 0 || fl&nbrMask == 0 {
					continue
				}
				var bit int
				if raw {
					bit = t.raw.bit()
				} else {
					cx := int(zc[fl&nbrMask])
					s := &mqStates[mq.cx[cx]]
					a -= s.qe
					if c>>16 >= s.qe && a >= 0x8000 {
						c -= s.qe << 16
						bit = int(s.mps)
					} else {
						bit, a, c = mq.slow(cx, s, a, c)
					}
				}
				if bit != 0 {
					var neg int
					if raw {
						neg = t.raw.bit()
					} else {
						e := signLUT[signIndex(fl)]
						neg, a, c = mq.decide(int(e.ctx), a, c)
						neg ^= int(e.xor)
					}
					t.setSig(j, r, y0+r, x, neg, oph)
				}
				f[j] |= fVisit << sh
			}
		}
	}
	mq.a, mq.c = a, c
}

func (t *blockDecoder) refPass(bp int) {
	half := int32(1) << uint(bp) >> 1
	f, sw, w, h := t.flags, t.sw, t.w, t.h
	val := t.val
	mq := &t.mq
	raw := t.useRaw
	a, c := mq.a, mq.c
	for y0, j0 := 0, sw+1; y0 < h; y0, j0 = y0+4, j0+sw {
		fs := f[j0 : j0+w]
		for x, col := range fs {
			// Refined: significant and not just made so by the significance pass.
			todo := col & (col>>1 ^ rep*fSig) & (rep * fSig)
			if todo == 0 {
				continue
			}
			for rest := todo; rest != 0; rest &= rest - 1 {
				sh := uint(bits.TrailingZeros64(rest)) &^ 15 // 16 times the row
				fl := uint16(col >> sh)
				var bit int
				if raw {
					bit = t.raw.bit()
				} else {
					cx := 16
					if fl&fRefined == 0 {
						cx = 14
						if fl&nbrMask != 0 {
							cx = 15
						}
					}
					s := &mqStates[mq.cx[cx]]
					a -= s.qe
					if c>>16 >= s.qe && a >= 0x8000 {
						c -= s.qe << 16
						bit = int(s.mps)
					} else {
						bit, a, c = mq.slow(cx, s, a, c)
					}
				}
				// Half a step up for a 1, down for a 0 (the magnitude keeps one
				// fractional bit: 2*half is 1<<bp).
				val[(y0+int(sh>>4))*w+x] += int32(bit)<<uint(bp) - half
			}
			fs[x] = col | todo<<(14-12) // fRefined where refined
		}
	}
	mq.a, mq.c = a, c
}

func (t *blockDecoder) cleanPass(bp int, segSym bool) {
	oph := int32(1)<<uint(bp) | int32(1)<<uint(bp)>>1
	f, sw, w, h := t.flags, t.sw, t.w, t.h
	zc := &zcLUT[t.orient&3]
	mq := &t.mq
	a, c := mq.a, mq.c
	const busy = rep * (fSig | fVisit | nbrMask)
	for y0, j0 := 0, sw+1; y0 < h; y0, j0 = y0+4, j0+sw {
		rows := min(4, h-y0)
		inStripe := uint64(1)<<uint(16*rows) - 1 // the rows in the block: all for 4, 1<<64 being 0
		for x := 0; x < w; x++ {
			j := j0 + x
			col := f[j]
			// The rows to code, fSig's bit set in each: neither significant nor
			// visited (fVisit is the bit above fSig).
			todo := ^(col | col>>1) & (rep * fSig) & inStripe
			// Run mode: the four coefficients of a whole stripe column are
			// insignificant, not yet visited, and have no significant neighbour.
			if rows == 4 {
				if col&busy == 0 {
					s := &mqStates[mq.cx[ctxRL]]
					a -= s.qe
					if c>>16 >= s.qe && a >= 0x8000 && s.mps == 0 {
						c -= s.qe << 16
						continue // the usual case: the column stays insignificant
					}
					var bit, r, r1 int
					if bit, a, c = mq.slowOrMPS(ctxRL, s, a, c); bit == 0 {
						continue
					}
					r, a, c = mq.decide(ctxUni, a, c)
					r1, a, c = mq.decide(ctxUni, a, c)
					r = r<<1 | r1
					e := signLUT[signIndex(uint16(f[j]>>uint(16*r)))]
					var neg int
					neg, a, c = mq.decide(int(e.ctx), a, c)
					t.setSig(j, r, y0+r, x, neg^int(e.xor), oph)
					todo &= ^uint64(0) << uint(16*(r+1)) // the rows below r
				}
			}
			for rest := todo; rest != 0; rest &= rest - 1 {
				sh := uint(bits.TrailingZeros64(rest)) &^ 15 // 16 times the row
				r := int(sh >> 4)
				fl := uint16(f[j] >> sh) // read again: the row above may have told this one
				cx := int(zc[fl&nbrMask])
				s := &mqStates[mq.cx[cx]]
				a -= s.qe
				var bit int
				if c>>16 >= s.qe && a >= 0x8000 {
					c -= s.qe << 16
					bit = int(s.mps)
				} else {
					bit, a, c = mq.slow(cx, s, a, c)
				}
				if bit != 0 {
					e := signLUT[signIndex(fl)]
					var neg int
					neg, a, c = mq.decide(int(e.ctx), a, c)
					t.setSig(j, r, y0+r, x, neg^int(e.xor), oph)
				}
			}
			// Clear the significance pass's marks for the next bit-plane.
			f[j] &^= rep * fVisit
		}
	}
	if segSym {
		for k := 0; k < 4; k++ {
			_, a, c = mq.decide(ctxUni, a, c)
		}
	}
	mq.a, mq.c = a, c
}

// decodeBlock runs the coding passes of cb; the result is in t.val (w*h, with one
// fractional bit).
func (t *blockDecoder) decodeBlock(cb *codeBlock, b *band, style byte, roi int) error {
	w, h := cb.x1-cb.x0, cb.y1-cb.y0
	t.reset(w, h)
	t.orient = b.orient
	t.vc = style&cbVCausal != 0
	numbps := b.mb - cb.zbp
	bpno := roi + numbps
	if bpno >= 31 {
		return unsupported("code-block with %d bit-planes (at most 30)", bpno)
	}
	t.mq.resetContexts()
	// A damaged stream can put a cleanup pass in a raw segment, which then reads the
	// arithmetic decoder: it must hold a valid state (A never zero) even so.
	t.mq.init(nil)
	pass := 2
	pos := 0
	for _, sg := range cb.segs {
		if pos+sg.length > len(cb.data) {
			return fmt.Errorf("%w: code-block segment past its data", ErrTruncated)
		}
		seg := cb.data[pos : pos+sg.length]
		pos += sg.length
		t.useRaw = style&cbBypass != 0 && bpno <= numbps-4 && pass < 2
		if t.useRaw {
			t.raw.init(seg)
		} else {
			t.mq.init(seg)
		}
		for k := 0; k < sg.passes && bpno >= 1; k++ {
			switch pass {
			case 0:
				t.sigPass(bpno)
			case 1:
				t.refPass(bpno)
			case 2:
				t.cleanPass(bpno, style&cbSegSym != 0)
			}
			if style&cbReset != 0 && !t.useRaw {
				t.mq.resetContexts()
			}
			if pass++; pass == 3 {
				pass = 0
				bpno--
			}
		}
	}
	for y := 0; y < h; y++ {
		j := (y/4+1)*t.sw + 1
		fr := t.flags[j : j+w]
		vr := t.val[y*w : y*w+w]
		sh := uint(16 * (y & 3))
		for x, col := range fr {
			if col>>sh&fNeg != 0 {
				vr[x] = -vr[x]
			}
		}
	}
	if roi > 0 {
		thresh := int32(1) << uint(roi)
		for i, v := range t.val {
			m := v
			if m < 0 {
				m = -m
			}
			if m >= thresh {
				m >>= uint(roi)
				if v < 0 {
					m = -m
				}
				t.val[i] = m
			}
		}
	}
	return nil
}
