package synth

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/concord-fl/concord/imaging"
)

// TestGenerateCT: the same seed gives the same slices; the organ's mask
// is where its density is, middle slices cut through it and the ends of
// the stack miss it, so some masks are empty.
func TestGenerateCT(t *testing.T) {
	s := CTSites(1, 5)[0]
	s.Patients, s.SlicesPer = 3, 8
	a, err := GenerateCT(s, 5)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateCT(s, 5)
	if len(a) != 24 || !slices.Equal(a[3].Pixels, b[3].Pixels) || !slices.Equal(a[3].Mask, b[3].Mask) {
		t.Fatal("GenerateCT is not deterministic")
	}
	empty := 0
	for i, sl := range a {
		var in, out, nIn, nOut float64
		for k, m := range sl.Mask {
			hu := float64(sl.Pixels[k]) - 1024
			if m == 1 {
				in, nIn = in+hu, nIn+1
			} else if hu > -500 && hu < 300 {
				out, nOut = out+hu, nOut+1
			}
		}
		if nIn == 0 {
			empty++
			continue
		}
		// The organ is denser than the soft tissue around it on average.
		if in/nIn < out/nOut+15 {
			t.Errorf("slice %d: organ %.0f HU, surroundings %.0f HU", i, in/nIn, out/nOut)
		}
	}
	if empty == 0 || empty > len(a)/2 {
		t.Fatalf("%d of %d slices miss the organ", empty, len(a))
	}
	s.Size = 30
	if _, err := GenerateCT(s, 1); err == nil || !strings.Contains(err.Error(), "size 30") {
		t.Fatalf("size not divisible by 4: %v", err)
	}
}

// TestWriteCT writes a site's slices as CT DICOM files that the imaging
// package reads back in Hounsfield units, each with its PNG mask beside it.
func TestWriteCT(t *testing.T) {
	dir := t.TempDir()
	s := CTSites(1, 2)[0]
	s.Patients, s.SlicesPer = 1, 2
	n, err := WriteCT(dir, s, 2)
	if err != nil || n != 2 {
		t.Fatalf("WriteCT: %d, %v", n, err)
	}
	want, _ := GenerateCT(s, 2)
	base := filepath.Join(dir, s.Slug(), "0001")
	im, err := imaging.ReadFile(base + ".dcm")
	if err != nil {
		t.Fatal(err)
	}
	if im.Modality != "CT" || im.Rows != s.Size {
		t.Fatalf("modality %s, %d rows", im.Modality, im.Rows)
	}
	px, err := im.Frame(0)
	if err != nil {
		t.Fatal(err)
	}
	if px[100] != float32(want[1].Pixels[100])-1024 {
		t.Fatalf("pixel 100 is %v HU, generated %d stored", px[100], want[1].Pixels[100])
	}
	m, err := imaging.LoadPNGMask(base+".mask.png", s.Size, s.Size)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range m {
		if (v > 0) != (want[1].Mask[k] == 1) {
			t.Fatalf("mask pixel %d is %d, generated %d", k, v, want[1].Mask[k])
		}
	}
}
