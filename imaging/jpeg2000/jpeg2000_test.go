package jpeg2000

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

func readShared(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(testenv.Shared(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReduceLevels compares resolution-reduced decoding with opj_decompress -r.
func TestReduceLevels(t *testing.T) {
	opj := needOPJ(t)
	for _, tc := range []struct {
		name   string
		reduce int
	}{
		{"p0_01.j2k", 1}, {"p0_03.j2k", 1}, {"p0_05.j2k", 2}, {"p0_08.j2k", 3},
		{"p1_02.j2k", 2}, {"a1_mono.j2c", 5}, {"e2_colr.j2c", 1}, {"p0_14.j2k", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := testenv.Shared(t, "data/jpeg2000/conformance/"+tc.name)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			img, err := Decode(data, Options{ReduceLevels: tc.reduce})
			if err != nil {
				t.Fatal(err)
			}
			ref := reference(t, opj, path, tc.reduce, img)
			if len(ref) != len(img.Components) {
				t.Fatalf("%d components, opj_decompress %d", len(img.Components), len(ref))
			}
			for c, comp := range img.Components {
				if len(ref[c]) != len(comp.Samples) {
					t.Fatalf("component %d: %dx%d, opj_decompress %d samples", c, comp.Width, comp.Height, len(ref[c]))
				}
				d, n := maxDiff(comp.Samples, ref[c])
				if d > 1 || d == 1 && !isIrreversible(data) {
					t.Errorf("component %d: %d samples differ, max %d", c, n, d)
				}
			}
		})
	}
}

// TestTruncated cuts streams short at many points: each must give a categorised
// error (never a panic, never an image).
func TestTruncated(t *testing.T) {
	for _, name := range []string{"p0_01.j2k", "p0_03.j2k", "p1_06.j2k", "c2_mono.j2c", "g3_colr.j2c", "file1.jp2"} {
		checkCuts(t, name, readShared(t, "data/jpeg2000/conformance/"+name), 1, 5, 20, 50, 90, 99)
	}
}

// checkCuts decodes data cut to each percentage of its length: each cut
// must give a truncated or malformed error, never an image.
func checkCuts(t *testing.T, name string, data []byte, percents ...int) {
	t.Helper()
	for _, frac := range percents {
		n := len(data) * frac / 100
		_, err := Decode(data[:n], Options{})
		if err == nil {
			t.Errorf("%s cut to %d of %d bytes decoded without error", name, n, len(data))
			continue
		}
		if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s cut to %d bytes: uncategorised error %v", name, n, err)
		}
	}
}

// TestLimits: absurd declared sizes are refused before allocation.
func TestLimits(t *testing.T) {
	data := readShared(t, "data/jpeg2000/conformance/p0_01.j2k")
	if _, err := Decode(data, Options{MaxSamples: 100}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("128x128 with MaxSamples 100: %v", err)
	}
	// SIZ of 2^30 x 2^30 in one tile, one component.
	huge := append([]byte(nil), data...)
	siz := huge[4+2:]
	copy(siz[2:], []byte{0x40, 0, 0, 0, 0x40, 0, 0, 0})
	copy(siz[18:], []byte{0x40, 0, 0, 0, 0x40, 0, 0, 0})
	if _, err := Decode(huge, Options{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("2^30 x 2^30 image: %v", err)
	}
	cfg, err := DecodeConfig(data)
	if err != nil || cfg.Width != 128 || cfg.Height != 128 || len(cfg.Components) != 1 || cfg.Components[0].Precision != 8 {
		t.Errorf("DecodeConfig: %+v, %v", cfg, err)
	}
}

// FuzzDecode feeds arbitrary bytes to the decoder, seeded from the small streams of
// the shared conformance set. The work per input is bounded by MaxSamples and by the
// tier-1 work allowed per byte of stream (checkWork).
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(testenv.SharedDir(), "data/jpeg2000/conformance", "*"))
	ht, _ := filepath.Glob(filepath.Join(testenv.SharedDir(), "data/jpeg2000/htj2k", "*"))
	files = append(files, ht...)
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil && len(b) < 4<<10 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := Decode(b, Options{MaxSamples: 1 << 16})
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("uncategorised error: %v", err)
			}
			return
		}
		for _, c := range img.Components {
			if len(c.Samples) != c.Width*c.Height {
				t.Fatalf("component of %dx%d holds %d samples", c.Width, c.Height, len(c.Samples))
			}
		}
	})
}

func benchmarkFile(b *testing.B, name string) {
	data := readShared(b, "data/jpeg2000/conformance/"+name)
	img, err := Decode(data, Options{})
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, c := range img.Components {
		n += len(c.Samples)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Decode(data, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Msamples/s")
}

// BenchmarkDecodeLossless: 513x3072, three components, 5/3, 30 layers (3.8 MB).
func BenchmarkDecodeLossless(b *testing.B) { benchmarkFile(b, "p0_08.j2k") }

// BenchmarkDecodeLossy: 1024x1024 grey, 9/7.
func BenchmarkDecodeLossy(b *testing.B) { benchmarkFile(b, "p1_04.j2k") }

// TestNoEOC: a stream whose last tile-part is whole but EOC is missing decodes as
// the full stream does; one cut inside the EOC marker does not.
func TestNoEOC(t *testing.T) {
	data := readShared(t, "data/jpeg2000/conformance/p0_01.j2k")
	want, err := Decode(data, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if u16(data[len(data)-2:]) != mEOC {
		t.Fatal("p0_01.j2k does not end with EOC")
	}
	got, err := Decode(data[:len(data)-2], Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := maxDiff(got.Components[0].Samples, want.Components[0].Samples); d != 0 {
		t.Errorf("without EOC: samples differ by %d", d)
	}
	if _, err := Decode(data[:len(data)-1], Options{}); !errors.Is(err, ErrTruncated) {
		t.Errorf("half an EOC: %v", err)
	}
}

// TestCheckWork: many coding passes from few bytes are refused before tier-1 runs.
func TestCheckWork(t *testing.T) {
	blocks := make([]codeBlock, 10)
	for i := range blocks {
		blocks[i] = codeBlock{x1: 64, y1: 64, passes: 164} // 10 x 164 x 4096 passes
	}
	tc := &tileComp{cs: &codingStyle{}, res: []resolution{{precincts: [][]precinctBand{{{blocks: blocks}}}}}}
	ts := &tileState{comps: []*tileComp{tc}}
	if err := ts.checkWork(0); !errors.Is(err, ErrMalformed) {
		t.Errorf("6.7M coefficient passes from no bytes: %v", err)
	}
	ts.data = make([]byte, 1000)
	if err := ts.checkWork(0); err != nil {
		t.Errorf("6.7M coefficient passes from 1000 bytes: %v", err)
	}
}
