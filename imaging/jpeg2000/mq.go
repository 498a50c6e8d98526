package jpeg2000

import "math/bits"

// The MQ arithmetic decoder (Annex C) and the raw bit reader of the bypass mode.

type mqState struct {
	qe         uint32
	nmps, nlps uint8
	swap       bool
}

// mqTable is Table C.2.
var mqTable = [47]mqState{
	{0x5601, 1, 1, true}, {0x3401, 2, 6, false}, {0x1801, 3, 9, false}, {0x0AC1, 4, 12, false},
	{0x0521, 5, 29, false}, {0x0221, 38, 33, false}, {0x5601, 7, 6, true}, {0x5401, 8, 14, false},
	{0x4801, 9, 14, false}, {0x3801, 10, 14, false}, {0x3001, 11, 17, false}, {0x2401, 12, 18, false},
	{0x1C01, 13, 20, false}, {0x1601, 29, 21, false}, {0x5601, 15, 14, true}, {0x5401, 16, 14, false},
	{0x5101, 17, 15, false}, {0x4801, 18, 16, false}, {0x3801, 19, 17, false}, {0x3401, 20, 18, false},
	{0x3001, 21, 19, false}, {0x2801, 22, 19, false}, {0x2401, 23, 20, false}, {0x2201, 24, 21, false},
	{0x1C01, 25, 22, false}, {0x1801, 26, 23, false}, {0x1601, 27, 24, false}, {0x1401, 28, 25, false},
	{0x1201, 29, 26, false}, {0x1101, 30, 27, false}, {0x0AC1, 31, 28, false}, {0x09C1, 32, 29, false},
	{0x08A1, 33, 30, false}, {0x0521, 34, 31, false}, {0x0441, 35, 32, false}, {0x02A1, 36, 33, false},
	{0x0221, 37, 34, false}, {0x0141, 38, 35, false}, {0x0111, 39, 36, false}, {0x0085, 40, 37, false},
	{0x0049, 41, 38, false}, {0x0025, 42, 39, false}, {0x0015, 43, 40, false}, {0x0009, 44, 41, false},
	{0x0005, 45, 42, false}, {0x0001, 45, 43, false}, {0x5601, 46, 46, false},
}

// Context numbers of tier-1: 0..8 zero coding, 9..13 sign, 14..16 refinement.
const (
	ctxRL  = 17
	ctxUni = 18
	numCtx = 19
)

// mqCtx is one entry of the decoder's combined state table: a Table C.2 state
// together with its more probable symbol, so that a context is a single byte and a
// transition a single table load (the layout OpenJPEG uses).
type mqCtx struct {
	qe         uint32
	mps        uint8
	nmps, nlps uint8 // indices of the next entries
}

// mqStates[2*s+mps] is state s of Table C.2 with that more probable symbol.
var mqStates [256]mqCtx // 94 used; 256 so that a byte index needs no bounds check

func init() {
	for s, st := range mqTable {
		for mps := 0; mps < 2; mps++ {
			lps := mps
			if st.swap {
				lps ^= 1
			}
			mqStates[2*s+mps] = mqCtx{
				qe: st.qe, mps: uint8(mps),
				nmps: uint8(2*int(st.nmps) + mps), nlps: uint8(2*int(st.nlps) + lps),
			}
		}
	}
}

type mqDecoder struct {
	data []byte
	pos  int
	a, c uint32
	ct   int
	cx   [32]uint8 // index into mqStates for contexts 0..numCtx-1; 32 so that cx&31 needs no bounds check
}

// byteAt treats the bytes past the segment as 0xFF, which reads as a marker and
// feeds 1-bits, as the standard's decoder does at the end of a codeword.
func (m *mqDecoder) byteAt(i int) uint32 {
	if uint(i) < uint(len(m.data)) {
		return uint32(m.data[i])
	}
	return 0xFF
}

