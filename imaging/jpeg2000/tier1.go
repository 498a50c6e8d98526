package jpeg2000

import "fmt"

// Tier-1 (Annex D): the three coding passes of EBCOT over one code-block.
//
// Coefficients are kept with one extra fractional bit, so that a coefficient found
// significant at bit-plane p is reconstructed at the middle of its interval
// (1.5 * 2^p), as OpenJPEG does; the reversible path divides by two afterwards.

const (
	fSig     = 1
	fNeg     = 2
	fVisit   = 4
	fRefined = 8
	fNbr     = 16 // some neighbour (as the contexts see it) is significant
)

// zcTable[orient][h*15+v*5+d] is the zero-coding context (Table D.1).
var zcTable [4][45]uint8

func init() {
	for o := 0; o < 4; o++ {
		for h := 0; h < 3; h++ {
			for v := 0; v < 3; v++ {
				for d := 0; d < 5; d++ {
					zcTable[o][h*15+v*5+d] = zcContext(o, h, v, d)
				}
			}
		}
	}
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

type blockDecoder struct {
	w, h   int
	sw     int // stride of flags: w+2
	flags  []uint8
	val    []int32
	orient int
	vc     bool
	mq     mqDecoder
	raw    rawDecoder
	useRaw bool
}

func (t *blockDecoder) reset(w, h int) {
	t.w, t.h, t.sw = w, h, w+2
	n := (w + 2) * (h + 2)
	if cap(t.flags) < n {
		t.flags = make([]uint8, n)
	}
	t.flags = t.flags[:n]
	clear(t.flags)
	if cap(t.val) < w*h {
		t.val = make([]int32, w*h)
	}
	t.val = t.val[:w*h]
	clear(t.val)
}

// neighbours gives the significant-neighbour counts of the flag at i (row y).
func (t *blockDecoder) neighbours(i, y int) (h, v, d int) {
	f := t.flags
	sw := t.sw
	h = int(f[i-1]&fSig) + int(f[i+1]&fSig)
	v = int(f[i-sw] & fSig)
	d = int(f[i-sw-1]&fSig) + int(f[i-sw+1]&fSig)
	if !t.vc || y&3 != 3 {
		v += int(f[i+sw] & fSig)
		d += int(f[i+sw-1]&fSig) + int(f[i+sw+1]&fSig)
	}
	return
}

func (t *blockDecoder) zc(i, y int) int {
	h, v, d := t.neighbours(i, y)
	return int(zcTable[t.orient][h*15+v*5+d])
}

func contrib(f uint8) int {
	if f&fSig == 0 {
		return 0
	}
	if f&fNeg != 0 {
		return -1
	}
	return 1
}

func clamp1(v int) int {
	return max(-1, min(1, v))
}

// decodeSign decodes the sign of the coefficient at flag index i (Table D.3).
func (t *blockDecoder) decodeSign(i, y int, raw bool) int {
	if raw {
		return t.raw.bit()
	}
	f := t.flags
	hc := clamp1(contrib(f[i-1]) + contrib(f[i+1]))
	vs := contrib(f[i-t.sw])
	if !t.vc || y&3 != 3 {
		vs += contrib(f[i+t.sw])
	}
	vc := clamp1(vs)
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
	return t.mq.decode(ctx) ^ xor
}

func (t *blockDecoder) setSig(i, y, x int, neg int, mag int32) {
	f, sw := t.flags, t.sw
	f[i-1] |= fNbr
	f[i+1] |= fNbr
	f[i+sw-1] |= fNbr
	f[i+sw] |= fNbr
	f[i+sw+1] |= fNbr
	// In vertically causal mode the row above a stripe does not see this one.
	if !t.vc || y&3 != 0 {
		f[i-sw-1] |= fNbr
		f[i-sw] |= fNbr
		f[i-sw+1] |= fNbr
	}
	if neg != 0 {
		t.flags[i] |= fSig | fNeg
		t.val[y*t.w+x] = -mag
	} else {
		t.flags[i] |= fSig
		t.val[y*t.w+x] = mag
	}
}

func (t *blockDecoder) sigPass(bp int) {
	oph := int32(1)<<uint(bp) | int32(1)<<uint(bp)>>1
	for y0 := 0; y0 < t.h; y0 += 4 {
		for x := 0; x < t.w; x++ {
			for y := y0; y < y0+4 && y < t.h; y++ {
				i := (y+1)*t.sw + x + 1
				if t.flags[i]&(fSig|fVisit|fNbr) != fNbr {
					continue
				}
				h, v, d := t.neighbours(i, y)
				var bit int
				if t.useRaw {
					bit = t.raw.bit()
				} else {
					bit = t.mq.decode(int(zcTable[t.orient][h*15+v*5+d]))
				}
				if bit != 0 {
					t.setSig(i, y, x, t.decodeSign(i, y, t.useRaw), oph)
				}
				t.flags[i] |= fVisit
			}
		}
	}
}

func (t *blockDecoder) refPass(bp int) {
	half := int32(1) << uint(bp) >> 1
	for y0 := 0; y0 < t.h; y0 += 4 {
		for x := 0; x < t.w; x++ {
			for y := y0; y < y0+4 && y < t.h; y++ {
				i := (y+1)*t.sw + x + 1
				f := t.flags[i]
				if f&(fSig|fVisit) != fSig {
					continue
				}
				var bit int
				if t.useRaw {
					bit = t.raw.bit()
				} else {
					ctx := 16
					if f&fRefined == 0 {
						ctx = 14
						if f&fNbr != 0 {
							ctx = 15
						}
					}
					bit = t.mq.decode(ctx)
				}
				k := y*t.w + x
				delta := -half
				if bit != 0 {
					delta = half
				}
				if t.val[k] < 0 {
					t.val[k] -= delta
				} else {
					t.val[k] += delta
				}
				t.flags[i] |= fRefined
			}
		}
	}
}

func (t *blockDecoder) cleanPass(bp int, segSym bool) {
	oph := int32(1)<<uint(bp) | int32(1)<<uint(bp)>>1
	for y0 := 0; y0 < t.h; y0 += 4 {
		for x := 0; x < t.w; x++ {
			y := y0
			if y0+4 <= t.h && t.runEligible(x, y0) {
				if t.mq.decode(ctxRL) == 0 {
					continue
				}
				r := t.mq.decode(ctxUni) << 1
				r |= t.mq.decode(ctxUni)
				y = y0 + r
				i := (y+1)*t.sw + x + 1
				t.setSig(i, y, x, t.decodeSign(i, y, false), oph)
				y++
			}
			for ; y < y0+4 && y < t.h; y++ {
				i := (y+1)*t.sw + x + 1
				if t.flags[i]&(fSig|fVisit) != 0 {
					continue
				}
				if t.mq.decode(t.zc(i, y)) != 0 {
					t.setSig(i, y, x, t.decodeSign(i, y, false), oph)
				}
			}
		}
	}
	for i := range t.flags {
		t.flags[i] &^= fVisit
	}
	if segSym {
		for k := 0; k < 4; k++ {
			t.mq.decode(ctxUni)
		}
	}
}

// runEligible: the four coefficients of a stripe column are insignificant, not yet
// visited, and have no significant neighbour.
func (t *blockDecoder) runEligible(x, y0 int) bool {
	for y := y0; y < y0+4; y++ {
		if t.flags[(y+1)*t.sw+x+1]&(fSig|fVisit|fNbr) != 0 {
			return false
		}
	}
	return true
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
