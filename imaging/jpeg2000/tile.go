package jpeg2000

import "math"

// Code-block style bits (Table A.19). Predictable termination (0x10) asks nothing
// of a decoder.
const (
	cbBypass  = 0x01
	cbReset   = 0x02
	cbTermAll = 0x04
	cbVCausal = 0x08
	cbSegSym  = 0x20
)

// segment is a run of coding passes coded as one terminated codeword.
type segment struct {
	passes, maxPasses, length int
}

type codeBlock struct {
	x0, y0, x1, y1 int // band coordinates
	included       bool
	lblock         int
	zbp            int
	passes         int
	segs           []segment
	data           []byte
}

// precinctBand is the part of one band inside one precinct.
type precinctBand struct {
	cw, ch    int // code-blocks across and down
	blocks    []codeBlock
	incl, zbp *tagTree
}

type band struct {
	orient         int // 0 LL, 1 HL, 2 LH, 3 HH
	x0, y0, x1, y1 int
	offX, offY     int // where the band's coefficients sit in the tile-component array
	mb             int // magnitude bit-planes
	step           float32
	cbw, cbh       int // code-block size exponents, clipped to the precinct
}

type resolution struct {
	x0, y0, x1, y1 int
	ppx, ppy       int
	px0, py0       int // index of the first precinct on the precinct grid
	pw, ph         int
	bands          []band
	precincts      [][]precinctBand // [precinct][band], built on first use
}

type tileComp struct {
	x0, y0, x1, y1 int
	cs             *codingStyle
	res            []resolution
	roi            int
}

func ceilDivS(a, b int) int {
	if a >= 0 {
		return (a + b - 1) / b
	}
	return -((-a) / b)
}

func floorDivS(a, b int) int {
	if a >= 0 {
		return a / b
	}
	return -((-a + b - 1) / b)
}

// buildTileComp lays out resolutions, bands and precinct grids of one tile-component.
func buildTileComp(s *siz, tx0, ty0, tx1, ty1 int, c int, cs *codingStyle, q *quant, roi int) (*tileComp, error) {
	comp := s.comps[c]
	tc := &tileComp{
		x0: ceilDiv(tx0, comp.dx), y0: ceilDiv(ty0, comp.dy),
		x1: ceilDiv(tx1, comp.dx), y1: ceilDiv(ty1, comp.dy),
		cs: cs, roi: roi,
	}
	nl := cs.levels
	tc.res = make([]resolution, nl+1)
	for r := 0; r <= nl; r++ {
		d := 1 << uint(nl-r)
		res := &tc.res[r]
		res.x0, res.y0 = ceilDiv(tc.x0, d), ceilDiv(tc.y0, d)
		res.x1, res.y1 = ceilDiv(tc.x1, d), ceilDiv(tc.y1, d)
		res.ppx, res.ppy = cs.ppx[r], cs.ppy[r]
		if res.x1 > res.x0 && res.y1 > res.y0 {
			res.px0 = floorDivS(res.x0, 1<<uint(res.ppx))
			res.py0 = floorDivS(res.y0, 1<<uint(res.ppy))
			res.pw = ceilDivS(res.x1, 1<<uint(res.ppx)) - res.px0
			res.ph = ceilDivS(res.y1, 1<<uint(res.ppy)) - res.py0
		}
		cbw, cbh := cs.cbw, cs.cbh
		if r == 0 {
			cbw, cbh = min(cbw, res.ppx), min(cbh, res.ppy)
			b, err := makeBand(s, c, cs, q, 0, nl, tc, 0, 0)
			if err != nil {
				return nil, err
			}
			b.cbw, b.cbh = cbw, cbh
			res.bands = []band{b}
			continue
		}
		cbw, cbh = min(cbw, res.ppx-1), min(cbh, res.ppy-1)
		prev := &tc.res[r-1]
		for o := 1; o <= 3; o++ {
			offX, offY := 0, 0
			if o&1 != 0 {
				offX = prev.x1 - prev.x0
			}
			if o&2 != 0 {
				offY = prev.y1 - prev.y0
			}
			b, err := makeBand(s, c, cs, q, o, nl-r+1, tc, offX, offY)
			if err != nil {
				return nil, err
			}
			b.cbw, b.cbh = cbw, cbh
			res.bands = append(res.bands, b)
		}
	}
	return tc, nil
}

