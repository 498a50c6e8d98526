package imaging

import (
	"encoding/binary"
	"fmt"
	"math"
)

// palette holds the three Palette Color Lookup Tables (PS3.3 C.7.6.3.1.5), each entry
// already on a 0..255 scale.
type palette struct {
	first int
	lut   [3][]float32
}

// readPalette reads the red, green and blue tables, from the plain LUT Data elements
// or, when those are absent, from the Segmented LUT Data elements (PS3.3 C.7.9.2).
func readPalette(ds *Dataset) (*palette, error) {
	p := &palette{}
	descs := []Tag{tagRedDescriptor, tagGreenDescriptor, tagBlueDescriptor}
	datas := []Tag{tagRedData, tagGreenData, tagBlueData}
	segs := []Tag{tagSegRedData, tagSegGreenData, tagSegBlueData}
	for c := 0; c < 3; c++ {
		n, ok1 := ds.Uint(descs[c], 0)
		first, ok2 := ds.Uint(descs[c], 1)
		bits, ok3 := ds.Uint(descs[c], 2)
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("%w: palette colour image lacks lookup table descriptor %s", ErrMalformed, descs[c])
		}
		if n == 0 {
			n = 65536
		}
		el := ds.Find(datas[c])
		if el == nil {
			seg := ds.Find(segs[c])
			if seg == nil {
				return nil, fmt.Errorf("%w: palette colour image lacks lookup table data %s and segmented data %s", ErrMalformed, datas[c], segs[c])
			}
			lut, err := segmentedLUT(seg.Value, ds.order(), n, bits)
			if err != nil {
				return nil, fmt.Errorf("segmented palette %s: %w", segs[c], err)
			}
			p.lut[c] = lut
			p.first = first
			continue
		}
		lut := make([]float32, n)
		bo := ds.order()
		switch {
		case len(el.Value) >= 2*n:
			for k := range lut {
				v := bo.Uint16(el.Value[2*k:])
				if bits == 8 {
					v &= 0xFF
					lut[k] = float32(v)
				} else {
					lut[k] = float32(v) / 257
				}
			}
		case len(el.Value) >= n && bits == 8:
			for k := range lut {
				lut[k] = float32(el.Value[k])
			}
		default:
			return nil, fmt.Errorf("%w: palette lookup table %s holds %d bytes for %d entries", ErrTruncated, datas[c], len(el.Value), n)
		}
		p.lut[c] = lut
		p.first = first
	}
	return p, nil
}

// segmentedLUT expands segmented palette data to its first n entries on a 0..255
// scale. With 8-bit entries each segment word is one byte of the value, as pydicom
// and GDCM read it; with 16-bit entries a word is 16 bits in the data set's byte order.
func segmentedLUT(v []byte, bo binary.ByteOrder, n, bits int) ([]float32, error) {
	var words []int
	switch bits {
	case 8:
		words = make([]int, len(v))
		for k, b := range v {
			words[k] = int(b)
		}
	case 16:
		words = make([]int, len(v)/2)
		for k := range words {
			words[k] = int(bo.Uint16(v[2*k:]))
		}
	default:
		return nil, fmt.Errorf("%w: segmented lookup table entries of %d bits (8 or 16 are defined)", ErrUnsupported, bits)
	}
	x := segExpander{byteWords: bits == 8, big: bo == binary.BigEndian, max: n, budget: 1 << 20, entries: 1 << 24}
	lut, err := x.expand(words, -1, -1, 0)
	if err != nil {
		return nil, err
	}
	if len(lut) < n {
		return nil, fmt.Errorf("%w: segmented lookup table expands to %d entries, the descriptor declares %d", ErrMalformed, len(lut), n)
	}
	out := make([]float32, n)
	for k := range out {
		if bits == 8 {
			out[k] = float32(uint8(lut[k]))
		} else {
			out[k] = float32(uint16(lut[k])) / 257
		}
	}
	return out, nil
}

// maxSegmentDepth bounds indirect segments inside copies. pydicom counts a nested
// copy's offset from where the enclosing copy starts, so a chain of copies can move
// forward through the data and end; a loop never ends, and is refused at this depth.
const maxSegmentDepth = 256

// segExpander expands segments (PS3.3 C.7.9.2). Indirect segments may point back at
// themselves, so recursion depth, the segments read and the entries produced (copies
// included) are bounded; expansion stops once max entries exist, since later segments
// cannot change earlier entries.
type segExpander struct {
	byteWords bool // 8-bit entries: the indirect offset spans four words
	big       bool
	max       int
	budget    int // segments left to read
	entries   int // entries left to produce
}

