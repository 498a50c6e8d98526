package jpeg2000

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sentinel errors; every error from [Decode] wraps one of them.
var (
	// ErrMalformed: the stream breaks a rule of Part 1.
	ErrMalformed = errors.New("jpeg2000: malformed codestream")
	// ErrTruncated: the stream ends before the data it declares.
	ErrTruncated = errors.New("jpeg2000: truncated codestream")
	// ErrUnsupported: a valid stream uses a feature this decoder does not have.
	ErrUnsupported = errors.New("jpeg2000: unsupported feature")
	// ErrTooLarge: the declared image is larger than Options allows.
	ErrTooLarge = errors.New("jpeg2000: image too large")
)

// Fixed bounds on what a stream may declare, checked before allocation.
const (
	MaxComponents = 4096
	maxTiles      = 65535
	maxLevels     = 32
	maxPackets    = 1 << 24
)

// Marker codes (ISO/IEC 15444-1 Table A.2) that the decoder acts on; the others
// (TLM, PLM, PLT, CRG, COM, ...) are read past.
const (
	mSOC = 0xFF4F
	mCAP = 0xFF50 // Part 15 capabilities: marks an HTJ2K stream
	mSIZ = 0xFF51
	mCOD = 0xFF52
	mCOC = 0xFF53
	mQCD = 0xFF5C
	mQCC = 0xFF5D
	mRGN = 0xFF5E
	mPOC = 0xFF5F
	mPPM = 0xFF60
	mPPT = 0xFF61
	mSOT = 0xFF90
	mSOP = 0xFF91
	mEPH = 0xFF92
	mSOD = 0xFF93
	mEOC = 0xFFD9
)

// component is one SIZ component.
type component struct {
	prec   int
	signed bool
	dx, dy int
}

// siz is the image and tiling geometry.
type siz struct {
	x1, y1, x0, y0     int // image area on the reference grid
	tw, th, tx0, ty0   int // tile size and tiling origin
	comps              []component
	tilesX, tilesY     int
	numTiles           int
	compW, compH       []int // component sizes
	rsiz               int
	highThroughputFlag bool
}

// codingStyle is the COD/COC content for one component, plus the tile-wide part.
type codingStyle struct {
	precincts  bool // user-defined precinct sizes
	sop, eph   bool
	prog       int
	layers     int
	mct        bool
	levels     int
	cbw, cbh   int // code-block size exponents
	cbStyle    byte
	reversible bool
	ppx, ppy   []int // per resolution
}

// quant is the QCD/QCC content for one component.
type quant struct {
	style int // 0 none, 1 scalar derived, 2 scalar expounded
	guard int
	exp   []int
	mant  []int
}

// poc is one progression order change.
type poc struct {
	rs, cs, lye, re, ce, prog int
}

// header holds the main header state, copied into each tile and overridden there.
type header struct {
	cod    []codingStyle
	qcd    []quant
	roi    []int
	pocs   []poc
	hasCOD bool
	hasQCD bool
	// cocSet and qccSet record which components got a COC/QCC in the current header,
	// so a later COD/QCD in the same header does not override them.
	cocSet, qccSet []bool
}

func (h *header) clone() *header {
	c := &header{hasCOD: h.hasCOD, hasQCD: h.hasQCD}
	c.cod = append([]codingStyle(nil), h.cod...)
	c.qcd = append([]quant(nil), h.qcd...)
	c.roi = append([]int(nil), h.roi...)
	c.cocSet = make([]bool, len(h.cod))
	c.qccSet = make([]bool, len(h.cod))
	return c
}

