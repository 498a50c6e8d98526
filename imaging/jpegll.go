package imaging

import (
	"encoding/binary"
	"fmt"
)

// decodeJPEGOwn handles the JPEG processes the standard library does not: lossless
// (process 14, any predictor, precision 2..16, point transform, restart markers) and
// 12-bit sequential DCT (process 4, components not subsampled).
func (im *Image) decodeJPEGOwn(src []byte) ([]byte, error) {
	var ll []int32
	var err error
	if im.TransferSyntaxUID == TSJPEGLSLossl || im.TransferSyntaxUID == TSJPEGLSNear {
		ll, err = decodeJPEGLS(src, im.Rows, im.Columns, im.SamplesPerPixel)
		if err != nil {
			return nil, fmt.Errorf("jpeg-ls: %w", err)
		}
	} else if jpegIsLossless(src) {
		ll, err = decodeLossless(src, im.Rows, im.Columns, im.SamplesPerPixel)
		if err != nil {
			return nil, fmt.Errorf("jpeg lossless: %w", err)
		}
	} else {
		var prec int
		ll, prec, err = decodeDCT(src, im.Rows, im.Columns, im.SamplesPerPixel)
		if err != nil {
			return nil, fmt.Errorf("jpeg %s: %w", TransferSyntaxName(im.TransferSyntaxUID), err)
		}
		if prec > 8 && im.BitsAllocated < 16 {
			return nil, fmt.Errorf("%w: %d-bit jpeg in %d bits allocated", ErrMalformed, prec, im.BitsAllocated)
		}
		// Like libjpeg under pydicom: an RGB image is colour-converted only when an
		// Adobe marker says it was YCbCr-coded; YBR images keep their components.
		if adobe, transform := jpegAdobe(src); prec == 8 && im.SamplesPerPixel == 3 && im.PhotometricInterpretation == "RGB" && adobe && transform != 0 {
			for k := 0; k+2 < len(ll); k += 3 {
				r, g, b := libjpegYCbCrToRGB(byte(ll[k]), byte(ll[k+1]), byte(ll[k+2]))
				ll[k], ll[k+1], ll[k+2] = int32(r), int32(g), int32(b)
			}
		}
	}
	bps := im.BytesPerSample()
	out := make([]byte, len(ll)*bps)
	for k, v := range ll {
		switch bps {
		case 1:
			out[k] = byte(v)
		case 2:
			binary.LittleEndian.PutUint16(out[2*k:], uint16(v))
		default:
			binary.LittleEndian.PutUint32(out[4*k:], uint32(v))
		}
	}
	return out, nil
}

func jpegIsLossless(b []byte) bool {
	for k := 2; k+4 < len(b); {
		if b[k] != 0xFF {
			return false
		}
		m := b[k+1]
		if m == 0xFF {
			k++
			continue
		}
		switch m {
		case 0xC3:
			return true
		case 0xC0, 0xC1, 0xC2, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xDA:
			return false
		}
		if m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7) {
			k += 2
			continue
		}
		k += 2 + int(binary.BigEndian.Uint16(b[k+2:]))
	}
	return false
}

const huffLUTBits = 9

type huffTable struct {
	// lut maps the next huffLUTBits bits to length<<8 | value for short codes (0: slow path).
	lut     [1 << huffLUTBits]uint16
	maxcode [18]int32
	valptr  [17]int32
	mincode [17]int32
	vals    []byte
	ok      bool
}

func buildHuff(counts []byte, vals []byte) (huffTable, error) {
	var h huffTable
	code, k := int32(0), int32(0)
	for l := 1; l <= 16; l++ {
		n := int32(counts[l-1])
		h.valptr[l] = k
		h.mincode[l] = code
		code += n
		k += n
		if n > 0 {
			h.maxcode[l] = code - 1
		} else {
			h.maxcode[l] = -1
		}
		if code > 1<<uint(l) {
			return h, fmt.Errorf("%w: huffman table overfull", ErrMalformed)
		}
		code <<= 1
	}
	h.maxcode[17] = 1 << 30
	if int(k) > len(vals) {
		return h, fmt.Errorf("%w: huffman table values cut off", ErrTruncated)
	}
	h.vals, h.ok = vals[:k], true
	for l := 1; l <= huffLUTBits; l++ {
		for j := int32(0); j < int32(counts[l-1]); j++ {
			c := h.mincode[l] + j
			v := h.vals[h.valptr[l]+j]
			lo, hi := c<<uint(huffLUTBits-l), (c+1)<<uint(huffLUTBits-l)
			for x := lo; x < hi && x < 1<<huffLUTBits; x++ {
				h.lut[x] = uint16(l)<<8 | uint16(v)
			}
		}
	}
	return h, nil
}

