package jpeg2000

import (
	"fmt"
	"sort"
)

// Options tunes decoding.
type Options struct {
	// ReduceLevels discards that many of the highest resolution levels: each one
	// halves the width and height of the result.
	ReduceLevels int
	// MaxSamples bounds the number of samples of all components together; 0 means
	// DefaultMaxSamples.
	MaxSamples int64
	// Workers bounds the goroutines that decode code-blocks and transform
	// components in parallel; 0 means GOMAXPROCS, 1 decodes on the calling
	// goroutine alone. The result does not depend on it.
	Workers int
}

// DefaultMaxSamples allows a 16k x 16k image of one component.
const DefaultMaxSamples = 1 << 28

func (o Options) maxSamples() int64 {
	if o.MaxSamples > 0 {
		return o.MaxSamples
	}
	return DefaultMaxSamples
}

// Image is a decoded image: one sample plane per component.
type Image struct {
	Width, Height int // of the image area on the reference grid (after ReduceLevels)
	Components    []Component
}

// Component is one decoded component, row by row.
type Component struct {
	Width, Height int
	Precision     int
	Signed        bool
	Dx, Dy        int // subsampling on the reference grid
	Samples       []int32
}

// tileState collects one tile's headers and data across its tile-parts.
type tileState struct {
	index          int
	s              *siz
	hdr            *header
	mainPocs       []poc
	x0, y0, x1, y1 int
	comps          []*tileComp
	data           []byte
	packed         []byte
	ppt            map[int][]byte
	parts          int
}

// Decode decodes a JPEG 2000 codestream, or a JP2 file holding one.
func Decode(data []byte, opt Options) (*Image, error) {
	cs, err := codestream(data)
	if err != nil {
		return nil, err
	}
	return decodeCodestream(cs, opt)
}

func decodeCodestream(b []byte, opt Options) (*Image, error) {
	if len(b) < 4 || u16(b) != mSOC {
		return nil, malformed("no SOC marker")
	}
	if u16(b[2:]) != mSIZ {
		return nil, malformed("SIZ does not follow SOC")
	}
	pos := 2
	var s *siz
	var main *header
	var tiles []*tileState
	var ppm []ppmSeg
	ppmSeen := false
	var tileParts []*tileState // in codestream order, for PPM
	var err error
	for {
		if pos == len(b) && len(tileParts) > 0 {
			break // some encoders leave out EOC after the last whole tile-part
		}
		if pos+2 > len(b) {
			return nil, fmt.Errorf("%w: codestream ends before EOC", ErrTruncated)
		}
		m := u16(b[pos:])
		if m == mEOC {
			break
		}
		if m < 0xFF30 {
			return nil, malformed("0x%04X where a marker should be", m)
		}
		if m>>4 == 0xFF3 {
			pos += 2 // reserved markers without a segment
			continue
		}
		if pos+4 > len(b) {
			return nil, fmt.Errorf("%w: marker segment", ErrTruncated)
		}
		l := u16(b[pos+2:])
		if l < 2 || pos+2+l > len(b) {
			return nil, fmt.Errorf("%w: marker 0x%04X of %d bytes", ErrTruncated, m, l)
		}
		seg := b[pos+4 : pos+2+l]
		start := pos
		pos += 2 + l
		switch m {
		case mSIZ:
			if s != nil {
				return nil, malformed("second SIZ")
			}
			s, err = parseSIZ(seg, opt)
			if err != nil {
				return nil, err
			}
			nc := len(s.comps)
			main = &header{
				cod: make([]codingStyle, nc), qcd: make([]quant, nc), roi: make([]int, nc),
				cocSet: make([]bool, nc), qccSet: make([]bool, nc),
			}
			tiles = make([]*tileState, s.numTiles)
			continue
		case mCAP:
			if err := parseCAP(seg); err != nil {
				return nil, err
			}
			continue
		}
		if s == nil {
			return nil, malformed("marker 0x%04X before SIZ", m)
		}
		nc := len(s.comps)
		h := main
		switch m {
		case mCOD:
			err = h.parseCOD(seg, nc)
		case mCOC:
			err = h.parseCOC(seg, nc)
		case mQCD:
			err = h.parseQCD(seg, nc)
		case mQCC:
			err = h.parseQCC(seg, nc)
		case mRGN:
			err = h.parseRGN(seg, nc)
		case mPOC:
			err = h.parsePOC(seg, nc)
		case mPPM:
			if len(seg) < 1 {
				return nil, malformed("PPM too short")
			}
			ppmSeen = true
			ppm = append(ppm, ppmSeg{int(seg[0]), seg[1:]})
		case mPPT:
			return nil, malformed("PPT outside a tile-part header")
		case mSOT:
			if len(seg) != 8 {
				return nil, malformed("SOT of %d bytes", len(seg))
			}
			if !main.hasCOD || !main.hasQCD {
				return nil, malformed("main header lacks COD or QCD")
			}
			ti, psot := u16(seg), u32(seg[2:])
			if ti >= s.numTiles {
				return nil, malformed("tile index %d of %d", ti, s.numTiles)
			}
			t := tiles[ti]
			if t == nil {
				t = newTile(s, main, ti)
				tiles[ti] = t
			} else {
				// Later tile-parts may carry POC and PPT only; fresh COC/QCC sets.
				t.hdr.cocSet = make([]bool, nc)
				t.hdr.qccSet = make([]bool, nc)
			}
			t.parts++
			tileParts = append(tileParts, t)
			end := start + psot
			if psot == 0 {
				end = len(b)
				if end >= start+2 && u16(b[end-2:]) == mEOC {
					end -= 2
				}
			}
			if psot != 0 && (psot < 14 || end > len(b)) {
				return nil, fmt.Errorf("%w: tile-part of %d bytes, %d remain", ErrTruncated, psot, len(b)-start)
			}
			// Read the tile-part header up to SOD, then take its data.
			for {
				if pos+2 > end {
					return nil, fmt.Errorf("%w: tile-part header without SOD", ErrTruncated)
				}
				tm := u16(b[pos:])
				if tm == mSOD {
					pos += 2
					break
				}
				if pos+4 > end {
					return nil, fmt.Errorf("%w: tile-part header without SOD", ErrTruncated)
				}
				tl := u16(b[pos+2:])
				if tl < 2 || pos+2+tl > end {
					return nil, fmt.Errorf("%w: tile-part marker 0x%04X", ErrTruncated, tm)
				}
				tseg := b[pos+4 : pos+2+tl]
				pos += 2 + tl
				if err := t.hdr.tileMarker(tm, tseg, nc, t); err != nil {
					return nil, err
				}
			}
			t.data = append(t.data, b[pos:end]...)
			pos = end
			if psot == 0 {
				goto done
			}
		}
		if err != nil {
			return nil, err
		}
	}
done:
	if s == nil {
		return nil, malformed("no SIZ")
	}
	if ppmSeen {
		if err := splitPPM(ppm, tileParts); err != nil {
			return nil, err
		}
	}
	return assemble(s, tiles, opt)
}

