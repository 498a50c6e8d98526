package imaging

import (
	"archive/zip"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Example is one labelled image file.
type Example struct {
	Path string
	// Label is the class index.
	Label int
	// SOPInstanceUID is raw (from the manifest or the file); de-identify before recording.
	SOPInstanceUID string
}

// LoadFolderDataset reads a folder-per-class layout: dir/<class>/**/<file>. Classes are
// the sub-folder names in sorted order; the label is the class index. Hidden files and
// folders are skipped.
func LoadFolderDataset(dir string) ([]Example, []string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("load dataset: %w", err)
	}
	var classes []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			classes = append(classes, e.Name())
		}
	}
	sort.Strings(classes)
	if len(classes) < 2 {
		return nil, nil, fmt.Errorf("load dataset %s: found %d class folders, need at least 2 (one folder per class)", dir, len(classes))
	}
	var out []Example
	for label, c := range classes {
		err := filepath.WalkDir(filepath.Join(dir, c), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() {
				out = append(out, Example{Path: path, Label: label})
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("load dataset class %q: %w", c, err)
		}
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("load dataset %s: class folders hold no files", dir)
	}
	return out, classes, nil
}

// LoadManifest reads a CSV manifest with a header row. It needs a "label" column (an
// integer class index) and either a "path" column (relative to root, or absolute) or a
// "sop_instance_uid" column; UIDs are resolved to files by scanning root's headers.
func LoadManifest(csvPath, root string) ([]Example, error) {
	f, err := os.Open(csvPath)
	if err != nil {
		return nil, fmt.Errorf("load manifest: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("load manifest %s: header: %w", filepath.Base(csvPath), err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	li, ok := col["label"]
	if !ok {
		return nil, fmt.Errorf("load manifest %s: no \"label\" column (header %v)", filepath.Base(csvPath), header)
	}
	pi, hasPath := col["path"]
	ui, hasUID := col["sop_instance_uid"]
	if !hasPath && !hasUID {
		return nil, fmt.Errorf("load manifest %s: needs a \"path\" or \"sop_instance_uid\" column", filepath.Base(csvPath))
	}
	var out []Example
	line := 1
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line++
		if err != nil {
			return nil, fmt.Errorf("load manifest %s line %d: %w", filepath.Base(csvPath), line, err)
		}
		label, err := strconv.Atoi(strings.TrimSpace(rec[li]))
		if err != nil || label < 0 {
			return nil, fmt.Errorf("load manifest %s line %d: label %q is not a class index", filepath.Base(csvPath), line, rec[li])
		}
		ex := Example{Label: label}
		if hasPath && strings.TrimSpace(rec[pi]) != "" {
			p := strings.TrimSpace(rec[pi])
			if !filepath.IsAbs(p) {
				p = filepath.Join(root, p)
			}
			ex.Path = p
		}
		if hasUID {
			ex.SOPInstanceUID = strings.TrimSpace(rec[ui])
		}
		if ex.Path == "" && ex.SOPInstanceUID == "" {
			return nil, fmt.Errorf("load manifest %s line %d: neither path nor uid given", filepath.Base(csvPath), line)
		}
		out = append(out, ex)
	}
	if hasUID {
		if err := resolveUIDs(out, root); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// resolveUIDs fills Path for examples given only by SOP Instance UID.
func resolveUIDs(ex []Example, root string) error {
	need := map[string]int{}
	for i, e := range ex {
		if e.Path == "" {
			need[e.SOPInstanceUID] = i
		}
	}
	if len(need) == 0 {
		return nil
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		uid, err := headerSOPInstanceUID(path)
		if err != nil {
			return nil
		}
		if i, ok := need[uid]; ok {
			ex[i].Path = path
			delete(need, uid)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("resolve manifest uids: %w", err)
	}
	if len(need) > 0 {
		return fmt.Errorf("load manifest: %d sop instance uids not found under %s", len(need), root)
	}
	return nil
}

func headerSOPInstanceUID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	f, err := Parse(b, DefaultLimits)
	if err != nil {
		return "", err
	}
	return f.Data.String(tagSOPInstanceUID), nil
}

// NPZ is a MedMNIST split: images as uint8, H*W*C per image, labels as class indices.
type NPZ struct {
	TrainX, ValX, TestX []uint8
	TrainY, ValY, TestY []int
	H, W, C             int
	NTrain, NVal, NTest int
}

// LoadMedMNIST reads a MedMNIST .npz (train/val/test _images and _labels).
func LoadMedMNIST(path string) (*NPZ, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("load medmnist: %w", err)
	}
	defer zr.Close()
	arrays := map[string]*NPYArray{}
	for _, f := range zr.File {
		if f.UncompressedSize64 > 1<<31 {
			return nil, fmt.Errorf("load medmnist %s: member %s is too large", filepath.Base(path), f.Name)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("load medmnist: %w", err)
		}
		b, err := io.ReadAll(io.LimitReader(rc, int64(f.UncompressedSize64)+1))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("load medmnist %s: %w", f.Name, err)
		}
		a, err := ReadNPY(b)
		if err != nil {
			return nil, fmt.Errorf("load medmnist %s: %w", f.Name, err)
		}
		arrays[strings.TrimSuffix(f.Name, ".npy")] = a
	}
	n := &NPZ{}
	split := func(name string) ([]uint8, []int, int, error) {
		x, y := arrays[name+"_images"], arrays[name+"_labels"]
		if x == nil || y == nil {
			return nil, nil, 0, fmt.Errorf("load medmnist %s: missing %s_images or %s_labels", filepath.Base(path), name, name)
		}
		if x.Dtype != "|u1" || (len(x.Shape) != 3 && len(x.Shape) != 4) {
			return nil, nil, 0, fmt.Errorf("load medmnist %s: %s_images is %s %v, want uint8 (N,H,W[,C])", filepath.Base(path), name, x.Dtype, x.Shape)
		}
		h, w, c := x.Shape[1], x.Shape[2], 1
		if len(x.Shape) == 4 {
			c = x.Shape[3]
		}
		if n.H == 0 {
			n.H, n.W, n.C = h, w, c
		} else if n.H != h || n.W != w || n.C != c {
			return nil, nil, 0, fmt.Errorf("load medmnist %s: splits disagree on image shape", filepath.Base(path))
		}
		cnt := x.Shape[0]
		labels, err := npyInts(y)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("load medmnist %s: %s_labels: %w", filepath.Base(path), name, err)
		}
		if len(labels) != cnt {
			return nil, nil, 0, fmt.Errorf("load medmnist %s: %d %s images but %d labels (multi-label sets are not supported)", filepath.Base(path), cnt, name, len(labels))
		}
		return x.Data, labels, cnt, nil
	}
	if n.TrainX, n.TrainY, n.NTrain, err = split("train"); err != nil {
		return nil, err
	}
	if n.ValX, n.ValY, n.NVal, err = split("val"); err != nil {
		return nil, err
	}
	if n.TestX, n.TestY, n.NTest, err = split("test"); err != nil {
		return nil, err
	}
	return n, nil
}

func npyInts(a *NPYArray) ([]int, error) {
	size, err := dtypeSize(a.Dtype)
	if err != nil {
		return nil, err
	}
	n := len(a.Data) / size
	out := make([]int, n)
	for i := 0; i < n; i++ {
		b := a.Data[i*size:]
		switch a.Dtype {
		case "|u1":
			out[i] = int(b[0])
		case "|i1":
			out[i] = int(int8(b[0]))
		case "<i8":
			out[i] = int(int64(binary.LittleEndian.Uint64(b)))
		case "<i4":
			out[i] = int(int32(binary.LittleEndian.Uint32(b)))
		case "<u2":
			out[i] = int(binary.LittleEndian.Uint16(b))
		default:
			return nil, fmt.Errorf("label dtype %s not supported", a.Dtype)
		}
	}
	return out, nil
}
