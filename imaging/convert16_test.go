package imaging

import (
	"math/rand/v2"
	"testing"
)

// TestLE16ToFloat checks the vector, table, chunked and parallel conversions, into a
// buffer that held other values, against the
// plain per-sample formula, on sizes that leave a tail and on one large
// enough to be split over goroutines.
func TestLE16ToFloat(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 33, 1000, 16<<12 + 5, parallelPixels + 13} {
		raw := make([]byte, 2*n+3) // longer than needed: only 2n bytes are read
		for i := range raw {
			raw[i] = byte(rng.UintN(256))
		}
		for _, c := range []struct {
			m, sbit uint16
			sl, ic  float32
		}{{0xffff, 0, 1, 0}, {0x0fff, 0, 1, 0}, {0x0fff, 0, 0.5, -1024}, {0x0fff, 0x0800, 1, -1024}, {0xffff, 0x8000, 0.25, 3}} {
			for _, vector := range []bool{false, useAVX2} {
				out := make([]float32, n)
				for k := range out {
					out[k] = float32(k) // a reused buffer: every value must be written
				}
				le16Convert(out, raw, c.m, c.sbit, c.sl, c.ic, vector)
				for k := range out {
					u := (uint16(raw[2*k]) | uint16(raw[2*k+1])<<8) & c.m
					v := int32(u)
					if c.sbit != 0 && u&c.sbit != 0 {
						v -= int32(c.m) + 1
					}
					want := float32(v)*c.sl + c.ic
					if out[k] != want {
						t.Fatalf("n=%d mask %#x sign %#x slope %v vector %v: sample %d is %v, want %v", n, c.m, c.sbit, c.sl, vector, k, out[k], want)
					}
				}
			}
		}
	}
}
