package jpeg2000

import (
	"fmt"
	"math/bits"
	"sync"
)

// The HT block decoder (ITU-T T.814 clause 7). A code-block holds one HT set: a
// cleanup pass, which codes every magnitude bit down to bit-plane p, then
// optionally a SigProp and a MagRef pass for bit-plane p-1. The result goes into
// blockDecoder.val in the form tier 1 leaves it (one fractional bit, the
// reconstruction at the middle of the interval), so that dequantisation and the
// wavelets are shared with Part 1.

// cbHT is the HT bit of the code-block style (T.814 Table A.4); cbHTMixed lets
// code-blocks choose between HT and Part 1 coding, which is not supported.
const (
	cbHT      = 0x40
	cbHTMixed = 0x80
)

// htVLC[0] and htVLC[1] map (context << 7 | next 7 VLC bits) to a decoded quad:
// codeword length in bits 0-2, u_off in bit 3, rho in bits 4-7, e_1 in bits
// 8-11 and e_k in bits 12-15. Zero means no codeword (never valid).
var htVLC [2][1024]uint16

func init() {
	for t, tbl := range [][][7]uint8{htVLCInit[:], htVLCNext[:]} {
		for _, e := range tbl {
			cq, rho, uoff, ek, e1, cwd, n := e[0], e[1], e[2], e[3], e[4], e[5], e[6]
			for v := 0; v < 128; v++ {
				if v&(1<<n-1) == int(cwd) {
					htVLC[t][int(cq)<<7|v] = uint16(n) | uint16(uoff)<<3 | uint16(rho)<<4 | uint16(e1)<<8 | uint16(ek)<<12
				}
			}
		}
	}
}

// htScratch is the per-goroutine state of the HT decoder beyond blockDecoder's.
type htScratch struct {
	sig         []uint8 // 1: significant after cleanup, 2: made significant by SigProp
	prevE, curE []uint8 // exponents of the bottom rows of the quad rows, offset by one column
}

var htPool = sync.Pool{New: func() any { return new(htScratch) }}

// decodeCodeBlock decodes cb with the HT block decoder or the Part 1 one, as the
// code-block style says.
func (t *blockDecoder) decodeCodeBlock(cb *codeBlock, b *band, style byte, roi int) error {
	if style&cbHT == 0 {
		return t.decodeBlock(cb, b, style, roi)
	}
	return t.decodeHTBlock(cb, b, style, roi)
}

func (t *blockDecoder) decodeHTBlock(cb *codeBlock, b *band, style byte, roi int) error {
	w, h := cb.x1-cb.x0, cb.y1-cb.y0
	t.reset(w, h)
	if roi != 0 {
		return unsupported("region of interest (RGN) with HT code-blocks")
	}
	if len(cb.segs) == 0 || cb.segs[0].length == 0 || b.mb <= 0 {
		return nil // nothing coded; OpenJPEG too leaves zeros for a band without bit-planes
	}
	if b.mb > 29 {
		return unsupported("HT code-block with %d magnitude bit-planes (at most 29)", b.mb)
	}
	// cb.zbp counts the missing MSBs and the placeholder passes (see readHTLengths):
	// the cleanup pass ends at bit-plane p.
	p := b.mb - cb.zbp - 1
	if p < 0 {
		return malformed("HT code-block with %d missing bit-planes of %d", cb.zbp, b.mb)
	}
	lcup := cb.segs[0].length
	passes := 1
	lref := 0
	if len(cb.segs) > 1 {
		passes += cb.segs[1].passes
		lref = cb.segs[1].length
	}
	if lcup+lref > len(cb.data) {
		return fmt.Errorf("%w: HT code-block segments of %d bytes hold %d", ErrTruncated, lcup+lref, len(cb.data))
	}
	// As OpenJPEG and OpenJPH: refinement passes without bytes, or below
	// bit-plane 0, are ignored.
	if lref == 0 || p == 0 {
		passes = 1
	}
	sc := htPool.Get().(*htScratch)
	defer htPool.Put(sc)
	if cap(sc.sig) < w*h {
		sc.sig = make([]uint8, w*h)
	}
	sc.sig = sc.sig[:w*h]
	clear(sc.sig)
	if err := t.htCleanup(sc, cb.data[:lcup], w, h, p, cb.zbp); err != nil {
		return err
	}
	if passes > 1 {
		seg := cb.data[:lcup+lref]
		t.htSigProp(sc, seg[lcup:], w, h, p, style&cbVCausal != 0)
		if passes > 2 {
			t.htMagRef(sc, seg, lcup, lref, w, h, p)
		}
	}
	return nil
}

