package imaging

import (
	"encoding/binary"
	"fmt"
)

// This file decodes JPEG-LS (ITU-T T.87), lossless and near-lossless, all three
// interleave modes, 2..16 bits. It follows the standard's decoding procedures (Annex A)
// and is checked against dcmtk's dcmdjpls. Mapping tables, colour transforms and
// restart markers are rejected.

type jlsParams struct {
	maxval, t1, t2, t3, reset int32
	near, rng, qbpp, limit    int32
}

func jlsClamp(i, j, maxval int32) int32 {
	if i > maxval || i < j {
		return j
	}
	return i
}

func jlsDefaults(maxval, near int32) (t1, t2, t3 int32) {
	const b1, b2, b3 = 3, 7, 21
	if maxval >= 128 {
		f := (min(maxval, 4095) + 128) / 256
		t1 = jlsClamp(f*(b1-2)+2+3*near, near+1, maxval)
		t2 = jlsClamp(f*(b2-3)+3+5*near, t1, maxval)
		t3 = jlsClamp(f*(b3-4)+4+7*near, t2, maxval)
		return
	}
	f := 256 / (maxval + 1)
	t1 = jlsClamp(max(2, b1/f+3*near), near+1, maxval)
	t2 = jlsClamp(max(3, b2/f+5*near), t1, maxval)
	t3 = jlsClamp(max(4, b3/f+7*near), t2, maxval)
	return
}

func ceilLog2(v int32) int32 {
	n := int32(0)
	for int64(1)<<uint(n) < int64(v) {
		n++
	}
	return n
}

// jlsReader reads bits with JPEG-LS marker stuffing: after 0xFF only 7 bits follow.
type jlsReader struct {
	b   []byte
	pos int
	acc uint64
	n   uint
}

func (r *jlsReader) fill() {
	for r.n <= 56 {
		if r.pos >= len(r.b) {
			r.n += 8 // past the end: zeros
			continue
		}
		c := r.b[r.pos]
		if c == 0xFF && r.pos+1 < len(r.b) && r.b[r.pos+1]&0x80 != 0 {
			r.n += 8 // a marker: feed zeros
			continue
		}
		bits := uint(8)
		if r.pos > 0 && r.b[r.pos-1] == 0xFF {
			bits = 7
		}
		r.acc |= uint64(c&(1<<bits-1)) << (64 - r.n - bits)
		r.n += bits
		r.pos++
	}
}

func (r *jlsReader) bit() int32 {
	if r.n == 0 {
		r.fill()
	}
	v := int32(r.acc >> 63)
	r.acc <<= 1
	r.n--
	return v
}

func (r *jlsReader) read(k int32) int32 {
	if k == 0 {
		return 0
	}
	if r.n < uint(k) {
		r.fill()
	}
	v := int32(r.acc >> (64 - uint(k)))
	r.acc <<= uint(k)
	r.n -= uint(k)
	return v
}

// unary counts zero bits before the next one, up to max.
func (r *jlsReader) unary(max int32) (int32, error) {
	n := int32(0)
	for r.bit() == 0 {
		n++
		if n > max {
			return 0, fmt.Errorf("%w: jpeg-ls code too long", ErrMalformed)
		}
	}
	return n, nil
}

func (r *jlsReader) value(k, limit, qbpp int32) (int32, error) {
	hb, err := r.unary(limit)
	if err != nil {
		return 0, err
	}
	if hb >= limit-(qbpp+1) {
		return r.read(qbpp) + 1, nil
	}
	return hb<<uint(k) | r.read(k), nil
}

var jlsJ = [32]int32{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13, 14, 15}

type jlsCtx struct{ a, b, c, n int32 }

type jlsRunCtx struct{ a, n, nn, ritype int32 }

type jlsScan struct {
	p      jlsParams
	r      *jlsReader
	ctx    [365]jlsCtx
	run    [2]jlsRunCtx
	runIdx int32
}

func newJLSScan(p jlsParams, r *jlsReader) *jlsScan {
	s := &jlsScan{p: p, r: r}
	a := max(2, (p.rng+32)/64)
	for i := range s.ctx {
		s.ctx[i] = jlsCtx{a: a, n: 1}
	}
	s.run[0] = jlsRunCtx{a: a, n: 1, ritype: 0}
	s.run[1] = jlsRunCtx{a: a, n: 1, ritype: 1}
	return s
}

