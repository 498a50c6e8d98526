package imaging

import (
	"encoding/binary"
	"fmt"
)

// decodeFrame decompresses encapsulated frame i into StoredFrame's layout.
func (im *Image) decodeFrame(i int) ([]byte, error) {
	src := im.frames[i]
	// Compressed data cannot promise more than a codec's best ratio: refuse frames
	// whose declared size is out of reach before allocating for them.
	samples := int64(im.Rows) * int64(im.Columns) * int64(im.SamplesPerPixel)
	var ratio int64
	switch im.TransferSyntaxUID {
	case TSRLE:
		ratio = 64 * int64(im.BytesPerSample()) // a 2-byte PackBits run gives 128 bytes
		if im.BitsAllocated == 1 {
			ratio *= 8 // a segment may hold packed bits, 8 pixels a byte
		}
	case TSJPEGLossless, TSJPEGLossSV1:
		ratio = 8 // at least one bit per sample
	case TSJPEGLSLossl, TSJPEGLSNear:
		ratio = 4096 // run mode codes long runs in a few bits
	case TSJ2KLossless, TSJ2K, TSHTJ2KLossless, TSHTJ2KLosslessRPCL, TSHTJ2K:
		ratio = 1 << 16 // an empty packet is one bit; the decoder bounds its own memory
	default:
		ratio = 2048 // DCT: a flat 8x8 block costs at least a few bits
	}
	if samples > ratio*int64(len(src))+4096 {
		return nil, fmt.Errorf("%w: frame %d declares %d samples but holds %d compressed bytes", ErrTruncated, i, samples, len(src))
	}
	switch im.TransferSyntaxUID {
	case TSRLE:
		return im.decodeRLE(src)
	case TSJPEGBaseline, TSJPEGExtended, TSJPEGLossless, TSJPEGLossSV1, TSJPEGLSLossl, TSJPEGLSNear:
		return im.decodeJPEGOwn(src)
	case TSJ2KLossless, TSJ2K, TSHTJ2KLossless, TSHTJ2KLosslessRPCL, TSHTJ2K:
		return im.decodeJ2K(src)
	}
	return nil, &UnsupportedSyntaxError{UID: im.TransferSyntaxUID}
}

// Decodable returns nil when this reader can decode the image's pixel data, judged from
// the transfer syntax and, for JPEG, the first frame's process and precision; otherwise
// an error for which [Reason] gives the category.
func (im *Image) Decodable() error {
	if !CanDecode(im.TransferSyntaxUID) {
		return &UnsupportedSyntaxError{UID: im.TransferSyntaxUID}
	}
	if isJ2K(im.TransferSyntaxUID) && len(im.frames) > 0 {
		if err := im.checkJ2KHeader(im.frames[0]); err != nil {
			return err
		}
	}
	if im.TransferSyntaxUID == TSJPEGBaseline || im.TransferSyntaxUID == TSJPEGExtended {
		if len(im.frames) > 0 && !jpegIsLossless(im.frames[0]) {
			if p := jpegPrecision(im.frames[0]); p != 8 && p != 12 {
				return &UnsupportedSyntaxError{UID: im.TransferSyntaxUID, Detail: fmt.Sprintf(" with %d-bit samples", p)}
			}
		}
	}
	return nil
}

// CanDecode says whether this reader decodes pixel data in the transfer syntax
// (for JPEG, 8-bit DCT and lossless; JPEG 2000 Part 1 and HTJ2K; see [Image.Decodable]).
func CanDecode(ts string) bool {
	switch ts {
	case TSImplicitLE, TSExplicitLE, TSExplicitBE, TSDeflatedLE, TSRLE, TSJPEGBaseline, TSJPEGExtended, TSJPEGLossless, TSJPEGLossSV1,
		TSJPEGLSLossl, TSJPEGLSNear, TSJ2KLossless, TSJ2K, TSHTJ2KLossless, TSHTJ2KLosslessRPCL, TSHTJ2K:
		return true
	}
	return false
}

