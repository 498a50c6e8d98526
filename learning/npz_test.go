package learning

import (
	"archive/zip"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/concord-fl/concord/internal/npy"
	"github.com/concord-fl/concord/internal/testenv"
)

func TestLoadMedMNISTPneumonia(t *testing.T) {
	mm, err := LoadMedMNIST(testenv.Shared(t, "data/medmnist/pneumoniamnist.npz"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		ds       Dataset
		n, zeros int
	}{{"train", mm.Train, 4708, 1214}, {"val", mm.Val, 524, 135}, {"test", mm.Test, 624, 234}} {
		if c.ds.N != c.n || c.ds.C != 1 || c.ds.H != 28 || c.ds.W != 28 || len(c.ds.X) != c.n*784 {
			t.Fatalf("%s: %d images of %dx%dx%d, want %d of 1x28x28", c.name, c.ds.N, c.ds.C, c.ds.H, c.ds.W, c.n)
		}
		zeros := 0
		for _, y := range c.ds.Y {
			if y == 0 {
				zeros++
			}
		}
		if zeros != c.zeros {
			t.Errorf("%s: %d normal images, want %d", c.name, zeros, c.zeros)
		}
		lo, hi := float32(1), float32(-1)
		for _, v := range c.ds.X {
			lo, hi = min(lo, v), max(hi, v)
		}
		if lo < -1 || hi > 1 || hi-lo < 1.5 {
			t.Errorf("%s: pixels span [%v, %v], want most of [-1, 1]", c.name, lo, hi)
		}
	}
	if mm.Classes != 2 {
		t.Fatalf("classes %d, want 2", mm.Classes)
	}
	if _, err := LoadMedMNIST(filepath.Join(t.TempDir(), "none.npz")); err == nil {
		t.Error("missing file accepted")
	}
}

func npzOf(t testing.TB, files map[string][]byte) string {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, b := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	zw.Close()
	p := filepath.Join(t.TempDir(), "x.npz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// npyFile encodes one array; shapes need not match the data, so that
// truncated and oversized files can be built.
func npyFile(t testing.TB, descr string, shape []int, data []byte) []byte {
	var b bytes.Buffer
	if err := npy.Write(&b, descr, shape, data); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestLoadMedMNISTBadFiles(t *testing.T) {
	img := npyFile(t, "|u1", []int{2, 28, 28}, make([]byte, 2*784))
	lab := npyFile(t, "|u1", []int{2, 1}, []byte{0, 1})
	good := map[string][]byte{}
	for _, s := range []string{"train", "val", "test"} {
		good[s+"_images.npy"] = img
		good[s+"_labels.npy"] = lab
	}
	mm, err := LoadMedMNIST(npzOf(t, good))
	if err != nil || mm.Test.N != 2 || mm.Classes != 2 {
		t.Fatalf("well-formed npz: %+v, %v", mm.Test.N, err)
	}
	for name, mutate := range map[string]func(map[string][]byte){
		"missing array":  func(f map[string][]byte) { delete(f, "val_labels.npy") },
		"truncated data": func(f map[string][]byte) { f["train_images.npy"] = f["train_images.npy"][:200] },
		"float images": func(f map[string][]byte) {
			f["test_images.npy"] = npyFile(t, "<f8", []int{2, 28, 28}, make([]byte, 8*2*784))
		},
		"label count": func(f map[string][]byte) { f["test_labels.npy"] = npyFile(t, "|u1", []int{3, 1}, []byte{0, 1, 1}) },
		"multi-label": func(f map[string][]byte) { f["test_labels.npy"] = npyFile(t, "|u1", []int{2, 3}, make([]byte, 6)) },
		"no magic":    func(f map[string][]byte) { f["val_images.npy"] = []byte("hello") },
		"huge shape":  func(f map[string][]byte) { f["val_images.npy"] = npyFile(t, "|u1", []int{99999999, 99999, 28}, nil) },
		"2 channels": func(f map[string][]byte) {
			f["val_images.npy"] = npyFile(t, "|u1", []int{2, 28, 28, 2}, make([]byte, 4*784))
		},
	} {
		files := map[string][]byte{}
		for k, v := range good {
			files[k] = v
		}
		mutate(files)
		if _, err := LoadMedMNIST(npzOf(t, files)); !errors.Is(err, ErrNPZ) {
			t.Errorf("%s: error %v, want ErrNPZ", name, err)
		}
	}
	if _, err := LoadMedMNIST(filepath.Join(t.TempDir(), "absent.npz")); !errors.Is(err, ErrNPZ) {
		t.Errorf("absent file: %v", err)
	}
}