func (s *jlsScan) quant(d int32) int32 {
	p := &s.p
	switch {
	case d <= -p.t3:
		return -4
	case d <= -p.t2:
		return -3
	case d <= -p.t1:
		return -2
	case d < -p.near:
		return -1
	case d <= p.near:
		return 0
	case d < p.t1:
		return 1
	case d < p.t2:
		return 2
	case d < p.t3:
		return 3
	}
	return 4
}

func (s *jlsScan) fix(v int32) int32 {
	p := &s.p
	if v < -p.near {
		v += p.rng * (2*p.near + 1)
	} else if v > p.maxval+p.near {
		v -= p.rng * (2*p.near + 1)
	}
	return min(max(v, 0), p.maxval)
}

func predict(ra, rb, rc int32) int32 {
	switch {
	case rc >= max(ra, rb):
		return min(ra, rb)
	case rc <= min(ra, rb):
		return max(ra, rb)
	}
	return ra + rb - rc
}

func (s *jlsScan) regular(qs, pred int32) (int32, error) {
	sign := int32(0)
	if qs < 0 {
		sign, qs = -1, -qs
	}
	c := &s.ctx[qs]
	k := int32(0)
	for c.n<<uint(k) < c.a {
		k++
		if k > 24 {
			return 0, fmt.Errorf("%w: jpeg-ls context out of range", ErrMalformed)
		}
	}
	px := pred + (c.c ^ sign - sign)
	px = min(max(px, 0), s.p.maxval)
	m, err := s.r.value(k, s.p.limit, s.p.qbpp)
	if err != nil {
		return 0, err
	}
	e := (m >> 1) ^ -(m & 1)
	if k == 0 && s.p.near == 0 && 2*c.b+c.n-1 < 0 {
		e = ^e
	}
	// context update (A.6)
	a := c.a + abs32(e)
	b := c.b + e*(2*s.p.near+1)
	n := c.n
	if n == s.p.reset {
		a, b, n = a>>1, b>>1, n>>1
	}
	n++
	c.a, c.n = a, n
	if b+n <= 0 {
		b += n
		if b <= -n {
			b = -n + 1
		}
		if c.c > -128 {
			c.c--
		}
	} else if b > 0 {
		b -= n
		if b > 0 {
			b = 0
		}
		if c.c < 127 {
			c.c++
		}
	}
	c.b = b
	e = e ^ sign - sign
	return s.fix(px + e*(2*s.p.near+1)), nil
}

func abs32(v int32) int32 {
	if v < 0 {
		return -v
	}
	return v
}

func (s *jlsScan) riError(c *jlsRunCtx) (int32, error) {
	temp := c.a + (c.n>>1)*c.ritype
	k := int32(0)
	for nst := c.n; nst < temp; k++ {
		nst <<= 1
		if k > 24 {
			return 0, fmt.Errorf("%w: jpeg-ls run context out of range", ErrMalformed)
		}
	}
	em, err := s.r.value(k, s.p.limit-jlsJ[s.runIdx]-1, s.p.qbpp)
	if err != nil {
		return 0, err
	}
	t := em + c.ritype
	mp := t&1 == 1
	abs := (t + t&1) / 2
	e := abs
	if (k != 0 || 2*c.nn >= c.n) == mp {
		e = -abs
	}
	if e < 0 {
		c.nn++
	}
	c.a += (em + 1 - c.ritype) >> 1
	if c.n == s.p.reset {
		c.a, c.n, c.nn = c.a>>1, c.n>>1, c.nn>>1
	}
	c.n++
	return e, nil
}

// runPixels decodes a run length (A.7.1) of at most left samples.
func (s *jlsScan) runPixels(left int) (int, error) {
	idx := 0
	for s.r.bit() == 1 {
		cnt := min(1<<uint(jlsJ[s.runIdx]), left-idx)
		idx += cnt
		if cnt == 1<<uint(jlsJ[s.runIdx]) {
			s.runIdx = min(31, s.runIdx+1)
		}
		if idx == left {
			break
		}
	}
	if idx != left && jlsJ[s.runIdx] > 0 {
		idx += int(s.r.read(jlsJ[s.runIdx]))
	}
	if idx > left {
		return 0, fmt.Errorf("%w: jpeg-ls run overruns the line", ErrMalformed)
	}
	return idx, nil
}

