package jpeg2000

import "fmt"

// Levels returns the number of wavelet decomposition levels every component
// has by the main header (COD and COC): the most [Options.ReduceLevels] can
// discard. A tile-part header may still ask for fewer in its tile, which
// Decode then reports as unsupported.
func Levels(data []byte) (int, error) {
	b, err := codestream(data)
	if err != nil {
		return 0, err
	}
	if len(b) < 6 || u16(b) != mSOC || u16(b[2:]) != mSIZ {
		return 0, malformed("no SOC and SIZ markers")
	}
	var h *header
	for pos := 2; ; {
		if pos+4 > len(b) {
			return 0, fmt.Errorf("%w: main header", ErrTruncated)
		}
		m, l := u16(b[pos:]), u16(b[pos+2:])
		if m == mSOT || m == mEOC {
			break
		}
		if l < 2 || pos+2+l > len(b) {
			return 0, fmt.Errorf("%w: marker 0x%04X of %d bytes", ErrTruncated, m, l)
		}
		seg := b[pos+4 : pos+2+l]
		pos += 2 + l
		switch {
		case m == mSIZ:
			s, err := parseSIZ(seg, Options{MaxSamples: 1 << 62})
			if err != nil {
				return 0, err
			}
			nc := len(s.comps)
			h = &header{cod: make([]codingStyle, nc), cocSet: make([]bool, nc)}
		case h == nil:
			return 0, malformed("marker 0x%04X before SIZ", m)
		case m == mCOD:
			err = h.parseCOD(seg, len(h.cod))
		case m == mCOC:
			err = h.parseCOC(seg, len(h.cod))
		}
		if err != nil {
			return 0, err
		}
	}
	if h == nil || !h.hasCOD {
		return 0, malformed("main header lacks COD")
	}
	n := maxLevels
	for _, cs := range h.cod {
		n = min(n, cs.levels)
	}
	return n, nil
}
