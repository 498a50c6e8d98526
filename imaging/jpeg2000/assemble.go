package jpeg2000

import (
	"fmt"
	"sort"
)

// assemble decodes every tile and places its samples in the image.
func assemble(s *siz, tiles []*tileState, opt Options) (*Image, error) {
	red := opt.ReduceLevels
	if red < 0 || red > maxLevels {
		return nil, fmt.Errorf("%w: ReduceLevels %d", ErrUnsupported, red)
	}
	d := 1 << uint(red)
	img := &Image{
		Width:  ceilDiv(s.x1, d) - ceilDiv(s.x0, d),
		Height: ceilDiv(s.y1, d) - ceilDiv(s.y0, d),
	}
	for c, comp := range s.comps {
		dx, dy := comp.dx<<uint(red), comp.dy<<uint(red)
		w := ceilDiv(s.x1, dx) - ceilDiv(s.x0, dx)
		h := ceilDiv(s.y1, dy) - ceilDiv(s.y0, dy)
		img.Components = append(img.Components, Component{
			Width: w, Height: h, Precision: comp.prec, Signed: comp.signed,
			Dx: s.comps[c].dx, Dy: s.comps[c].dy, Samples: make([]int32, w*h),
		})
	}
	decs := make([]blockDecoder, opt.workers())
	present := 0
	for _, t := range tiles {
		if t == nil {
			continue // as OpenJPEG: an absent tile leaves zeros
		}
		present++
		if err := t.decode(img, red, decs); err != nil {
			return nil, err
		}
	}
	if present == 0 {
		return nil, fmt.Errorf("%w: no tile-parts", ErrTruncated)
	}
	return img, nil
}

// blockJob is one code-block to decode and place into component c of a tile.
type blockJob struct {
	c  int
	cb *codeBlock
	b  *band
}

