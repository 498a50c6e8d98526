//go:build amd64 && !purego

package imaging

import "golang.org/x/sys/cpu"

// useAVX2 selects the vector conversion. Its results equal the Go loops' bit
// for bit: the conversion of a 16-bit integer to float32 is exact, and the
// multiply and the add round separately, as the Go code does on amd64.
var useAVX2 = cpu.X86.HasAVX2

// le16AVX2 converts 16·n16 samples as le16ToFloat does, sixteen at a time.
// sbit must be 0 (unsigned) or the top bit of m, with m = 2^bits - 1: the sign
// is extended as (v ^ sbit) - sbit.
//
//go:noescape
func le16AVX2(out *float32, raw *byte, n16 int, m, sbit uint32, sl, ic float32)