// tileMarker applies one marker of a tile-part header.
func (h *header) tileMarker(m int, seg []byte, nc int, t *tileState) error {
	first := t.parts == 1
	switch m {
	case mCOD, mCOC, mQCD, mQCC, mRGN:
		if !first {
			return malformed("marker 0x%04X in a tile-part other than the first", m)
		}
	}
	switch m {
	case mCOD:
		return h.parseCOD(seg, nc)
	case mCOC:
		return h.parseCOC(seg, nc)
	case mQCD:
		return h.parseQCD(seg, nc)
	case mQCC:
		return h.parseQCC(seg, nc)
	case mRGN:
		return h.parseRGN(seg, nc)
	case mPOC:
		return h.parsePOC(seg, nc)
	case mPPT:
		if len(seg) < 1 {
			return malformed("PPT too short")
		}
		if t.ppt == nil {
			t.ppt = map[int][]byte{}
		}
		t.ppt[int(seg[0])] = append(t.ppt[int(seg[0])], seg[1:]...)
	case mPPM:
		return malformed("PPM in a tile-part header")
	}
	return nil
}

func newTile(s *siz, main *header, ti int) *tileState {
	p, q := ti%s.tilesX, ti/s.tilesX
	t := &tileState{index: ti, s: s, hdr: main.clone()}
	t.hdr.pocs = nil
	t.mainPocs = main.pocs
	t.x0 = max(s.tx0+p*s.tw, s.x0)
	t.y0 = max(s.ty0+q*s.th, s.y0)
	t.x1 = min(s.tx0+(p+1)*s.tw, s.x1)
	t.y1 = min(s.ty0+(q+1)*s.th, s.y1)
	return t
}

type ppmSeg struct {
	z    int
	data []byte
}

// splitPPM hands each tile-part its packed packet headers (A.7.4). The marker
// segments are put in Zppm order first; a group may span several of them.
func splitPPM(segs []ppmSeg, parts []*tileState) error {
	sort.SliceStable(segs, func(a, b int) bool { return segs[a].z < segs[b].z })
	var ppm []byte
	for _, sg := range segs {
		ppm = append(ppm, sg.data...)
	}
	for _, t := range parts {
		if len(ppm) < 4 {
			return fmt.Errorf("%w: PPM holds fewer packet-header groups than tile-parts", ErrTruncated)
		}
		n := u32(ppm)
		if n > len(ppm)-4 {
			return fmt.Errorf("%w: PPM group of %d bytes", ErrTruncated, n)
		}
		t.packed = append(t.packed, ppm[4:4+n]...)
		if t.packed == nil {
			t.packed = []byte{}
		}
		ppm = ppm[4+n:]
	}
	return nil
}

// DecodeConfig reads the image size and components from the main header only,
// without decoding: the Samples of each component are nil.
func DecodeConfig(data []byte) (*Image, error) {
	b, err := codestream(data)
	if err != nil {
		return nil, err
	}
	if len(b) < 6 || u16(b) != mSOC || u16(b[2:]) != mSIZ {
		return nil, malformed("no SOC and SIZ markers")
	}
	l := u16(b[4:])
	if l < 2 || 4+l > len(b) {
		return nil, fmt.Errorf("%w: SIZ", ErrTruncated)
	}
	s, err := parseSIZ(b[6:4+l], Options{MaxSamples: 1 << 62})
	if err != nil {
		return nil, err
	}
	img := &Image{Width: s.x1 - s.x0, Height: s.y1 - s.y0}
	for c, comp := range s.comps {
		img.Components = append(img.Components, Component{
			Width: s.compW[c], Height: s.compH[c], Precision: comp.prec, Signed: comp.signed, Dx: comp.dx, Dy: comp.dy,
		})
	}
	return img, nil
}