// bitReader reads entropy-coded bits, undoing 0xFF00 stuffing; at a marker it feeds
// zeros and records the marker, as decoders do.
type bitReader struct {
	b      []byte
	pos    int
	acc    uint32
	n      uint
	marker byte
}

func (r *bitReader) fill() {
	for r.n <= 24 {
		var c byte
		if r.marker == 0 && r.pos < len(r.b) {
			c = r.b[r.pos]
			if c == 0xFF {
				next := byte(0)
				if r.pos+1 < len(r.b) {
					next = r.b[r.pos+1]
				}
				if next == 0x00 {
					r.pos += 2
				} else {
					r.marker = next
					if r.marker == 0 {
						r.marker = 0xD9
					}
					c = 0
				}
			} else {
				r.pos++
			}
		}
		r.acc |= uint32(c) << (24 - r.n)
		r.n += 8
	}
}

func (r *bitReader) bits(n uint) uint32 {
	if n == 0 {
		return 0
	}
	r.fill()
	v := r.acc >> (32 - n)
	r.acc <<= n
	r.n -= n
	return v
}

func (r *bitReader) decode(h *huffTable) (int, error) {
	r.fill()
	if e := h.lut[r.acc>>(32-huffLUTBits)]; e != 0 {
		n := uint(e >> 8)
		r.acc <<= n
		r.n -= n
		return int(e & 0xFF), nil
	}
	code := int32(0)
	for l := 1; l <= 16; l++ {
		code = code<<1 | int32(r.acc>>31)
		r.acc <<= 1
		r.n--
		if code <= h.maxcode[l] {
			return int(h.vals[h.valptr[l]+code-h.mincode[l]]), nil
		}
	}
	return 0, fmt.Errorf("%w: bad huffman code", ErrMalformed)
}

// restart skips to just after the next RSTn marker.
func (r *bitReader) restart() error {
	r.acc, r.n = 0, 0
	if r.marker >= 0xD0 && r.marker <= 0xD7 {
		r.pos += 2
		r.marker = 0
		return nil
	}
	for r.pos+1 < len(r.b) {
		if r.b[r.pos] == 0xFF && r.b[r.pos+1] >= 0xD0 && r.b[r.pos+1] <= 0xD7 {
			r.pos += 2
			r.marker = 0
			return nil
		}
		r.pos++
	}
	return fmt.Errorf("%w: restart marker missing", ErrTruncated)
}

