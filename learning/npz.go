package learning

import (
	"archive/zip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
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
	zr, err := zip.OpenReader(path)
	if err != nil {
		return MedMNIST{}, fmt.Errorf("%w: %s: %w", ErrNPZ, path, err)
	}
	defer zr.Close()
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		files[strings.TrimSuffix(f.Name, ".npy")] = f
	}
	var out MedMNIST
	for _, split := range []struct {
		name string
		dst  *Dataset
	}{{"train", &out.Train}, {"val", &out.Val}, {"test", &out.Test}} {
		img, err := readNPY(files, split.name+"_images")
		if err != nil {
			return MedMNIST{}, fmt.Errorf("%s: %w", path, err)
		}
		lab, err := readNPY(files, split.name+"_labels")
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

type npyArray struct {
	dtype string
	shape []int
	data  []byte
}

func readNPY(files map[string]*zip.File, name string) (npyArray, error) {
	f, ok := files[name]
	if !ok {
		return npyArray{}, fmt.Errorf("%w: array %q is missing", ErrNPZ, name)
	}
	if f.UncompressedSize64 > maxNPYBytes {
		return npyArray{}, fmt.Errorf("%w: array %q is %d bytes, over the %d limit", ErrNPZ, name, f.UncompressedSize64, maxNPYBytes)
	}
	rc, err := f.Open()
	if err != nil {
		return npyArray{}, fmt.Errorf("%w: array %q: %w", ErrNPZ, name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxNPYBytes+1))
	if err != nil {
		return npyArray{}, fmt.Errorf("%w: array %q: %w", ErrNPZ, name, err)
	}
	a, err := parseNPY(b)
	if err != nil {
		return npyArray{}, fmt.Errorf("%w: array %q: %w", ErrNPZ, name, err)
	}
	return a, nil
}

// parseNPY decodes the .npy format versions 1–3 for C-order arrays.
func parseNPY(b []byte) (npyArray, error) {
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" {
		return npyArray{}, errors.New("missing .npy magic")
	}
	var hlen, start int
	switch b[6] {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2, 3:
		if len(b) < 12 {
			return npyArray{}, errors.New("truncated .npy header")
		}
		hlen, start = int(binary.LittleEndian.Uint32(b[8:12])), 12
	default:
		return npyArray{}, fmt.Errorf(".npy version %d is not supported", b[6])
	}
	if hlen > len(b)-start {
		return npyArray{}, errors.New("truncated .npy header")
	}
	hdr := string(b[start : start+hlen])
	data := b[start+hlen:]
	descr, ok := npyField(hdr, "descr")
	if !ok {
		return npyArray{}, errors.New(".npy header has no descr")
	}
	if fo, _ := npyField(hdr, "fortran_order"); fo != "False" {
		return npyArray{}, errors.New("fortran-order arrays are not supported")
	}
	shp, ok := npyField(hdr, "shape")
	if !ok {
		return npyArray{}, errors.New(".npy header has no shape")
	}
	var shape []int
	n := 1
	for _, s := range strings.Split(strings.Trim(shp, "()"), ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		d, err := strconv.Atoi(s)
		if err != nil || d < 0 || d > maxNPYBytes {
			return npyArray{}, fmt.Errorf("bad .npy shape %q", shp)
		}
		if d > 0 && n > maxNPYBytes/d {
			return npyArray{}, fmt.Errorf(".npy shape %q is too large", shp)
		}
		shape = append(shape, d)
		n *= d
	}
	descr = strings.Trim(descr, "'\"")
	size := map[string]int{"|u1": 1, "<u1": 1, "|i1": 1, "<i4": 4, "<i8": 8, "<u8": 8, "<f4": 4}[descr]
	if size == 0 {
		return npyArray{}, fmt.Errorf(".npy dtype %q is not supported (want uint8 images and integer labels)", descr)
	}
	if len(data) < n*size {
		return npyArray{}, fmt.Errorf(".npy data has %d bytes, shape %v of %s needs %d", len(data), shape, descr, n*size)
	}
	return npyArray{dtype: descr, shape: shape, data: data[:n*size]}, nil
}

// npyField extracts the value of key from the Python dict literal of a .npy
// header.
func npyField(hdr, key string) (string, bool) {
	i := strings.Index(hdr, "'"+key+"'")
	if i < 0 {
		return "", false
	}
	rest := strings.TrimSpace(hdr[i+len(key)+2:])
	rest, ok := strings.CutPrefix(rest, ":")
	if !ok {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	if strings.HasPrefix(rest, "(") {
		j := strings.Index(rest, ")")
		if j < 0 {
			return "", false
		}
		return rest[:j+1], true
	}
	j := strings.IndexAny(rest, ",}")
	if j < 0 {
		return "", false
	}
	return strings.TrimSpace(rest[:j]), true
}

func medmnistSplit(img, lab npyArray) (Dataset, error) {
	if img.dtype != "|u1" && img.dtype != "<u1" {
		return Dataset{}, fmt.Errorf("%w: images have dtype %s, want uint8", ErrNPZ, img.dtype)
	}
	var n, h, w, c int
	switch len(img.shape) {
	case 3:
		n, h, w, c = img.shape[0], img.shape[1], img.shape[2], 1
	case 4:
		n, h, w, c = img.shape[0], img.shape[1], img.shape[2], img.shape[3]
	default:
		return Dataset{}, fmt.Errorf("%w: images have shape %v, want N×H×W or N×H×W×C", ErrNPZ, img.shape)
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
				v := img.data[(i*hw+p)*c+ch]
				ds.X[i*c*hw+ch*hw+p] = float32(v)/127.5 - 1
			}
		}
	}
	return ds, nil
}

func npyLabels(a npyArray) ([]int, error) {
	n := 1
	for _, d := range a.shape {
		n *= d
	}
	if len(a.shape) == 2 && a.shape[1] != 1 || len(a.shape) > 2 {
		return nil, fmt.Errorf("%w: labels have shape %v, want N or N×1", ErrNPZ, a.shape)
	}
	out := make([]int, n)
	for i := range out {
		var v int64
		switch a.dtype {
		case "|u1", "<u1":
			v = int64(a.data[i])
		case "|i1":
			v = int64(int8(a.data[i]))
		case "<i4":
			v = int64(int32(binary.LittleEndian.Uint32(a.data[4*i:])))
		case "<i8", "<u8":
			v = int64(binary.LittleEndian.Uint64(a.data[8*i:]))
		default:
			return nil, fmt.Errorf("%w: labels have dtype %s, want integers", ErrNPZ, a.dtype)
		}
		if v < 0 || v > 1000 {
			return nil, fmt.Errorf("%w: label %d of example %d is outside 0..1000", ErrNPZ, v, i)
		}
		out[i] = int(v)
	}
	return out, nil
}