// decodeRLE decodes one DICOM RLE frame (PS3.5 Annex G): a 64-byte header of segment
// offsets, one PackBits segment per byte plane, most significant plane first.
func (im *Image) decodeRLE(src []byte) ([]byte, error) {
	if len(src) < 64 {
		return nil, fmt.Errorf("%w: rle frame shorter than its 64-byte header", ErrTruncated)
	}
	nseg := int(binary.LittleEndian.Uint32(src))
	// With 1 bit allocated a segment holds one byte per pixel (BytesPerSample is 1), as
	// pydicom and vtk-dicom read it; a segment of exactly the packed frame's size holds
	// packed bits, as some writers (pydicom's encoder once among them) made it.
	bps := im.BytesPerSample()
	want := bps * im.SamplesPerPixel
	if nseg != want {
		return nil, fmt.Errorf("%w: rle frame has %d segments, %d expected for %d samples of %d bits", ErrMalformed, nseg, want, im.SamplesPerPixel, im.BitsAllocated)
	}
	offs := make([]int, nseg+1)
	for k := 0; k < nseg; k++ {
		offs[k] = int(binary.LittleEndian.Uint32(src[4+4*k:]))
	}
	offs[nseg] = len(src)
	pixels := im.Rows * im.Columns
	out := make([]byte, pixels*want)
	plane := make([]byte, pixels)
	for k := 0; k < nseg; k++ {
		a, b := offs[k], offs[k+1]
		if a < 64 || a > len(src) || b < a || b > len(src) {
			return nil, fmt.Errorf("%w: rle segment %d offset %d outside the frame", ErrMalformed, k, a)
		}
		n, err := unpackBits(plane, src[a:b])
		if err != nil {
			return nil, fmt.Errorf("rle segment %d: %w", k, err)
		}
		if n < pixels && im.BitsAllocated == 1 && nseg == 1 && n == (pixels+7)/8 {
			for p := range out { // first pixel in the least significant bit, as native data
				out[p] = plane[p>>3] >> (p & 7) & 1
			}
			return out, nil
		}
		if n < pixels {
			return nil, fmt.Errorf("rle segment %d: %w: decodes to %d bytes, %d expected", k, ErrTruncated, n, pixels)
		}
		sample, byteMSB := k/bps, k%bps
		pos := sample*bps + (bps - 1 - byteMSB) // little-endian output
		for p := 0; p < pixels; p++ {
			out[p*want+pos] = plane[p]
		}
	}
	return out, nil
}

// unpackBits fills dst from a PackBits stream and returns the bytes written, fewer
// than len(dst) when the segment is short.
func unpackBits(dst, src []byte) (int, error) {
	d, s := 0, 0
	for d < len(dst) && s < len(src) {
		n := int(int8(src[s]))
		s++
		switch {
		case n >= 0:
			cnt := n + 1
			if s+cnt > len(src) {
				cnt = len(src) - s
			}
			if d+cnt > len(dst) {
				cnt = len(dst) - d
			}
			copy(dst[d:], src[s:s+cnt])
			d += cnt
			s += n + 1
		case n != -128:
			if s >= len(src) {
				return d, fmt.Errorf("%w: rle run without a value", ErrTruncated)
			}
			cnt := 1 - n
			if d+cnt > len(dst) {
				cnt = len(dst) - d
			}
			v := src[s]
			for j := 0; j < cnt; j++ {
				dst[d+j] = v
			}
			d += cnt
			s++
		}
	}
	return d, nil
}

// jpegPrecision reads the sample precision from the first SOF marker (0 if none).
func jpegPrecision(b []byte) int {
	for k := 2; k+9 < len(b); {
		if b[k] != 0xFF {
			k++
			continue
		}
		m := b[k+1]
		if m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC {
			return int(b[k+4])
		}
		if m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7) || m == 0xFF {
			k += 2
			continue
		}
		k += 2 + int(binary.BigEndian.Uint16(b[k+2:]))
	}
	return 0
}

// jpegAdobe reports whether an APP14 Adobe marker is present, and its transform flag.
func jpegAdobe(b []byte) (bool, byte) {
	for k := 2; k+4 < len(b); {
		if b[k] != 0xFF {
			return false, 0
		}
		m := b[k+1]
		if m == 0xFF {
			k++
			continue
		}
		if m == 0xDA || m == 0xD9 {
			return false, 0
		}
		n := int(binary.BigEndian.Uint16(b[k+2:]))
		if m == 0xEE && n >= 12 && k+2+n <= len(b) && string(b[k+4:k+9]) == "Adobe" {
			return true, b[k+2+11]
		}
		k += 2 + n
	}
	return false, 0
}

// libjpegYCbCrToRGB is libjpeg's fixed-point conversion (jdcolor.c), 16 fraction bits.
func libjpegYCbCrToRGB(y, cb, cr byte) (byte, byte, byte) {
	const half = 1 << 15
	fix := func(x float64) int { return int(x*65536 + 0.5) }
	cbv, crv := int(cb)-128, int(cr)-128
	r := int(y) + ((fix(1.40200)*crv + half) >> 16)
	g := int(y) + ((-fix(0.34414)*cbv - fix(0.71414)*crv + half) >> 16)
	b := int(y) + ((fix(1.77200)*cbv + half) >> 16)
	return clampByte(r), clampByte(g), clampByte(b)
}

func clampByte(v int) byte {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return byte(v)
}

// UnsupportedSyntaxError names a transfer syntax whose pixel data this reader does not
// decode. It matches ErrUnsupported.
type UnsupportedSyntaxError struct {
	UID    string
	Detail string
}

func (e *UnsupportedSyntaxError) Error() string {
	return "unsupported dicom encoding: no decoder for transfer syntax " + TransferSyntaxName(e.UID) + e.Detail
}

// Unwrap makes errors.Is(err, ErrUnsupported) hold.
func (e *UnsupportedSyntaxError) Unwrap() error { return ErrUnsupported }
