package imaging

import (
	"runtime"
	"sync"
)

// parallelPixels is the frame size from which a conversion is split over the
// cores: below it, starting goroutines costs more than it saves.
const parallelPixels = 1 << 20

// lut16 is a table from masked 16-bit sample to float32 value. Tables are pooled:
// a large frame needs one, and 256 KiB per frame would be garbage.
type lut16 = [1 << 16]float32

var lut16Pool = sync.Pool{New: func() any { return new(lut16) }}

// le16ToFloat writes out[k] = value(u16(raw[2k:]) & m)·sl + ic for every k, where
// u16 reads little-endian and value is the number itself, or when sbit is not
// zero (the sign bit of a two's complement sample of m's width) its signed value.
// raw must hold 2·len(out) bytes.
//
// With AVX2 (amd64) sixteen samples are converted per step. Elsewhere a frame of
// at least 16 samples per possible value goes through a table of the m+1 results:
// a load per sample instead of a conversion, multiply and add. Both run a chest
// X-ray's conversion at close to memory speed, and both give exactly what the
// per-sample formula gives. Large frames are split over GOMAXPROCS goroutines
// (each sample is computed on its own, so the split changes nothing either).
// sbit is 0 or m's top bit.
func le16ToFloat(out []float32, raw []byte, m, sbit uint16, sl, ic float32) {
	le16Convert(out, raw, m, sbit, sl, ic, useAVX2)
}

// le16Convert is le16ToFloat with the vector kernel on or off (tests run both).
func le16Convert(out []float32, raw []byte, m, sbit uint16, sl, ic float32, vector bool) {
	raw = raw[:2*len(out)]
	var lut *lut16
	if !vector && len(out) >= 16*(int(m)+1) {
		lut = lut16Pool.Get().(*lut16)
		defer lut16Pool.Put(lut)
		for u := 0; u <= int(m); u++ {
			lut[u] = value16(uint16(u), m, sbit, sl, ic)
		}
	}
	chunk := func(out []float32, raw []byte) {
		if n16 := len(out) / 16; vector && n16 > 0 {
			le16AVX2(&out[0], &raw[0], n16, uint32(m), uint32(sbit), sl, ic)
			out, raw = out[16*n16:], raw[32*n16:]
		}
		switch {
		case lut != nil:
			le16Table(out, raw, m, lut)
		case sbit == 0:
			le16Chunk(out, raw, m, sl, ic)
		default:
			for k := range out {
				out[k] = value16(uint16(raw[2*k])|uint16(raw[2*k+1])<<8, m, sbit, sl, ic)
			}
		}
	}
	workers := runtime.GOMAXPROCS(0)
	if len(out) < parallelPixels || workers < 2 {
		chunk(out, raw)
		return
	}
	per := (len(out)/workers + 7) &^ 7
	var wg sync.WaitGroup
	for lo := 0; lo < len(out); lo += per {
		hi := min(lo+per, len(out))
		wg.Add(1)
		go func() {
			defer wg.Done()
			chunk(out[lo:hi], raw[2*lo:2*hi])
		}()
	}
	wg.Wait()
}

// value16 is one sample's value: the masked stored value, sign-extended from
// sbit when that is set, then rescaled.
func value16(u, m, sbit uint16, sl, ic float32) float32 {
	u &= m
	v := int32(u)
	if u&sbit != 0 {
		v -= int32(m) + 1
	}
	return float32(v)*sl + ic
}

// le16Table looks every sample up in lut, eight at a time through fixed-size
// array views so that the loop has no bounds checks (a uint16 index needs none).
func le16Table(out []float32, raw []byte, m uint16, lut *lut16) {
	k := 0
	for ; k+8 <= len(out); k += 8 {
		b := (*[16]byte)(raw[2*k : 2*k+16])
		o := (*[8]float32)(out[k : k+8])
		o[0] = lut[(uint16(b[0])|uint16(b[1])<<8)&m]
		o[1] = lut[(uint16(b[2])|uint16(b[3])<<8)&m]
		o[2] = lut[(uint16(b[4])|uint16(b[5])<<8)&m]
		o[3] = lut[(uint16(b[6])|uint16(b[7])<<8)&m]
		o[4] = lut[(uint16(b[8])|uint16(b[9])<<8)&m]
		o[5] = lut[(uint16(b[10])|uint16(b[11])<<8)&m]
		o[6] = lut[(uint16(b[12])|uint16(b[13])<<8)&m]
		o[7] = lut[(uint16(b[14])|uint16(b[15])<<8)&m]
	}
	for ; k < len(out); k++ {
		out[k] = lut[(uint16(raw[2*k])|uint16(raw[2*k+1])<<8)&m]
	}
}

// le16Chunk is le16ToFloat for unsigned samples without a table: eight samples a
// step, without bounds checks.
func le16Chunk(out []float32, raw []byte, m uint16, sl, ic float32) {
	k := 0
	if sl == 1 && ic == 0 {
		for ; k+8 <= len(out); k += 8 {
			b := (*[16]byte)(raw[2*k : 2*k+16])
			o := (*[8]float32)(out[k : k+8])
			o[0] = float32((uint16(b[0]) | uint16(b[1])<<8) & m)
			o[1] = float32((uint16(b[2]) | uint16(b[3])<<8) & m)
			o[2] = float32((uint16(b[4]) | uint16(b[5])<<8) & m)
			o[3] = float32((uint16(b[6]) | uint16(b[7])<<8) & m)
			o[4] = float32((uint16(b[8]) | uint16(b[9])<<8) & m)
			o[5] = float32((uint16(b[10]) | uint16(b[11])<<8) & m)
			o[6] = float32((uint16(b[12]) | uint16(b[13])<<8) & m)
			o[7] = float32((uint16(b[14]) | uint16(b[15])<<8) & m)
		}
	} else {
		for ; k+8 <= len(out); k += 8 {
			b := (*[16]byte)(raw[2*k : 2*k+16])
			o := (*[8]float32)(out[k : k+8])
			o[0] = float32((uint16(b[0])|uint16(b[1])<<8)&m)*sl + ic
			o[1] = float32((uint16(b[2])|uint16(b[3])<<8)&m)*sl + ic
			o[2] = float32((uint16(b[4])|uint16(b[5])<<8)&m)*sl + ic
			o[3] = float32((uint16(b[6])|uint16(b[7])<<8)&m)*sl + ic
			o[4] = float32((uint16(b[8])|uint16(b[9])<<8)&m)*sl + ic
			o[5] = float32((uint16(b[10])|uint16(b[11])<<8)&m)*sl + ic
			o[6] = float32((uint16(b[12])|uint16(b[13])<<8)&m)*sl + ic
			o[7] = float32((uint16(b[14])|uint16(b[15])<<8)&m)*sl + ic
		}
	}
	for ; k < len(out); k++ {
		out[k] = float32((uint16(raw[2*k])|uint16(raw[2*k+1])<<8)&m)*sl + ic
	}
}