func (m *mqDecoder) resetContexts() {
	m.cx = [32]uint8{}
	m.cx[ctxUni] = 2 * 46
	m.cx[ctxRL] = 2 * 3
	m.cx[0] = 2 * 4
}

func (m *mqDecoder) init(data []byte) {
	m.data, m.pos = data, 0
	m.c = m.byteAt(0) << 16
	m.byteIn()
	m.c <<= 7
	m.ct -= 7
	m.a = 0x8000
}

func (m *mqDecoder) byteIn() {
	if m.byteAt(m.pos) == 0xFF {
		if m.byteAt(m.pos+1) > 0x8F {
			m.c += 0xFF00
			m.ct = 8
		} else {
			m.pos++
			m.c += m.byteAt(m.pos) << 9
			m.ct = 7
		}
	} else {
		m.pos++
		m.c += m.byteAt(m.pos) << 8
		m.ct = 8
	}
}

// slowOrMPS finishes a decision of which A has had Qe subtracted but that
// did not take (or did not act on) the common case.
func (m *mqDecoder) slowOrMPS(cx int, s *mqCtx, a, c uint32) (int, uint32, uint32) {
	if c>>16 >= s.qe && a >= 0x8000 {
		return int(s.mps), a, c - s.qe<<16
	}
	return m.slow(cx, s, a, c)
}

// decide decodes one decision in context cx, with the A and C registers passed
// in and returned so that the tier-1 passes keep them in registers: the common
// case (the more probable symbol with no renormalisation) here, the rest in
// slow. The compiler does not inline it (nor would it a method holding A and C in
// the decoder), so the passes write the common case out themselves for their
// most frequent decisions.
func (m *mqDecoder) decide(cx int, a, c uint32) (int, uint32, uint32) {
	s := &mqStates[m.cx[cx&31]]
	a -= s.qe
	if c>>16 >= s.qe && a >= 0x8000 {
		return int(s.mps), a, c - s.qe<<16
	}
	return m.slow(cx, s, a, c)
}

// slow finishes a decision that needs a conditional exchange or
// renormalisation (C.3.2); a has had Qe subtracted.
func (m *mqDecoder) slow(cx int, s *mqCtx, a, c uint32) (int, uint32, uint32) {
	lower := c>>16 < s.qe // C in the lower (Qe) sub-interval
	if !lower {
		c -= s.qe << 16
	}
	var d int
	// In the lower sub-interval the more probable symbol is decoded when A < Qe
	// (the intervals are exchanged); in the upper one, when A >= Qe.
	if (a < s.qe) == lower {
		d = int(s.mps)
		m.cx[cx&31] = s.nmps
	} else {
		d = int(s.mps ^ 1)
		m.cx[cx&31] = s.nlps
	}
	if lower {
		a = s.qe
	}
	// Renormalise: shift A left until its top bit is set, C with it, reading a
	// byte whenever the bits of the last one are used up.
	for a < 0x8000 {
		if m.ct == 0 {
			m.c = c
			m.byteIn()
			c = m.c
		}
		n := min(bits.LeadingZeros32(a)-16, m.ct)
		a <<= uint(n)
		c <<= uint(n)
		m.ct -= n
	}
	return d, a, c
}

// rawDecoder reads the bypass (lazy) segments: plain bits with a stuffed bit after 0xFF.
type rawDecoder struct {
	data []byte
	pos  int
	c    uint32
	ct   int
}

func (r *rawDecoder) init(data []byte) {
	*r = rawDecoder{data: data}
}

func (r *rawDecoder) bit() int {
	if r.ct == 0 {
		next := uint32(0xFF)
		if r.pos < len(r.data) {
			next = uint32(r.data[r.pos])
		}
		if r.c == 0xFF {
			if next > 0x8F {
				r.c = 0xFF
				r.ct = 8
			} else {
				r.c = next
				r.pos++
				r.ct = 7
			}
		} else {
			r.c = next
			r.pos++
			r.ct = 8
		}
	}
	r.ct--
	return int(r.c>>uint(r.ct)) & 1
}
