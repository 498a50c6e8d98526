//go:build !amd64 || purego

package imaging

const useAVX2 = false

func le16AVX2(out *float32, raw *byte, n16 int, m, sbit uint32, sl, ic float32) {
	panic("imaging: no vector conversion in this build")
}
