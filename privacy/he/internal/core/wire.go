package core

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tuneinsight/lattigo/v5/ring"
)

// Kinds of framed polynomials.
const (
	KindCiphertext byte = 1
	KindShare      byte = 2
)

const wireVersion = 1

var magic = [4]byte{'C', 'H', 'E', wireVersion}

// HeaderSize is the size of the frame before the packed coefficients.
const HeaderSize = 4 + 1 + 4 + 8 + 8 + 2 + 4 + 8 + 1 + 1 + 1

// Header describes a framed polynomial.
type Header struct {
	Kind    byte
	Param   [4]byte
	Job     [8]byte
	Round   uint64
	Point   int
	Index   int
	Context [8]byte // decryption shares: digest of the decryption request
}

// ErrMalformed is wrapped by every framing error.
var ErrMalformed = errors.New("malformed he object")

// Encode frames poly (one modulus, NTT domain) with h.
func (p *Params) Encode(h Header, poly ring.Poly) []byte {
	out := make([]byte, p.WireBytes())
	copy(out, magic[:])
	o := 4
	out[o] = h.Kind
	o++
	copy(out[o:], h.Param[:])
	o += 4
	copy(out[o:], h.Job[:])
	o += 8
	binary.LittleEndian.PutUint64(out[o:], h.Round)
	o += 8
	binary.LittleEndian.PutUint16(out[o:], uint16(h.Point))
	o += 2
	binary.LittleEndian.PutUint32(out[o:], uint32(h.Index))
	o += 4
	copy(out[o:], h.Context[:])
	o += 8
	out[o] = byte(p.LogN)
	out[o+1] = byte(len(poly.Coeffs))
	out[o+2] = byte(p.Bits)
	Pack(out[HeaderSize:], poly.Coeffs[0], p.Bits)
	return out
}

// Decode checks a frame against these parameters and unpacks its polynomial into poly.
// Every check that can fail on outside input is here: size, version, parameter set,
// degree, level, coefficient width and range.
func (p *Params) Decode(b []byte, poly ring.Poly) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, fmt.Errorf("%w: %d bytes is shorter than the %d-byte header", ErrMalformed, len(b), HeaderSize)
	}
	if b[0] != magic[0] || b[1] != magic[1] || b[2] != magic[2] {
		return h, fmt.Errorf("%w: not a concord he object", ErrMalformed)
	}
	if b[3] != wireVersion {
		return h, fmt.Errorf("%w: wire version %d, want %d", ErrMalformed, b[3], wireVersion)
	}
	o := 4
	h.Kind = b[o]
	o++
	copy(h.Param[:], b[o:])
	o += 4
	copy(h.Job[:], b[o:])
	o += 8
	h.Round = binary.LittleEndian.Uint64(b[o:])
	o += 8
	h.Point = int(binary.LittleEndian.Uint16(b[o:]))
	o += 2
	h.Index = int(binary.LittleEndian.Uint32(b[o:]))
	o += 4
	copy(h.Context[:], b[o:])
	o += 8
	logN, levels, width := int(b[o]), int(b[o+1]), uint(b[o+2])
	if h.Param != p.ID {
		return h, fmt.Errorf("%w: made with another parameter set (id %x, want %x for %s)", ErrMalformed, h.Param, p.ID, p.Name)
	}
	if logN != p.LogN {
		return h, fmt.Errorf("%w: ring degree 2^%d, want 2^%d", ErrMalformed, logN, p.LogN)
	}
	if levels != 1 {
		return h, fmt.Errorf("%w: %d moduli (level %d), want 1 (level 0)", ErrMalformed, levels, levels-1)
	}
	if width != p.Bits {
		return h, fmt.Errorf("%w: %d-bit coefficients, want %d", ErrMalformed, width, p.Bits)
	}
	if len(b) != p.WireBytes() {
		return h, fmt.Errorf("%w: %d bytes, want %d", ErrMalformed, len(b), p.WireBytes())
	}
	c := poly.Coeffs[0]
	Unpack(b[HeaderSize:], c, p.Bits)
	for i, v := range c {
		if v >= p.Q {
			return h, fmt.Errorf("%w: coefficient %d is not reduced modulo q", ErrMalformed, i)
		}
	}
	return h, nil
}

// Pack writes the low w bits of each coefficient into dst as a little-endian bit stream.
// dst must hold ceil(len(coeffs)*w/8) bytes.
func Pack(dst []byte, coeffs []uint64, w uint) {
	var acc uint64
	var n uint
	j := 0
	for _, c := range coeffs {
		acc |= c << n
		if n+w >= 64 {
			binary.LittleEndian.PutUint64(dst[j:], acc)
			j += 8
			acc = c >> (64 - n)
			n = n + w - 64
		} else {
			n += w
		}
	}
	for n > 0 {
		dst[j] = byte(acc)
		acc >>= 8
		j++
		if n < 8 {
			n = 0
		} else {
			n -= 8
		}
	}
}

// Unpack is the inverse of Pack. src must hold ceil(len(coeffs)*w/8) bytes.
func Unpack(src []byte, coeffs []uint64, w uint) {
	mask := ^uint64(0) >> (64 - w)
	var acc uint64
	var n uint
	j := 0
	for i := range coeffs {
		if n >= w {
			coeffs[i] = acc & mask
			acc >>= w
			n -= w
			continue
		}
		var word uint64
		var got uint
		if j+8 <= len(src) {
			word = binary.LittleEndian.Uint64(src[j:])
			j += 8
			got = 64
		} else {
			for k := 0; j < len(src); k++ {
				word |= uint64(src[j]) << (8 * k)
				j++
				got += 8
			}
		}
		coeffs[i] = (acc | word<<n) & mask
		used := w - n
		acc = word >> used
		n = got - used
	}
}