// uvlcPrefix[next 3 bits] gives the U-VLC prefix length (bits 0-1), the suffix
// length (bits 2-4) and the base of u (bits 5-7) (T.814 Table 3).
var uvlcPrefix = [8]uint8{
	3 | 5<<2 | 5<<5, 1 | 0<<2 | 1<<5, 2 | 0<<2 | 2<<5, 1 | 0<<2 | 1<<5,
	3 | 1<<2 | 3<<5, 1 | 0<<2 | 1<<5, 2 | 0<<2 | 2<<5, 1 | 0<<2 | 1<<5,
}

// decodeUVLC decodes the unsigned residuals u of a quad pair whose u_off bits are
// mode (bit 0 first quad, bit 1 second); mode 4 is both with a MEL event of 1 in
// the first quad row. It returns u+1 for each quad and the bits consumed: the
// prefixes of both quads come first, then their suffixes.
func decodeUVLC(vlc uint32, mode int, initial bool) (u0, u1 uint32, used uint) {
	if mode == 0 {
		return 1, 1, 0
	}
	d1 := uvlcPrefix[vlc&7]
	used = uint(d1 & 3)
	vlc >>= d1 & 3
	if mode < 3 {
		n := uint(d1>>2) & 7
		v := uint32(d1>>5) + vlc&(1<<n-1) + 1
		if mode == 1 {
			return v, 1, used + n
		}
		return 1, v, used + n
	}
	if mode == 3 && initial && d1&3 > 2 {
		// In the first row a first u above 2 leaves the second at 1 or 2, in one bit.
		u1 = vlc&1 + 2
		vlc >>= 1
		n := uint(d1>>2) & 7
		return uint32(d1>>5) + vlc&(1<<n-1) + 1, u1, used + 1 + n
	}
	d2 := uvlcPrefix[vlc&7]
	used += uint(d2 & 3)
	vlc >>= d2 & 3
	base := uint32(1)
	if mode == 4 {
		base = 3
	}
	n1, n2 := uint(d1>>2)&7, uint(d2>>2)&7
	u0 = uint32(d1>>5) + vlc&(1<<n1-1) + base
	vlc >>= n1
	u1 = uint32(d2>>5) + vlc&(1<<n2-1) + base
	return u0, u1, used + n1 + n2
}

// htCleanup decodes the cleanup pass of the segment seg (T.814 7.3).
func (t *blockDecoder) htCleanup(sc *htScratch, seg []byte, w, h, p, missing int) error {
	lcup := len(seg)
	if lcup < 2 {
		return malformed("HT cleanup segment of %d bytes", lcup)
	}
	scup := int(seg[lcup-1])<<4 | int(seg[lcup-2]&0xF)
	if scup < 2 || scup > lcup || scup > 4079 {
		return malformed("HT cleanup segment of %d bytes declares %d bytes of MEL and VLC", lcup, scup)
	}
	var mel htMEL
	var vlc htRev
	var ms htFwd
	mel.init(seg, lcup, scup)
	vlc.initVLC(seg, lcup, scup)
	ms.init(seg[:lcup-scup], 0xFF)

	if cap(sc.prevE) < w+3 {
		sc.prevE = make([]uint8, w+3)
		sc.curE = make([]uint8, w+3)
	}
	prevE, curE := sc.prevE[:w+3], sc.curE[:w+3]
	clear(prevE)
	maxU := uint32(missing + 2)
	sig, val := sc.sig, t.val
	nq := (w + 1) / 2
	for y := 0; y < h; y += 2 {
		initial := y == 0
		clear(curE)
		tbl := &htVLC[1]
		if initial {
			tbl = &htVLC[0]
		}
		c := 0
		for q0 := 0; q0 < nq; q0 += 2 {
			var qi [2]uint16
			var ctx [2]int
			for k := 0; k < 2; k++ {
				q := q0 + k
				if q >= nq {
					break
				}
				x := 2 * q
				if !initial {
					// Context from the row above (columns x-1..x+2, E offset by one) and,
					// in bit 1, the quad to the left.
					c |= int(min(1, prevE[x]|prevE[x+1]))
					c |= int(min(1, prevE[x+2]|prevE[x+3])) << 2
				}
				ctx[k] = c
				e := tbl[c<<7|int(vlc.peek()&0x7F)]
				if c == 0 && mel.event() == 0 {
					e = 0
				}
				vlc.skip(uint(e & 7))
				qi[k] = e
				rho := int(e>>4) & 0xF
				if initial {
					c = (rho & 1) | (rho>>1)&1 | (rho>>2&1)<<1 | (rho>>3&1)<<2
				} else {
					c = ((rho>>2 | rho>>3) & 1) << 1
				}
			}
			mode := int(qi[0]>>3&1) | int(qi[1]>>3&1)<<1
			if initial && mode == 3 && mel.event() == 1 {
				mode = 4
			}
			u0, u1, used := decodeUVLC(vlc.peek(), mode, initial)
			vlc.skip(used)
			U := [2]uint32{u0, u1}
			for k := 0; k < 2; k++ {
				q := q0 + k
				if q >= nq {
					break
				}
				x := 2 * q
				rho := int(qi[k]>>4) & 0xF
				if !initial && rho&(rho-1) != 0 {
					// kappa = max(1, E_max - 1) over the quad's neighbours above.
					em := max(prevE[x], prevE[x+1], prevE[x+2], prevE[x+3])
					if em > 2 {
						U[k] += uint32(em) - 2
					}
				}
				if U[k] > maxU {
					return malformed("HT quad exponent bound %d above %d", U[k], maxU)
				}
				if rho == 0 {
					continue
				}
				valid := 0xF
				if x+1 >= w {
					valid &^= 0xC
				}
				if y+1 >= h {
					valid &^= 0xA
				}
				if rho&^valid != 0 {
					return malformed("HT quad significant outside its code-block")
				}
				e1, ek := int(qi[k]>>8)&0xF, int(qi[k]>>12)&0xF
				i0 := y*w + x
				for r := rho; r != 0; r &= r - 1 {
					n := bits.TrailingZeros(uint(r))
					m := uint(U[k]) - uint(ek>>n&1)
					v := ms.take(m) | uint32(e1>>n&1)<<m
					mag := int32((v|1)+2) << uint(p)
					i := i0 + n>>1 + (n&1)*w
					sig[i] = 1
					if v&1 != 0 {
						mag = -mag
					}
					val[i] = mag
					if n&1 == 1 {
						curE[x+n>>1+1] = uint8(bits.Len32(v | 1))
					}
				}
			}
		}
		prevE, curE = curE, prevE
	}
	return nil
}