// expand reads segments from data, at most count of them (all when count < 0); last is
// the entry before the first one, for an indirect copy that starts with a linear
// segment (-1 at the start of the table).
func (x *segExpander) expand(data []int, count, last, depth int) ([]int, error) {
	if depth > maxSegmentDepth {
		return nil, fmt.Errorf("%w: indirect segments nested deeper than %d", ErrMalformed, maxSegmentDepth)
	}
	var lut []int
	off, read := 0, 0
	// off+1 < len: a trailing null word pads odd 8-bit data and is not a segment.
	for off+1 < len(data) {
		x.budget--
		if x.budget < 0 {
			return nil, fmt.Errorf("%w: segmented lookup table has too many segments", ErrMalformed)
		}
		op, length := data[off], data[off+1]
		off += 2
		before := len(lut)
		switch op {
		case 0: // discrete: length entries follow (those present, as pydicom reads a short one)
			lut = append(lut, data[off:min(off+length, len(data))]...)
			off += length
		case 1: // linear: from the previous entry to the next word, in length steps
			var y0 int
			switch {
			case len(lut) > 0:
				y0 = lut[len(lut)-1]
			case last > 0:
				y0 = last
			default:
				// pydicom also refuses a linear start whose previous entry is 0.
				return nil, fmt.Errorf("%w: segmented lookup table starts with a linear segment", ErrMalformed)
			}
			if off >= len(data) {
				return nil, fmt.Errorf("%w: linear segment lacks its end value", ErrTruncated)
			}
			y1 := data[off]
			off++
			if length == 0 && y0 != y1 {
				return nil, fmt.Errorf("%w: linear segment of length 0", ErrMalformed)
			}
			lut = appendLinear(lut, y0, y1, length)
		case 2: // indirect: copy length segments found at an offset
			if len(lut) == 0 {
				return nil, fmt.Errorf("%w: segmented lookup table starts with an indirect segment", ErrMalformed)
			}
			at, err := x.indirectOffset(data, off)
			if err != nil {
				return nil, err
			}
			if x.byteWords {
				off += 4
			} else {
				off += 2
			}
			// The offset counts from the start of the data being expanded, which for
			// an indirect segment inside a copy is where that copy started.
			at = min(at, len(data))
			sub, err := x.expand(data[at:], length, lut[len(lut)-1], depth+1)
			if err != nil {
				return nil, err
			}
			lut = append(lut, sub...)
		default:
			return nil, fmt.Errorf("%w: unknown segment type %d", ErrMalformed, op)
		}
		x.entries -= len(lut) - before
		if x.entries < 0 {
			return nil, fmt.Errorf("%w: segmented lookup table expands past %d entries", ErrMalformed, 1<<24)
		}
		read++
		if read == count {
			break
		}
		if len(lut) >= x.max {
			break
		}
	}
	return lut, nil
}

// indirectOffset reads an indirect segment's offset, counted in entries (pydicom and
// GDCM count it so, whatever the entry size).
func (x *segExpander) indirectOffset(data []int, off int) (int, error) {
	if x.byteWords {
		if off+4 > len(data) {
			return 0, fmt.Errorf("%w: indirect segment lacks its offset", ErrTruncated)
		}
		b := data[off : off+4]
		if x.big {
			return (b[2]<<8|b[3])<<16 | (b[0]<<8 | b[1]), nil
		}
		return (b[3]<<8|b[2])<<16 | (b[1]<<8 | b[0]), nil
	}
	if off+2 > len(data) {
		return 0, fmt.Errorf("%w: indirect segment lacks its offset", ErrTruncated)
	}
	return data[off+1]<<16 | data[off], nil
}

// appendLinear appends length entries rising from y0 (excluded) to y1 (included),
// rounded half to even: numpy's around(linspace(y0+step, y1, length)), computed the
// same way so that every entry agrees with pydicom.
func appendLinear(lut []int, y0, y1, length int) []int {
	if y0 == y1 {
		for k := 0; k < length; k++ {
			lut = append(lut, y1)
		}
		return lut
	}
	step := float64(y1-y0) / float64(length)
	start := float64(y0) + step
	if length == 1 {
		return append(lut, int(math.RoundToEven(start)))
	}
	delta := float64(y1) - start
	d := delta / float64(length-1)
	for k := 0; k < length-1; k++ {
		y := float64(float64(k)*d) + start
		lut = append(lut, int(math.RoundToEven(y)))
	}
	return append(lut, y1)
}

// apply maps stored indices to RGB on a 0..255 scale.
func (p *palette) apply(out []float32, raw []byte, s sampler) []float32 {
	for k := 0; k < len(out)/3; k++ {
		idx := int(s.at(raw, k)) - p.first
		for c := 0; c < 3; c++ {
			l := p.lut[c]
			j := idx
			if j < 0 {
				j = 0
			} else if j >= len(l) {
				j = len(l) - 1
			}
			out[3*k+c] = l[j]
		}
	}
	return out
}