func sign32(v int32) int32 {
	if v < 0 {
		return -1
	}
	return 1
}

// line decodes one line of nc interleaved components (nc 1 for ILV 0/1, 3 for ILV 2).
// prev and cur have one padding sample-group on each side: index (x+1)*nc+c.
func (s *jlsScan) line(prev, cur []int32, w, nc int) error {
	at := func(l []int32, x, c int) int32 { return l[(x+1)*nc+c] }
	for c := 0; c < nc; c++ {
		prev[(w+1)*nc+c] = prev[w*nc+c]
		cur[c] = prev[nc+c]
	}
	var qs [3]int32
	for x := 0; x < w; {
		allZero := true
		for c := 0; c < nc; c++ {
			ra, rb, rc, rd := at(cur, x-1, c), at(prev, x, c), at(prev, x-1, c), at(prev, x+1, c)
			qs[c] = (s.quant(rd-rb)*9+s.quant(rb-rc))*9 + s.quant(rc-ra)
			if qs[c] != 0 {
				allZero = false
			}
		}
		if !allZero {
			for c := 0; c < nc; c++ {
				v, err := s.regular(qs[c], predict(at(cur, x-1, c), at(prev, x, c), at(prev, x-1, c)))
				if err != nil {
					return err
				}
				cur[(x+1)*nc+c] = v
			}
			x++
			continue
		}
		// run mode
		n, err := s.runPixels(w - x)
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			for c := 0; c < nc; c++ {
				cur[(x+i+1)*nc+c] = at(cur, x-1, c)
			}
		}
		end := x + n
		if end == w {
			break
		}
		for c := 0; c < nc; c++ {
			ra, rb := at(cur, end-1, c), at(prev, end, c)
			var v int32
			if nc == 1 && abs32(ra-rb) <= s.p.near {
				e, err := s.riError(&s.run[1])
				if err != nil {
					return err
				}
				v = s.fix(ra + e*(2*s.p.near+1))
			} else {
				e, err := s.riError(&s.run[0])
				if err != nil {
					return err
				}
				v = s.fix(rb + e*sign32(rb-ra)*(2*s.p.near+1))
			}
			cur[(end+1)*nc+c] = v
		}
		s.runIdx = max(0, s.runIdx-1)
		x = end + 1
	}
	return nil
}

