package jpeg2000

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// dicomCodestream returns the JPEG 2000 stream of an encapsulated DICOM file of
// one frame (explicit VR little endian, Pixel Data of undefined length): the fragments after the basic offset
// table of Pixel Data, joined. A benchmark helper, not a DICOM reader: the
// imaging package is that.
func dicomCodestream(tb testing.TB, file []byte, name string) []byte {
	tb.Helper()
	i := bytes.LastIndex(file, []byte{0xE0, 0x7F, 0x10, 0x00}) // tag, VR (OB or OW), 0, length
	if i < 0 || i+12 > len(file) || binary.LittleEndian.Uint32(file[i+8:]) != 0xFFFFFFFF {
		tb.Fatalf("%s: no encapsulated Pixel Data", name)
	}
	item := []byte{0xFE, 0xFF, 0x00, 0xE0}
	var cs []byte
	for i, k := i+12, 0; i+8 <= len(file) && bytes.Equal(file[i:i+4], item); k++ {
		n := int(binary.LittleEndian.Uint32(file[i+4 : i+8]))
		if n > len(file)-i-8 {
			tb.Fatalf("%s: fragment of %d bytes runs past the file", name, n)
		}
		if k > 0 { // item 0 is the basic offset table
			cs = append(cs, file[i+8:i+8+n]...)
		}
		i += 8 + n
	}
	if len(cs) == 0 {
		tb.Fatalf("%s: no fragments in Pixel Data", name)
	}
	return cs
}

// BenchmarkDecodeDICOM decodes the JPEG 2000 frames of the shared corpus' DICOM
// files that `concord-bench dicom` measures against pydicom (the codestreams
// only: no DICOM parsing). bytes/s counts codestream bytes.
func BenchmarkDecodeDICOM(b *testing.B) {
	var streams [][]byte
	total := 0
	for _, name := range []string{
		"examples_jpeg2k.dcm",       // 640x480 RGB, 5/3 with RCT
		"J2K_pixelrep_mismatch.dcm", // 512x512 16-bit, 5/3
		"GDCMJ2K_TextGBR.dcm",       // 400x400 RGB
		"MR_small_jp2klossless.dcm", // 64x64 16-bit
		"693_J2KI.dcm",              // 512x512 16-bit, 9/7
	} {
		s := dicomCodestream(b, readShared(b, "data/dicom/pydicom/"+name), name)
		if _, err := Decode(s, Options{}); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		streams = append(streams, s)
		total += len(s)
	}
	b.SetBytes(int64(total))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, s := range streams {
			if _, err := Decode(s, Options{}); err != nil {
				b.Fatal(err)
			}
		}
	}
}