func makeBand(s *siz, c int, cs *codingStyle, q *quant, orient, nb int, tc *tileComp, offX, offY int) (band, error) {
	b := band{orient: orient, offX: offX, offY: offY}
	d := 1 << uint(nb)
	xo, yo := 0, 0
	if orient&1 != 0 {
		xo = d / 2
	}
	if orient&2 != 0 {
		yo = d / 2
	}
	b.x0, b.y0 = ceilDivS(tc.x0-xo, d), ceilDivS(tc.y0-yo, d)
	b.x1, b.y1 = ceilDivS(tc.x1-xo, d), ceilDivS(tc.y1-yo, d)
	// Step-size index: 0 for LL, then three per decomposition level from the lowest.
	idx := 0
	if orient > 0 {
		idx = 3*(cs.levels-nb) + orient
	}
	var expn, mant int
	if q.style == 1 {
		expn, mant = q.exp[0]-cs.levels+nb, q.mant[0]
		if orient == 0 {
			expn = q.exp[0]
		}
		if expn < 0 {
			return b, malformed("derived quantisation exponent %d", expn)
		}
	} else {
		if idx >= len(q.exp) {
			return b, malformed("quantisation gives %d step sizes, band %d needs more", len(q.exp), idx)
		}
		expn, mant = q.exp[idx], q.mant[idx]
	}
	b.mb = q.guard + expn - 1
	// The sub-band gain of Equation E-4 (1 for HL and LH, 2 for HH) is applied by the
	// 9/7 synthesis's high-pass scale instead (see twoInvK97); the 5/3 path has no steps.
	gain := 0
	prec := s.comps[c].prec
	b.step = float32((1 + float64(mant)/2048) * math.Exp2(float64(prec+gain-expn)))
	return b, nil
}

// precinct returns the band parts of precinct p of resolution r, building them on first use.
func (tc *tileComp) precinct(r, p int) []precinctBand {
	res := &tc.res[r]
	if res.precincts == nil {
		res.precincts = make([][]precinctBand, res.pw*res.ph)
	}
	if res.precincts[p] != nil {
		return res.precincts[p]
	}
	px, py := res.px0+p%res.pw, res.py0+p/res.pw
	pbs := make([]precinctBand, len(res.bands))
	for i := range res.bands {
		b := &res.bands[i]
		// Precinct area in band coordinates: halved for the detail bands.
		ex, ey := res.ppx, res.ppy
		if r > 0 {
			ex, ey = ex-1, ey-1
		}
		x0, y0 := max(px<<uint(ex), b.x0), max(py<<uint(ey), b.y0)
		x1, y1 := min((px+1)<<uint(ex), b.x1), min((py+1)<<uint(ey), b.y1)
		pb := &pbs[i]
		if x1 <= x0 || y1 <= y0 {
			continue
		}
		cw, ch := 1<<uint(b.cbw), 1<<uint(b.cbh)
		gx0, gy0 := floorDivS(x0, cw), floorDivS(y0, ch)
		pb.cw = ceilDivS(x1, cw) - gx0
		pb.ch = ceilDivS(y1, ch) - gy0
		pb.blocks = make([]codeBlock, pb.cw*pb.ch)
		for j := range pb.blocks {
			cx, cy := gx0+j%pb.cw, gy0+j/pb.cw
			cb := &pb.blocks[j]
			cb.x0, cb.y0 = max(cx*cw, x0), max(cy*ch, y0)
			cb.x1, cb.y1 = min((cx+1)*cw, x1), min((cy+1)*ch, y1)
			cb.lblock = 3
		}
		pb.incl = newTagTree(pb.cw, pb.ch)
		pb.zbp = newTagTree(pb.cw, pb.ch)
	}
	res.precincts[p] = pbs
	return pbs
}

// tagTree is the quad-tree coder of B.10.2.
type tagTree struct {
	nodes  []tagNode
	leaves int
}

type tagNode struct {
	parent int
	value  int
	low    int
}

func newTagTree(w, h int) *tagTree {
	t := &tagTree{leaves: w * h}
	type lvl struct{ w, h, start int }
	var levels []lvl
	n := 0
	for {
		levels = append(levels, lvl{w, h, n})
		n += w * h
		if w*h <= 1 {
			break
		}
		w, h = (w+1)/2, (h+1)/2
	}
	t.nodes = make([]tagNode, n)
	for li, l := range levels {
		for y := 0; y < l.h; y++ {
			for x := 0; x < l.w; x++ {
				nd := &t.nodes[l.start+y*l.w+x]
				nd.value = math.MaxInt32
				nd.parent = -1
				if li+1 < len(levels) {
					up := levels[li+1]
					nd.parent = up.start + (y/2)*up.w + x/2
				}
			}
		}
	}
	return t
}

// decode reads bits until it knows whether leaf's value is below threshold.
func (t *tagTree) decode(br *bitReader, leaf, threshold int) (bool, error) {
	var stack [32]int
	n := 0
	for i := leaf; i >= 0; i = t.nodes[i].parent {
		if n == len(stack) {
			return false, malformed("tag tree too deep")
		}
		stack[n] = i
		n++
	}
	low := 0
	for n > 0 {
		n--
		nd := &t.nodes[stack[n]]
		if low > nd.low {
			nd.low = low
		} else {
			low = nd.low
		}
		for low < threshold && low < nd.value {
			bit, err := br.bit()
			if err != nil {
				return false, err
			}
			if bit == 1 {
				nd.value = low
			} else {
				low++
			}
		}
		nd.low = low
	}
	return t.nodes[leaf].value < threshold, nil
}