// decodeJPEGLS decodes a JPEG-LS frame into rows*cols*spp samples, interleaved.
func decodeJPEGLS(b []byte, rows, cols, spp int) ([]int32, error) {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return nil, fmt.Errorf("%w: no start-of-image marker", ErrMalformed)
	}
	var prec, nf int
	var ids []int
	var preset [5]int32 // maxval, t1, t2, t3, reset (0 = default)
	var out []int32
	scans := 0
	k := 2
	for {
		m, p, end, err := nextSegment(b, k, false)
		if err != nil {
			return nil, err
		}
		if m == 0xD9 {
			break
		}
		switch m {
		case 0xF7: // SOF55
			if len(p) < 6 {
				return nil, fmt.Errorf("%w: short frame header", ErrMalformed)
			}
			prec = int(p[0])
			h, w := int(binary.BigEndian.Uint16(p[1:])), int(binary.BigEndian.Uint16(p[3:]))
			nf = int(p[5])
			if prec < 2 || prec > 16 || w != cols || h != rows || nf != spp || len(p) < 6+3*nf {
				return nil, fmt.Errorf("%w: jpeg-ls frame %dx%dx%d at %d bits, header says %dx%dx%d", ErrMalformed, w, h, nf, prec, cols, rows, spp)
			}
			for c := 0; c < nf; c++ {
				ids = append(ids, int(p[6+3*c]))
				if p[7+3*c] != 0x11 {
					return nil, fmt.Errorf("%w: subsampled jpeg-ls", ErrUnsupported)
				}
			}
			out = make([]int32, rows*cols*spp)
		case 0xF8: // LSE
			if len(p) >= 11 && p[0] == 1 {
				for i := 0; i < 5; i++ {
					preset[i] = int32(binary.BigEndian.Uint16(p[1+2*i:]))
				}
			} else if len(p) > 0 && p[0] != 1 {
				return nil, fmt.Errorf("%w: jpeg-ls mapping tables or extensions", ErrUnsupported)
			}
		case 0xDD:
			if len(p) >= 2 && binary.BigEndian.Uint16(p) != 0 {
				return nil, fmt.Errorf("%w: jpeg-ls restart intervals", ErrUnsupported)
			}
		case 0xDA:
			if out == nil {
				return nil, fmt.Errorf("%w: scan before frame header", ErrMalformed)
			}
			ns := int(p[0])
			if ns < 1 || len(p) < 1+2*ns+3 {
				return nil, fmt.Errorf("%w: bad scan header", ErrMalformed)
			}
			var comps []int
			for i := 0; i < ns; i++ {
				idx := -1
				for c, id := range ids {
					if id == int(p[1+2*i]) {
						idx = c
					}
				}
				if idx < 0 || p[2+2*i] != 0 {
					return nil, fmt.Errorf("%w: jpeg-ls scan component or mapping table", ErrUnsupported)
				}
				comps = append(comps, idx)
			}
			near, ilv, al := int32(p[1+2*ns]), int(p[2+2*ns]), p[3+2*ns]&15
			if al != 0 || ilv > 2 || (ilv != 0 && ns < 2) {
				return nil, fmt.Errorf("%w: jpeg-ls interleave %d, point transform %d", ErrUnsupported, ilv, al)
			}
			var jp jlsParams
			jp.maxval = int32(1)<<uint(prec) - 1
			if preset[0] != 0 {
				jp.maxval = preset[0]
			}
			jp.near = near
			if near > min(255, jp.maxval/2) {
				return nil, fmt.Errorf("%w: jpeg-ls near %d", ErrMalformed, near)
			}
			jp.t1, jp.t2, jp.t3 = jlsDefaults(jp.maxval, near)
			if preset[1] != 0 {
				jp.t1 = preset[1]
			}
			if preset[2] != 0 {
				jp.t2 = preset[2]
			}
			if preset[3] != 0 {
				jp.t3 = preset[3]
			}
			jp.reset = 64
			if preset[4] != 0 {
				jp.reset = preset[4]
			}
			jp.rng = (jp.maxval+2*near)/(2*near+1) + 1
			jp.qbpp = ceilLog2(jp.rng)
			bpp := max(2, ceilLog2(jp.maxval+1))
			jp.limit = 2 * (bpp + max(8, bpp))
			r := &jlsReader{b: b, pos: end}
			if err := jlsDecodeScan(jp, r, out, comps, ilv, rows, cols, spp); err != nil {
				return nil, err
			}
			scans++
			k = r.pos
			for k+1 < len(b) && !(b[k] == 0xFF && b[k+1] >= 0x80) {
				k++
			}
			continue
		}
		k = end
	}
	if scans == 0 {
		return nil, fmt.Errorf("%w: no jpeg-ls scan", ErrTruncated)
	}
	return out, nil
}

func jlsDecodeScan(jp jlsParams, r *jlsReader, out []int32, comps []int, ilv, rows, cols, spp int) error {
	nc, groups := 1, len(comps) // samples per line element, line groups per row
	if ilv == 2 {
		nc, groups = len(comps), 1
	}
	s := newJLSScan(jp, r)
	runIdx := make([]int32, groups)
	prev := make([][]int32, groups)
	cur := make([][]int32, groups)
	for g := range prev {
		prev[g] = make([]int32, (cols+2)*nc)
		cur[g] = make([]int32, (cols+2)*nc)
	}
	if ilv == 0 && len(comps) > 1 {
		// Non-interleaved with several components in one scan: one plane after another.
		for _, c := range comps {
			if err := jlsDecodeScan(jp, r, out, []int{c}, 0, rows, cols, spp); err != nil {
				return err
			}
		}
		return nil
	}
	for y := 0; y < rows; y++ {
		for g := 0; g < groups; g++ {
			s.runIdx = runIdx[g]
			if err := s.line(prev[g], cur[g], cols, nc); err != nil {
				return err
			}
			runIdx[g] = s.runIdx
			for x := 0; x < cols; x++ {
				for c := 0; c < nc; c++ {
					comp := comps[g]
					if nc > 1 {
						comp = comps[c]
					}
					out[(y*cols+x)*spp+comp] = cur[g][(x+1)*nc+c]
				}
			}
			prev[g], cur[g] = cur[g], prev[g]
		}
	}
	return nil
}
