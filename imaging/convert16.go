package imaging

import (
	"runtime"
	"sync"
)

// parallelPixels is the frame size from which a conversion is split over the
// cores: below it, starting goroutines costs more than it saves.
const parallelPixels = 1 << 20

// le16ToFloat writes out[k] = float32(u16(raw[2k:]) & m)·sl + ic for every k,
// where u16 reads little-endian. It works eight samples at a time through
// fixed-size array views, so the inner loop has no bounds checks, and splits
// large frames over GOMAXPROCS goroutines (results are identical either way:
// each sample is computed independently). raw must hold 2·len(out) bytes.
func le16ToFloat(out []float32, raw []byte, m uint16, sl, ic float32) {
	raw = raw[:2*len(out)]
	workers := runtime.GOMAXPROCS(0)
	if len(out) < parallelPixels || workers < 2 {
		le16Chunk(out, raw, m, sl, ic)
		return
	}
	per := (len(out)/workers + 7) &^ 7
	var wg sync.WaitGroup
	for lo := 0; lo < len(out); lo += per {
		hi := min(lo+per, len(out))
		wg.Add(1)
		go func() {
			defer wg.Done()
			le16Chunk(out[lo:hi], raw[2*lo:2*hi], m, sl, ic)
		}()
	}
	wg.Wait()
}

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
