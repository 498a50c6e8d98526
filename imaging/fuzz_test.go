package imaging

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// FuzzRead feeds arbitrary bytes to the reader, the pixel path and the de-identifier.
// It is seeded from the shared corpus (when present) and from synthetic files. Work
// per input is bounded by tight limits: the pixel budget is checked against the bytes
// present before anything is allocated.
func FuzzRead(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(testenv.SharedDir(), "data/dicom/pydicom", "*.dcm"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil && len(b) < 64<<10 {
			f.Add(b)
		}
	}
	s := synthetic(8, 8)
	if b, err := EncodeSynthetic(s); err == nil {
		f.Add(b)
	}
	for _, b := range formatSeeds(f) {
		f.Add(b)
	}
	lim := Limits{MaxFileBytes: 8 << 20, MaxPixels: 1 << 22, MaxDepth: 16, MaxElements: 1 << 14}
	d := NewDeidentifier([]byte("fuzz"))
	d.AllowBurnedIn = true
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := Read(b, lim)
		if err == nil {
			for i := 0; i < im.Frames && i < 4; i++ {
				px, err := im.Frame(i)
				if err != nil {
					break
				}
				// Into a buffer that holds other values, as a Decoder's does: every
				// value must be written.
				dirty := make([]float32, len(px))
				for k := range dirty {
					dirty[k] = math.Float32frombits(0x7fc0dead)
				}
				if again, err := im.frameTo(dirty[:0], i); err != nil || !sameFloats(again, px) {
					t.Fatalf("frame %d into a used buffer differs from a fresh one (%v)", i, err)
				}
			}
			p := Pipeline{Width: 8, Height: 8, Channels: 1, Resample: "area", Normalise: "auto"}
			_, _ = p.Apply(im, 0)
		}
		if out, err := d.Bytes(b); err == nil {
			if _, err := Parse(out, lim); err != nil {
				t.Fatalf("de-identified output does not parse: %v", err)
			}
		}
	})
}

// formatSeeds builds small files in the rarer pixel formats, so that fuzzing starts
// inside their decoders: Float and Double Float Pixel Data, a segmented palette with
// each segment type, 1-bit RLE, and a deflated data set with null padding.
func formatSeeds(tb testing.TB) map[string][]byte {
	tb.Helper()
	base := func() *File {
		b, err := EncodeSynthetic(synthetic(8, 8))
		if err != nil {
			tb.Fatal(err)
		}
		f, err := Parse(b, DefaultLimits)
		if err != nil {
			tb.Fatal(err)
		}
		return f
	}
	us := func(v ...uint16) []byte {
		b := make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(b[2*i:], x)
		}
		return b
	}
	encode := func(f *File, ts string) []byte {
		f.Meta.set(tagTransferSyntax, "UI", []byte(ts))
		b, err := encodeFile(f.Meta, f.Data, ts)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	seeds := map[string][]byte{}
	for _, bits := range []int{32, 64} {
		f := base()
		for _, t := range []Tag{tagPixelData, tagBitsStored, tagHighBit, tagPixelRepresentation} {
			f.Data.remove(t)
		}
		f.Data.set(tagBitsAllocated, "US", us(uint16(bits)))
		v := make([]byte, 64*bits/8)
		for k := 0; k < 64; k++ {
			x := float64(k)*0.25 - 3
			if bits == 64 {
				binary.LittleEndian.PutUint64(v[8*k:], math.Float64bits(x))
			} else {
				binary.LittleEndian.PutUint32(v[4*k:], math.Float32bits(float32(x)))
			}
		}
		if bits == 64 {
			f.Data.set(tagDoubleFloatPixels, "OD", v)
		} else {
			f.Data.set(tagFloatPixelData, "OF", v)
		}
		seeds[fmt.Sprintf("float%d", bits)] = encode(f, TSExplicitLE)
	}

	f := base()
	f.Data.set(tagPhotometric, "CS", []byte("PALETTE COLOR"))
	f.Data.set(tagBitsStored, "US", us(8))
	f.Data.set(tagHighBit, "US", us(7))
	// discrete 0, 4000; linear to 65535 in 100; indirect copy of the linear one
	// (offset 4 entries); linear down to 0 in 160 steps: 264 entries.
	seg := us(0, 2, 0, 4000, 1, 100, 65535, 2, 1, 4, 0, 1, 160, 0)
	for c, t := range []Tag{tagSegRedData, tagSegGreenData, tagSegBlueData} {
		f.Data.set(tagRedDescriptor+Tag(c), "US", us(256, 0, 16))
		f.Data.set(t, "OW", seg)
	}
	seeds["palette-segmented"] = encode(f, TSExplicitLE)

	f = base()
	f.Data.set(tagBitsAllocated, "US", us(1))
	f.Data.set(tagBitsStored, "US", us(1))
	f.Data.set(tagHighBit, "US", us(0))
	frame := make([]byte, 64, 64+66)
	binary.LittleEndian.PutUint32(frame, 1)
	binary.LittleEndian.PutUint32(frame[4:], 64)
	frame = append(frame, 63)
	for k := 0; k < 64; k++ {
		frame = append(frame, byte(k/3%2))
	}
	frame = append(frame, 0)
	f.Data.setElement(Element{Tag: tagPixelData, VR: "OB", Fragments: [][]byte{{}, frame}, Undefined: true})
	seeds["rle-1bit"] = encode(f, TSRLE)

	plain := encode(base(), TSExplicitLE)
	metaEnd := 144 + int(binary.LittleEndian.Uint32(plain[140:144]))
	var z bytes.Buffer
	w, _ := flate.NewWriter(&z, flate.BestCompression)
	_, _ = w.Write(append(append([]byte(nil), plain[metaEnd:]...), 0))
	_ = w.Close()
	pf, err := Parse(plain, DefaultLimits)
	if err != nil {
		tb.Fatal(err)
	}
	pf.Meta.set(tagTransferSyntax, "UI", []byte(TSDeflatedLE))
	meta, err := encodeFile(pf.Meta, &Dataset{}, TSExplicitLE)
	if err != nil {
		tb.Fatal(err)
	}
	seeds["deflate-padded"] = append(meta, z.Bytes()...)
	return seeds
}

// TestFormatSeedsDecode keeps the fuzz seeds valid: each reads and decodes.
func TestFormatSeedsDecode(t *testing.T) {
	for name, b := range formatSeeds(t) {
		im, err := Read(b, DefaultLimits)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		px, err := im.Frame(0)
		if err != nil || len(px) < 64 {
			t.Errorf("%s: frame: %d values, %v", name, len(px), err)
		}
	}
}
