package imaging

import (
	"math/rand/v2"
	"testing"
)

// TestLE16ToFloat checks the chunked and parallel conversion against the
// plain per-sample formula, on sizes that leave a tail and on one large
// enough to be split over goroutines.
func TestLE16ToFloat(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 8, 9, 1000, parallelPixels + 13} {
		raw := make([]byte, 2*n+3) // longer than needed: only 2n bytes are read
		for i := range raw {
			raw[i] = byte(rng.UintN(256))
		}
		for _, c := range []struct {
			m      uint16
			sl, ic float32
		}{{0xffff, 1, 0}, {0x0fff, 1, 0}, {0x0fff, 0.5, -1024}} {
			out := make([]float32, n)
			le16ToFloat(out, raw, c.m, c.sl, c.ic)
			for k := range out {
				want := float32((uint16(raw[2*k])|uint16(raw[2*k+1])<<8)&c.m)*c.sl + c.ic
				if out[k] != want {
					t.Fatalf("n=%d mask %#x slope %v: sample %d is %v, want %v", n, c.m, c.sl, k, out[k], want)
				}
			}
		}
	}
}