// decodeLossless decodes a process-14 JPEG into rows*cols*spp samples, interleaved.
func decodeLossless(b []byte, rows, cols, spp int) ([]int32, error) {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return nil, fmt.Errorf("%w: no start-of-image marker", ErrMalformed)
	}
	var tables [4]huffTable
	var prec, width, height, restartInterval int
	type comp struct{ id, h, v int }
	var comps []comp
	var out []int32
	scans := 0
	k := 2
	for {
		m, p, end, err := nextSegment(b, k, true)
		if err != nil {
			return nil, err
		}
		if m == 0xD9 {
			break
		}
		switch m {
		case 0xC3:
			if len(p) < 6 {
				return nil, fmt.Errorf("%w: short frame header", ErrMalformed)
			}
			prec, height, width = int(p[0]), int(binary.BigEndian.Uint16(p[1:])), int(binary.BigEndian.Uint16(p[3:]))
			nf := int(p[5])
			if len(p) < 6+3*nf || nf < 1 || nf > 4 {
				return nil, fmt.Errorf("%w: bad frame header", ErrMalformed)
			}
			for c := 0; c < nf; c++ {
				comps = append(comps, comp{int(p[6+3*c]), int(p[7+3*c] >> 4), int(p[7+3*c] & 15)})
				if comps[c].h != 1 || comps[c].v != 1 {
					return nil, fmt.Errorf("%w: subsampled lossless jpeg", ErrUnsupported)
				}
			}
			if prec < 2 || prec > 16 {
				return nil, fmt.Errorf("%w: precision %d", ErrMalformed, prec)
			}
			if width != cols || height != rows || nf != spp {
				return nil, fmt.Errorf("%w: jpeg is %dx%dx%d, header says %dx%dx%d", ErrMalformed, width, height, nf, cols, rows, spp)
			}
			out = make([]int32, rows*cols*spp)
		case 0xC4:
			for len(p) > 0 {
				if len(p) < 17 {
					return nil, fmt.Errorf("%w: huffman table cut off", ErrTruncated)
				}
				id := int(p[0] & 3)
				total := 0
				for _, c := range p[1:17] {
					total += int(c)
				}
				if len(p) < 17+total {
					return nil, fmt.Errorf("%w: huffman table cut off", ErrTruncated)
				}
				t, err := buildHuff(p[1:17], p[17:17+total])
				if err != nil {
					return nil, err
				}
				tables[id] = t
				p = p[17+total:]
			}
		case 0xDD:
			if len(p) >= 2 {
				restartInterval = int(binary.BigEndian.Uint16(p))
			}
		case 0xDA:
			if out == nil {
				return nil, fmt.Errorf("%w: scan before frame header", ErrMalformed)
			}
			ns := int(p[0])
			if ns < 1 || len(p) < 1+2*ns+3 {
				return nil, fmt.Errorf("%w: bad scan header", ErrMalformed)
			}
			var sc []int // component indexes
			var th []*huffTable
			for s := 0; s < ns; s++ {
				id := int(p[1+2*s])
				idx := -1
				for c := range comps {
					if comps[c].id == id {
						idx = c
					}
				}
				t := &tables[p[2+2*s]>>4&3]
				if idx < 0 || !t.ok {
					return nil, fmt.Errorf("%w: scan names unknown component or table", ErrMalformed)
				}
				sc, th = append(sc, idx), append(th, t)
			}
			pred := int(p[1+2*ns])
			pt := uint(p[3+2*ns] & 15)
			if pred < 1 || pred > 7 {
				if !(pred == 0 && ns > 0) {
					return nil, fmt.Errorf("%w: predictor %d", ErrMalformed, pred)
				}
			}
			r := &bitReader{b: b, pos: end}
			if err := lossScan(r, out, sc, th, cols, rows, spp, prec, pred, pt, restartInterval); err != nil {
				return nil, err
			}
			scans++
			// Continue after the entropy-coded data: find the next marker that is not RST.
			k = afterScan(b, r.pos)
			continue
		}
		k = end
	}
	if scans == 0 {
		return nil, fmt.Errorf("%w: no scan", ErrTruncated)
	}
	return out, nil
}

func lossScan(r *bitReader, out []int32, sc []int, th []*huffTable, w, h, spp, prec, pred int, pt uint, restart int) error {
	mask := int32(1)<<uint(prec) - 1
	initial := int32(1) << uint(prec-int(pt)-1)
	mcu := 0
	at := func(x, y, c int) int32 { return out[(y*w+x)*spp+c] >> pt }
	for y := 0; y < h; y++ {
		// raOnly: this row (or its rest) follows the start of the scan or a restart
		// marker, so only the left neighbour may be used (T.81 H.1.2.1).
		raOnly := y == 0
		for x := 0; x < w; x++ {
			reset := x == 0 && y == 0
			if restart > 0 && mcu > 0 && mcu%restart == 0 {
				if err := r.restart(); err != nil {
					return err
				}
				reset, raOnly = true, true
			}
			for i, c := range sc {
				s, err := r.decode(th[i])
				if err != nil {
					return err
				}
				var diff int32
				switch {
				case s == 0:
				case s == 16:
					diff = 32768
				case s > 16:
					return fmt.Errorf("%w: difference category %d", ErrMalformed, s)
				default:
					v := int32(r.bits(uint(s)))
					if v < 1<<uint(s-1) {
						v += -(1 << uint(s)) + 1
					}
					diff = v
				}
				var p int32
				switch {
				case reset:
					p = initial
				case raOnly:
					p = at(x-1, y, c)
				case x == 0:
					p = at(x, y-1, c)
				default:
					ra, rb, rc := at(x-1, y, c), at(x, y-1, c), at(x-1, y-1, c)
					switch pred {
					case 1:
						p = ra
					case 2:
						p = rb
					case 3:
						p = rc
					case 4:
						p = ra + rb - rc
					case 5:
						p = ra + ((rb - rc) >> 1)
					case 6:
						p = rb + ((ra - rc) >> 1)
					case 7:
						p = (ra + rb) >> 1
					}
				}
				v := (p + diff) & 0xFFFF & (mask >> pt)
				out[(y*w+x)*spp+c] = v << pt
			}
			mcu++
		}
	}
	return nil
}
