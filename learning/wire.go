package learning

import (
	"encoding/binary"
	"fmt"
	"math"
)

// EncodeWeights is the wire and storage form of a flat weight (or update)
// vector: float32 little-endian, in layout order. Models, updates and
// checkpoints all travel and rest in this form.
func EncodeWeights(w []float32) []byte {
	out := make([]byte, 4*len(w))
	for i, f := range w {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(f))
	}
	return out
}

// DecodeWeights is the inverse of EncodeWeights.
func DecodeWeights(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("%w: %d bytes is not a whole number of float32 values", ErrWeights, len(b))
	}
	return DecodeWeightsInto(nil, b), nil
}

// DecodeWeightsInto decodes b (a multiple of 4 bytes) into buf, reusing
// its storage when large enough, and returns the filled slice.
func DecodeWeightsInto(buf []float32, b []byte) []float32 {
	n := len(b) / 4
	if cap(buf) < n {
		buf = make([]float32, n)
	}
	buf = buf[:n]
	for i := range buf {
		buf[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return buf
}
