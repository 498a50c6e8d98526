package learning

import (
	"errors"
	"fmt"

	"github.com/concord-fl/concord/internal/npy"
)

// ErrNPZ is returned (wrapped) when a MedMNIST .npz file cannot be read.
var ErrNPZ = errors.New("not a readable MedMNIST npz file")

// MedMNIST holds the official splits of a MedMNIST 2D data set, pixels scaled
// to [-1, 1] as in the MedMNIST reference training ((x/255 − 0.5)/0.5).
type MedMNIST struct {
	Train, Val, Test Dataset
	Classes          int // 1 + the largest label seen
}

// maxNPYBytes bounds one array so a hostile file cannot make us allocate
// without limit (MedMNIST 224×224 RGB train splits stay far below).
const maxNPYBytes = 4 << 30

// LoadMedMNIST reads a MedMNIST .npz (a zip of .npy arrays
// {train,val,test}_{images,labels}, uint8 images N×H×W or N×H×W×3).
func LoadMedMNIST(path string) (MedMNIST, error) {
	z, err := npy.OpenNPZ(path, maxNPYBytes)
	if err != nil {
		return MedMNIST{}, fmt.Errorf("%w: %s: %w", ErrNPZ, path, err)
	}
	defer z.Close()
	var out MedMNIST
	for _, split := range []struct {
		name string
		dst  *Dataset
	}{{"train", &out.Train}, {"val", &out.Val}, {"test", &out.Test}} {
		img, err := readArray(z, split.name+"_images")
		if err != nil {
			return MedMNIST{}, fmt.Errorf("%s: %w", path, err)
		}
		lab, err := readArray(z, split.name+"_labels")
		if err != nil {
			return MedMNIST{}, fmt.Errorf("%s: %w", path, err)
		}
		ds, err := medmnistSplit(img, lab)
		if err != nil {
			return MedMNIST{}, fmt.Errorf("%s: %s split: %w", path, split.name, err)
		}
		*split.dst = ds
		for _, y := range ds.Y {
			out.Classes = max(out.Classes, y+1)
		}
	}
	return out, nil
}

func readArray(z *npy.NPZ, name string) (*npy.Array, error) {
	a, err := z.Array(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNPZ, err)
	}
	return a, nil
}

func medmnistSplit(img, lab *npy.Array) (Dataset, error) {
	if img.Dtype != "|u1" && img.Dtype != "<u1" {
		return Dataset{}, fmt.Errorf("%w: images have dtype %s, want uint8", ErrNPZ, img.Dtype)
	}
	var n, h, w, c int
	switch len(img.Shape) {
	case 3:
		n, h, w, c = img.Shape[0], img.Shape[1], img.Shape[2], 1
	case 4:
		n, h, w, c = img.Shape[0], img.Shape[1], img.Shape[2], img.Shape[3]
	default:
		return Dataset{}, fmt.Errorf("%w: images have shape %v, want N×H×W or N×H×W×C", ErrNPZ, img.Shape)
	}
	if c != 1 && c != 3 {
		return Dataset{}, fmt.Errorf("%w: images have %d channels, want 1 or 3", ErrNPZ, c)
	}
	labels, err := npyLabels(lab)
	if err != nil {
		return Dataset{}, err
	}
	if len(labels) != n {
		return Dataset{}, fmt.Errorf("%w: %d labels for %d images (multi-label sets are not supported)", ErrNPZ, len(labels), n)
	}
	ds := Dataset{N: n, C: c, H: h, W: w, X: make([]float32, n*c*h*w), Y: labels}
	hw := h * w
	for i := 0; i < n; i++ {
		for p := 0; p < hw; p++ {
			for ch := 0; ch < c; ch++ {
				// HWC on disk, CHW in memory.
				v := img.Data[(i*hw+p)*c+ch]
				ds.X[i*c*hw+ch*hw+p] = float32(v)/127.5 - 1
			}
		}
	}
	return ds, nil
}

func npyLabels(a *npy.Array) ([]int, error) {
	if len(a.Shape) == 2 && a.Shape[1] != 1 || len(a.Shape) > 2 {
		return nil, fmt.Errorf("%w: labels have shape %v, want N or N×1", ErrNPZ, a.Shape)
	}
	out, err := a.Ints()
	if err != nil {
		return nil, fmt.Errorf("%w: labels: %w", ErrNPZ, err)
	}
	for i, v := range out {
		if v < 0 || v > 1000 {
			return nil, fmt.Errorf("%w: label %d of example %d is outside 0..1000", ErrNPZ, v, i)
		}
	}
	return out, nil
}
