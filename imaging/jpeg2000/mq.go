package jpeg2000

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

type mqDecoder struct {
	data  []byte
	pos   int
	a, c  uint32
	ct    int
	state [numCtx]uint8
	mps   [numCtx]uint8
}

// byteAt treats the bytes past the segment as 0xFF, which reads as a marker and
// feeds 1-bits, as the standard's decoder does at the end of a codeword.
func (m *mqDecoder) byteAt(i int) uint32 {
	if i < len(m.data) {
		return uint32(m.data[i])
	}
	return 0xFF
}

func (m *mqDecoder) resetContexts() {
	for i := range m.state {
		m.state[i], m.mps[i] = 0, 0
	}
	m.state[ctxUni] = 46
	m.state[ctxRL] = 3
	m.state[0] = 4
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

func (m *mqDecoder) decode(cx int) int {
	st := &mqTable[m.state[cx]]
	qe := st.qe
	m.a -= qe
	var d int
	if m.c>>16 < qe {
		if m.a < qe {
			d = int(m.mps[cx])
			m.state[cx] = st.nmps
		} else {
			d = int(1 - m.mps[cx])
			if st.swap {
				m.mps[cx] ^= 1
			}
			m.state[cx] = st.nlps
		}
		m.a = qe
	} else {
		m.c -= qe << 16
		if m.a&0x8000 != 0 {
			return int(m.mps[cx])
		}
		if m.a < qe {
			d = int(1 - m.mps[cx])
			if st.swap {
				m.mps[cx] ^= 1
			}
			m.state[cx] = st.nlps
		} else {
			d = int(m.mps[cx])
			m.state[cx] = st.nmps
		}
	}
	for {
		if m.ct == 0 {
			m.byteIn()
		}
		m.a <<= 1
		m.c <<= 1
		m.ct--
		if m.a >= 0x8000 {
			break
		}
	}
	return d
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
