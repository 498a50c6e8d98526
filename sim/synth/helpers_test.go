package synth

import (
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"testing"
)

func newRng(i uint64) *rand.Rand { return rand.New(rand.NewPCG(i, 7)) }

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