// decode decodes the tile into img. The code-blocks, then the components' inverse
// wavelet transforms, run on len(decs) goroutines, each with its own decoder: every
// code-block is placed in its own part of its component's array, every component
// transformed in its own array.
func (t *tileState) decode(img *Image, red int, decs []blockDecoder) error {
	s := t.s
	if t.ppt != nil {
		if t.packed != nil {
			return malformed("tile %d has both PPM and PPT", t.index)
		}
		keys := make([]int, 0, len(t.ppt))
		for k := range t.ppt {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		t.packed = []byte{}
		for _, k := range keys {
			t.packed = append(t.packed, t.ppt[k]...)
		}
	}
	for c := range s.comps {
		cs := &t.hdr.cod[c]
		if red > cs.levels {
			return fmt.Errorf("%w: ReduceLevels %d exceeds the %d decomposition levels of component %d", ErrUnsupported, red, cs.levels, c)
		}
		tc, err := buildTileComp(s, t.x0, t.y0, t.x1, t.y1, c, cs, &t.hdr.qcd[c], t.hdr.roi[c])
		if err != nil {
			return fmt.Errorf("tile %d component %d: %w", t.index, c, err)
		}
		t.comps = append(t.comps, tc)
	}
	if err := t.readPackets(); err != nil {
		return err
	}
	if err := t.checkWork(red); err != nil {
		return err
	}
	ints := make([][]int32, len(t.comps))
	floats := make([][]float32, len(t.comps))
	defer func() {
		for c := range ints {
			putInts(ints[c])
			putFloats(floats[c])
		}
	}()
	var jobs []blockJob
	for c, tc := range t.comps {
		top := tc.cs.levels - red
		stride := tc.x1 - tc.x0
		n := stride * (tc.y1 - tc.y0)
		if tc.cs.reversible {
			ints[c] = getInts(n)
		} else {
			floats[c] = getFloats(n)
		}
		for r := 0; r <= top; r++ {
			res := &tc.res[r]
			for _, pbs := range res.precincts {
				for bi := range pbs {
					b := &res.bands[bi]
					for k := range pbs[bi].blocks {
						cb := &pbs[bi].blocks[k]
						if len(cb.segs) == 0 {
							continue
						}
						jobs = append(jobs, blockJob{c, cb, b})
					}
				}
			}
		}
	}
	err := forEach(len(jobs), len(decs), func(w, i int) error {
		j := jobs[i]
		tc, dec := t.comps[j.c], &decs[w]
		if err := dec.decodeCodeBlock(j.cb, j.b, tc.cs.cbStyle, tc.roi); err != nil {
			return fmt.Errorf("tile %d component %d: %w", t.index, j.c, err)
		}
		place(dec, j.cb, j.b, tc, tc.x1-tc.x0, ints[j.c], floats[j.c])
		return nil
	})
	if err != nil {
		return err
	}
	// Components in parallel, and each component's rows and columns in parallel
	// with what remains of the workers: at most len(decs) goroutines in all.
	inner := max(1, len(decs)/len(t.comps))
	_ = forEach(len(t.comps), len(decs), func(_, c int) error {
		tc := t.comps[c]
		top, stride := tc.cs.levels-red, tc.x1-tc.x0
		if tc.cs.reversible {
			idwt53(ints[c], stride, tc, top, inner)
		} else {
			idwt97(floats[c], stride, tc, top, inner)
		}
		return nil
	})
	if t.comps[0].cs.mct && len(t.comps) >= 3 {
		if !sameSize(t.comps[:3]) {
			return malformed("colour transform on components of different sizes")
		}
		rev := t.comps[0].cs.reversible
		if rev != t.comps[1].cs.reversible || rev != t.comps[2].cs.reversible {
			return unsupported("colour transform over components with different wavelets")
		}
		if rev {
			inverseRCT(ints[0], ints[1], ints[2])
		} else {
			inverseICT(floats[0], floats[1], floats[2])
		}
	}
	for c, tc := range t.comps {
		top := tc.cs.levels - red
		res := &tc.res[top]
		w, h := res.x1-res.x0, res.y1-res.y0
		if w <= 0 || h <= 0 {
			continue
		}
		out := &img.Components[c]
		dx, dy := s.comps[c].dx<<uint(red), s.comps[c].dy<<uint(red)
		ox, oy := res.x0-ceilDiv(s.x0, dx), res.y0-ceilDiv(s.y0, dy)
		if ox < 0 || oy < 0 || ox+w > out.Width || oy+h > out.Height {
			return malformed("tile %d component %d outside the image", t.index, c)
		}
		dst := out.Samples[oy*out.Width+ox:]
		stride := tc.x1 - tc.x0
		if ints[c] != nil {
			storeInt(dst, out.Width, ints[c], stride, w, h, s.comps[c])
		} else {
			storeFloat(dst, out.Width, floats[c], stride, w, h, s.comps[c])
		}
	}
	t.comps, t.data, t.packed = nil, nil, nil
	return nil
}

// Tier-1 work is coding passes times code-block area. A header of a few bits can ask
// for 164 passes over a 4096-sample block whatever the data behind it, so the work
// is bounded by the tile's bytes: real streams stay two orders of magnitude below.
const (
	workPerByte = 1 << 12
	workBase    = 1 << 22
)

func (t *tileState) checkWork(red int) error {
	var work int64
	for _, tc := range t.comps {
		for r := 0; r <= tc.cs.levels-red; r++ {
			for _, pbs := range tc.res[r].precincts {
				for bi := range pbs {
					for k := range pbs[bi].blocks {
						cb := &pbs[bi].blocks[k]
						work += int64(cb.passes) * int64((cb.x1-cb.x0)*(cb.y1-cb.y0))
					}
				}
			}
		}
	}
	if lim := workBase + workPerByte*int64(len(t.data)+len(t.packed)); work > lim {
		return malformed("tile %d asks for %d coefficient passes from %d bytes (at most %d)", t.index, work, len(t.data)+len(t.packed), lim)
	}
	return nil
}

func sameSize(tcs []*tileComp) bool {
	for _, tc := range tcs[1:] {
		if tc.x0 != tcs[0].x0 || tc.x1 != tcs[0].x1 || tc.y0 != tcs[0].y0 || tc.y1 != tcs[0].y1 {
			return false
		}
	}
	return true
}

// place dequantises a decoded code-block into the tile-component array.
func place(dec *blockDecoder, cb *codeBlock, b *band, tc *tileComp, stride int, ints []int32, floats []float32) {
	w, h := cb.x1-cb.x0, cb.y1-cb.y0
	x0 := b.offX + cb.x0 - b.x0
	y0 := b.offY + cb.y0 - b.y0
	for y := 0; y < h; y++ {
		src := dec.val[y*w : y*w+w]
		at := (y0+y)*stride + x0
		if ints != nil {
			dst := ints[at : at+w]
			for x, v := range src {
				dst[x] = v / 2
			}
			continue
		}
		dst := floats[at : at+w]
		step := b.step * 0.5
		for x, v := range src {
			dst[x] = float32(v) * step
		}
	}
}

// codestream returns the contiguous codestream of a JP2 file, or data itself.
func codestream(data []byte) ([]byte, error) {
	if len(data) >= 2 && u16(data) == mSOC {
		return data, nil
	}
	if len(data) < 12 || u32(data) != 12 || string(data[4:8]) != "jP  " {
		return nil, malformed("neither a codestream (SOC) nor a JP2 file")
	}
	b := data
	for len(b) >= 8 {
		l := u32(b)
		typ := string(b[4:8])
		hdr := 8
		switch l {
		case 0:
			l = len(b)
		case 1:
			if len(b) < 16 {
				return nil, fmt.Errorf("%w: JP2 box header", ErrTruncated)
			}
			hi, lo := u32(b[8:]), u32(b[12:])
			if hi != 0 {
				return nil, fmt.Errorf("%w: JP2 box larger than 4 GiB", ErrTooLarge)
			}
			l, hdr = lo, 16
		}
		if l < hdr || l > len(b) {
			return nil, fmt.Errorf("%w: JP2 box %q of %d bytes, %d remain", ErrTruncated, typ, l, len(b))
		}
		switch typ {
		case "jp2h":
			if err := checkJP2Header(b[hdr:l]); err != nil {
				return nil, err
			}
		case "jp2c":
			return b[hdr:l], nil
		}
		b = b[l:]
	}
	return nil, malformed("JP2 file without a codestream (jp2c) box")
}

// checkJP2Header refuses what would make the codestream's samples not the image's:
// palettes and component mappings.
func checkJP2Header(b []byte) error {
	for len(b) >= 8 {
		l := u32(b)
		if l < 8 || l > len(b) {
			return malformed("JP2 header box of %d bytes", l)
		}
		switch string(b[4:8]) {
		case "pclr", "cmap":
			return unsupported("JP2 palette (%s box): the codestream holds indices, not colours", b[4:8])
		}
		b = b[l:]
	}
	return nil
}
