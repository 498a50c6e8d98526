package learning

import (
	"errors"
	"math"
	"testing"
)

func TestWeightsWireRoundTrip(t *testing.T) {
	w := []float32{0, -1.5, math.MaxFloat32, math.SmallestNonzeroFloat32, 3.25}
	b := EncodeWeights(w)
	if len(b) != 20 || b[4] != 0 || b[7] != 0xbf { // -1.5 = 0xbfc00000, little-endian
		t.Fatalf("encoding % x", b)
	}
	got, err := DecodeWeights(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range w {
		if got[i] != w[i] {
			t.Fatalf("value %d: %v != %v", i, got[i], w[i])
		}
	}
	if _, err := DecodeWeights(b[:7]); !errors.Is(err, ErrWeights) {
		t.Fatalf("7 bytes decoded without error: %v", err)
	}
	buf := make([]float32, 0, 8)
	if out := DecodeWeightsInto(buf, b); &out[0] != &buf[:1][0] {
		t.Fatal("DecodeWeightsInto did not reuse the buffer")
	}
}