// htSigProp decodes the SigProp pass for bit-plane p-1 (T.814 7.4): in stripes
// of four rows and groups of four columns, a sample not yet significant with a
// significant neighbour gets a bit, and the group's new samples then get signs.
func (t *blockDecoder) htSigProp(sc *htScratch, seg []byte, w, h, p int, causal bool) {
	var r htFwd
	r.init(seg, 0)
	sig, val := sc.sig, t.val
	v0 := int32(3) << uint(p-1)
	var fresh [16]int
	for y0 := 0; y0 < h; y0 += 4 {
		y1 := min(y0+4, h)
		for x0 := 0; x0 < w; x0 += 4 {
			nf := 0
			for x := x0; x < min(x0+4, w); x++ {
				for y := y0; y < y1; y++ {
					i := y*w + x
					if sig[i] != 0 || !htEligible(sig, w, h, x, y, y0, causal) {
						continue
					}
					if r.take(1) == 1 {
						sig[i] = 2
						fresh[nf] = i
						nf++
					}
				}
			}
			for _, i := range fresh[:nf] {
				if r.take(1) == 1 {
					val[i] = -v0
				} else {
					val[i] = v0
				}
			}
		}
	}
}

// htEligible: the sample at (x, y), in the stripe starting at row y0, has a
// neighbour significant after cleanup or made significant earlier in this
// SigProp pass. Samples are marked as they are decoded, so every mark found is
// one the standard's scan order has already reached.
func htEligible(sig []uint8, w, h, x, y, y0 int, causal bool) bool {
	for ny := max(0, y-1); ny <= min(h-1, y+1); ny++ {
		if causal && ny == y0+4 {
			continue // vertically causal: the next stripe is not looked at
		}
		row := sig[ny*w:]
		for nx := max(0, x-1); nx <= min(w-1, x+1); nx++ {
			if row[nx] != 0 {
				return true
			}
		}
	}
	return false
}

// htMagRef decodes the MagRef pass (T.814 7.5): one bit for bit-plane p-1 of each
// sample significant after cleanup, in stripe order.
func (t *blockDecoder) htMagRef(sc *htScratch, seg []byte, lcup, lref, w, h, p int) {
	var r htRev
	r.initMagRef(seg, lcup, lref)
	sig, val := sc.sig, t.val
	half := int32(1) << uint(p-1)
	for y0 := 0; y0 < h; y0 += 4 {
		y1 := min(y0+4, h)
		for x := 0; x < w; x++ {
			for y := y0; y < y1; y++ {
				i := y*w + x
				if sig[i] != 1 {
					continue
				}
				bit := int32(r.peek() & 1)
				r.skip(1)
				m := val[i]
				neg := m < 0
				if neg {
					m = -m
				}
				m = m ^ (1-bit)<<uint(p) | half
				if neg {
					m = -m
				}
				val[i] = m
			}
		}
	}
}