func u16(b []byte) int { return int(binary.BigEndian.Uint16(b)) }
func u32(b []byte) int { return int(binary.BigEndian.Uint32(b)) }

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnsupported}, args...)...)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func parseSIZ(b []byte, opt Options) (*siz, error) {
	if len(b) < 36 {
		return nil, malformed("SIZ of %d bytes", len(b))
	}
	s := &siz{
		rsiz: u16(b),
		x1:   u32(b[2:]), y1: u32(b[6:]), x0: u32(b[10:]), y0: u32(b[14:]),
		tw: u32(b[18:]), th: u32(b[22:]), tx0: u32(b[26:]), ty0: u32(b[30:]),
	}
	nc := u16(b[34:])
	if s.rsiz&0x4000 != 0 {
		s.highThroughputFlag = true
	}
	if nc == 0 || nc > MaxComponents {
		return nil, malformed("SIZ declares %d components (1..%d)", nc, MaxComponents)
	}
	if len(b) < 36+3*nc {
		return nil, malformed("SIZ too short for %d components", nc)
	}
	const lim = 1 << 30
	if s.x1 > lim || s.y1 > lim || s.x0 >= s.x1 || s.y0 >= s.y1 {
		return nil, malformed("SIZ image area [%d,%d)x[%d,%d)", s.x0, s.x1, s.y0, s.y1)
	}
	if s.tw == 0 || s.th == 0 || s.tx0 > s.x0 || s.ty0 > s.y0 || s.tx0+s.tw <= s.x0 || s.ty0+s.th <= s.y0 {
		return nil, malformed("SIZ tiling %dx%d at (%d,%d) does not cover the image", s.tw, s.th, s.tx0, s.ty0)
	}
	s.tilesX = ceilDiv(s.x1-s.tx0, s.tw)
	s.tilesY = ceilDiv(s.y1-s.ty0, s.th)
	if int64(s.tilesX)*int64(s.tilesY) > maxTiles {
		return nil, malformed("SIZ declares %dx%d tiles (at most %d)", s.tilesX, s.tilesY, maxTiles)
	}
	s.numTiles = s.tilesX * s.tilesY
	var total int64
	for i := 0; i < nc; i++ {
		p := b[36+3*i:]
		c := component{prec: int(p[0]&0x7F) + 1, signed: p[0]&0x80 != 0, dx: int(p[1]), dy: int(p[2])}
		if c.dx == 0 || c.dy == 0 {
			return nil, malformed("component %d subsampling %dx%d", i, c.dx, c.dy)
		}
		if c.prec > 16 {
			return nil, unsupported("component %d has %d-bit samples (at most 16)", i, c.prec)
		}
		s.comps = append(s.comps, c)
		w := ceilDiv(s.x1, c.dx) - ceilDiv(s.x0, c.dx)
		h := ceilDiv(s.y1, c.dy) - ceilDiv(s.y0, c.dy)
		s.compW = append(s.compW, w)
		s.compH = append(s.compH, h)
		total += int64(w) * int64(h)
	}
	if max := opt.maxSamples(); total > max {
		return nil, fmt.Errorf("%w: %d samples declared, limit %d", ErrTooLarge, total, max)
	}
	return s, nil
}

// parseCOD reads COD into every component of h that has no COC in the same header.
func (h *header) parseCOD(b []byte, nc int) error {
	if len(b) < 5 {
		return malformed("COD of %d bytes", len(b))
	}
	scod := b[0]
	prog, layers, mct := int(b[1]), u16(b[2:]), b[4]
	if prog > 4 {
		return malformed("progression order %d", prog)
	}
	if layers == 0 {
		return malformed("COD declares no layers")
	}
	if mct > 1 {
		return unsupported("multiple component transform %d (Part 2)", mct)
	}
	var cs codingStyle
	if err := parseSPcod(b[5:], scod&1 != 0, &cs); err != nil {
		return err
	}
	cs.sop, cs.eph = scod&2 != 0, scod&4 != 0
	cs.prog, cs.layers, cs.mct = prog, layers, mct == 1
	for c := 0; c < nc; c++ {
		if h.cocSet != nil && h.cocSet[c] {
			keep := h.cod[c]
			keep.sop, keep.eph, keep.prog, keep.layers, keep.mct = cs.sop, cs.eph, prog, layers, cs.mct
			h.cod[c] = keep
			continue
		}
		h.cod[c] = cs
	}
	h.hasCOD = true
	return nil
}

func parseSPcod(b []byte, precincts bool, cs *codingStyle) error {
	if len(b) < 5 {
		return malformed("coding style parameters of %d bytes", len(b))
	}
	cs.levels = int(b[0])
	cs.cbw, cs.cbh = int(b[1]&0xF)+2, int(b[2]&0xF)+2
	cs.cbStyle = b[3]
	if cs.levels > maxLevels {
		return malformed("%d decomposition levels (at most %d)", cs.levels, maxLevels)
	}
	if b[1] > 8 || b[2] > 8 || cs.cbw+cs.cbh > 12 {
		return malformed("code-block size 2^%d x 2^%d", cs.cbw, cs.cbh)
	}
	if cs.cbStyle&(cbHT|cbHTMixed) == cbHT|cbHTMixed {
		return unsupported("HTJ2K mixed code-blocks (some HT, some Part 1)")
	}
	if cs.cbStyle&0x80 != 0 {
		return unsupported("code-block style 0x%02x (Part 2)", cs.cbStyle)
	}
	switch b[4] {
	case 0:
		cs.reversible = false
	case 1:
		cs.reversible = true
	default:
		return unsupported("wavelet transform %d (Part 2 arbitrary wavelets)", b[4])
	}
	cs.precincts = precincts
	cs.ppx = make([]int, cs.levels+1)
	cs.ppy = make([]int, cs.levels+1)
	for r := 0; r <= cs.levels; r++ {
		if !precincts {
			cs.ppx[r], cs.ppy[r] = 15, 15
			continue
		}
		if len(b) < 5+cs.levels+1 {
			return malformed("precinct sizes missing")
		}
		v := b[5+r]
		cs.ppx[r], cs.ppy[r] = int(v&0xF), int(v>>4)
		if r > 0 && (cs.ppx[r] == 0 || cs.ppy[r] == 0) {
			return malformed("precinct size exponent 0 at resolution %d", r)
		}
	}
	return nil
}

