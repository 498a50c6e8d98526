package jpeg2000

// The four bit streams of an HT code-block (ITU-T T.814 clause 7): MagSgn and
// SigProp grow forward and are read least significant bit first; MEL grows
// forward and is read most significant bit first; VLC and MagRef grow backward
// from the end of their segments. Each has its own bit-unstuffing rule, and each
// reads a fixed filler once its bytes are spent, so that a short or damaged
// segment decodes to some values instead of reading out of bounds.

// htFwd reads MagSgn or SigProp: after a 0xFF byte the next byte carries seven bits.
type htFwd struct {
	b       []byte
	pos     int
	acc     uint64
	n       uint
	unstuff bool
	fill    byte
}

func (r *htFwd) init(b []byte, fill byte) {
	*r = htFwd{b: b, fill: fill}
	r.refill()
}

func (r *htFwd) refill() {
	for r.n <= 56 {
		d := r.fill
		if r.pos < len(r.b) {
			d = r.b[r.pos]
			r.pos++
		}
		v, bits := uint64(d), uint(8)
		if r.unstuff {
			v, bits = v&0x7F, 7
		}
		r.acc |= v << r.n
		r.n += bits
		r.unstuff = d == 0xFF
	}
}

// take consumes k <= 32 bits and returns them, first bit in the LSB.
func (r *htFwd) take(k uint) uint32 {
	if r.n < k {
		r.refill()
	}
	v := uint32(r.acc & (1<<k - 1))
	r.acc >>= k
	r.n -= k
	return v
}

// htRev reads VLC or MagRef backward from b[pos] down to b[end]: a byte after
// one above 0x8F whose seven low bits are all ones carries seven bits.
type htRev struct {
	b        []byte
	pos, end int
	acc      uint64
	n        uint
	unstuff  bool
}

func (r *htRev) refill() {
	for r.n <= 56 {
		d := byte(0)
		if r.pos >= r.end {
			d = r.b[r.pos]
			r.pos--
		}
		v, bits := uint64(d), uint(8)
		if r.unstuff && d&0x7F == 0x7F {
			v, bits = v&0x7F, 7
		}
		r.acc |= v << r.n
		r.n += bits
		r.unstuff = d > 0x8F
	}
}

// peek returns the next 32 bits without consuming them.
func (r *htRev) peek() uint32 {
	if r.n < 32 {
		r.refill()
	}
	return uint32(r.acc)
}

func (r *htRev) skip(k uint) {
	if r.n < k {
		r.refill()
	}
	r.acc >>= k
	r.n -= k
}

// initVLC starts the VLC stream of a cleanup segment of lcup bytes whose last
// scup bytes hold MEL and VLC: it begins in the upper half of byte lcup-2 (the
// lower half and byte lcup-1 hold Scup).
func (r *htRev) initVLC(b []byte, lcup, scup int) {
	d := b[lcup-2]
	*r = htRev{b: b, pos: lcup - 3, end: lcup - scup}
	r.acc = uint64(d >> 4)
	r.n = 4
	if r.acc&7 == 7 {
		r.n = 3
		r.acc &= 7
	}
	r.unstuff = d|0x0F > 0x8F
	r.refill()
}

// initMagRef starts the MagRef stream at the last byte of the refinement segment
// b[lcup:lcup+lref].
func (r *htRev) initMagRef(b []byte, lcup, lref int) {
	*r = htRev{b: b, pos: lcup + lref - 1, end: lcup, unstuff: true}
	r.refill()
}

// htMEL decodes the adaptive run-length (MEL) events of the cleanup pass.
type htMEL struct {
	b        []byte
	pos, end int
	cur      byte
	nb       uint
	unstuff  bool
	k        int
	run      int
	one      bool
}

var melExp = [13]int{0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5}

func (m *htMEL) init(b []byte, lcup, scup int) {
	*m = htMEL{b: b, pos: lcup - scup, end: lcup - 1}
}

func (m *htMEL) bit() int {
	if m.nb == 0 {
		d := byte(0xFF)
		if m.pos < m.end {
			d = m.b[m.pos]
			if m.pos == m.end-1 {
				d |= 0x0F // the low half of the last byte is Scup's
			}
			m.pos++
		}
		m.cur, m.nb = d, 8
		if m.unstuff {
			m.nb = 7
		}
		m.unstuff = d == 0xFF
	}
	m.nb--
	return int(m.cur>>m.nb) & 1
}

// event returns the next MEL symbol.
func (m *htMEL) event() int {
	if m.run == 0 && !m.one {
		e := melExp[m.k]
		if m.bit() == 1 {
			m.run = 1 << uint(e)
			m.k = min(12, m.k+1)
		} else {
			v := 0
			for i := 0; i < e; i++ {
				v = v<<1 | m.bit()
			}
			m.run = v
			m.k = max(0, m.k-1)
			m.one = true
		}
	}
	if m.run > 0 {
		m.run--
		return 0
	}
	m.one = false
	return 1
}