func compIndex(b []byte, nc int) (int, []byte, error) {
	if nc < 257 {
		if len(b) < 1 {
			return 0, nil, malformed("component index missing")
		}
		c := int(b[0])
		if c >= nc {
			return 0, nil, malformed("component index %d of %d", c, nc)
		}
		return c, b[1:], nil
	}
	if len(b) < 2 {
		return 0, nil, malformed("component index missing")
	}
	c := u16(b)
	if c >= nc {
		return 0, nil, malformed("component index %d of %d", c, nc)
	}
	return c, b[2:], nil
}

func (h *header) parseCOC(b []byte, nc int) error {
	c, b, err := compIndex(b, nc)
	if err != nil {
		return err
	}
	if len(b) < 1 {
		return malformed("COC too short")
	}
	cs := h.cod[c]
	if err := parseSPcod(b[1:], b[0]&1 != 0, &cs); err != nil {
		return err
	}
	h.cod[c] = cs
	h.cocSet[c] = true
	return nil
}

func parseQuant(b []byte) (quant, error) {
	if len(b) < 1 {
		return quant{}, malformed("quantisation marker too short")
	}
	q := quant{style: int(b[0] & 0x1F), guard: int(b[0] >> 5)}
	b = b[1:]
	switch q.style {
	case 0:
		for _, v := range b {
			q.exp = append(q.exp, int(v>>3))
			q.mant = append(q.mant, 0)
		}
	case 1, 2:
		if len(b) < 2 || len(b)%2 != 0 {
			return q, malformed("quantisation step sizes of %d bytes", len(b))
		}
		for i := 0; i+1 < len(b); i += 2 {
			v := u16(b[i:])
			q.exp = append(q.exp, v>>11)
			q.mant = append(q.mant, v&0x7FF)
		}
	default:
		return q, unsupported("quantisation style %d", q.style)
	}
	if len(q.exp) == 0 {
		return q, malformed("quantisation marker has no step sizes")
	}
	return q, nil
}

func (h *header) parseQCD(b []byte, nc int) error {
	q, err := parseQuant(b)
	if err != nil {
		return err
	}
	for c := 0; c < nc; c++ {
		if !h.qccSet[c] {
			h.qcd[c] = q
		}
	}
	h.hasQCD = true
	return nil
}

func (h *header) parseQCC(b []byte, nc int) error {
	c, b, err := compIndex(b, nc)
	if err != nil {
		return err
	}
	q, err := parseQuant(b)
	if err != nil {
		return err
	}
	h.qcd[c] = q
	h.qccSet[c] = true
	return nil
}

func (h *header) parseRGN(b []byte, nc int) error {
	c, b, err := compIndex(b, nc)
	if err != nil {
		return err
	}
	if len(b) < 2 {
		return malformed("RGN too short")
	}
	if b[0] != 0 {
		return unsupported("region of interest style %d (only maximum shift)", b[0])
	}
	h.roi[c] = int(b[1])
	return nil
}

func (h *header) parsePOC(b []byte, nc int) error {
	cw := 1
	if nc >= 257 {
		cw = 2
	}
	n := 5 + 2*cw
	if len(b) < n || len(b)%n != 0 {
		return malformed("POC of %d bytes", len(b))
	}
	for ; len(b) >= n; b = b[n:] {
		p := poc{rs: int(b[0])}
		if cw == 1 {
			p.cs, p.lye, p.re, p.ce, p.prog = int(b[1]), u16(b[2:]), int(b[4]), int(b[5]), int(b[6])
		} else {
			p.cs, p.lye, p.re, p.ce, p.prog = u16(b[1:]), u16(b[3:]), int(b[5]), u16(b[6:]), int(b[8])
		}
		if p.ce == 0 {
			p.ce = 256
		}
		if p.prog > 4 {
			return malformed("POC progression order %d", p.prog)
		}
		h.pocs = append(h.pocs, p)
	}
	return nil
}
