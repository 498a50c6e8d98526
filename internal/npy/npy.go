// Package npy owns Concord's one codec for NumPy's .npy arrays and .npz
// archives of them: imaging writes its arrays out as .npy, learning reads
// MedMNIST .npz files. It sits apart from both so that learning can read
// arrays without importing imaging's DICOM parser.
//
// Only C-order, version 1–3 files are read. The reader trusts nothing in the
// header: shapes that overflow or need more bytes than the file holds are
// errors, and an archive member over the caller's limit is not decompressed.
package npy

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Array is a parsed .npy file. Data holds exactly the bytes the shape needs,
// in the byte order Dtype names.
type Array struct {
	Dtype string // numpy's descr, e.g. "|u1", "<u2", "<f4"
	Shape []int
	Data  []byte
}

// maxElements bounds a shape's product so that it cannot overflow an int.
const maxElements = 1 << 40

// Write writes a .npy (version 1.0) file holding data, which must already be
// in the dtype's byte order.
func Write(w io.Writer, dtype string, shape []int, data []byte) error {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	hdr := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", dtype, tuple)
	// The data starts on a 64-byte boundary, as numpy writes it.
	pad := 64 - (10+len(hdr)+1)%64
	if pad == 64 {
		pad = 0
	}
	hdr += strings.Repeat(" ", pad) + "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	_ = binary.Write(&b, binary.LittleEndian, uint16(len(hdr)))
	b.WriteString(hdr)
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write npy header: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("write npy data: %w", err)
	}
	return nil
}

// Read parses a .npy file held in memory. The returned Data aliases b.
func Read(b []byte) (*Array, error) {
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" {
		return nil, errors.New("not a .npy file (no magic)")
	}
	var hlen, start int
	switch b[6] {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2, 3:
		if len(b) < 12 {
			return nil, errors.New("truncated .npy header")
		}
		hlen, start = int(binary.LittleEndian.Uint32(b[8:12])), 12
	default:
		return nil, fmt.Errorf(".npy version %d is not supported", b[6])
	}
	if hlen > len(b)-start {
		return nil, errors.New("truncated .npy header")
	}
	hdr := string(b[start : start+hlen])
	data := b[start+hlen:]
	descr, ok := field(hdr, "descr")
	if !ok {
		return nil, errors.New(".npy header has no descr")
	}
	if fo, _ := field(hdr, "fortran_order"); fo != "False" {
		return nil, errors.New("fortran-order .npy arrays are not supported")
	}
	shp, ok := field(hdr, "shape")
	if !ok {
		return nil, errors.New(".npy header has no shape")
	}
	a := &Array{Dtype: strings.Trim(descr, "'\"")}
	size, err := dtypeSize(a.Dtype)
	if err != nil {
		return nil, err
	}
	n := 1
	for _, s := range strings.Split(strings.Trim(shp, "()"), ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		d, err := strconv.Atoi(s)
		if err != nil || d < 0 || d > maxElements {
			return nil, fmt.Errorf("bad .npy shape %q", shp)
		}
		if d > 0 && n > maxElements/d {
			return nil, fmt.Errorf(".npy shape %q is too large", shp)
		}
		a.Shape = append(a.Shape, d)
		n *= d
	}
	if len(data)/size < n {
		return nil, fmt.Errorf(".npy data has %d bytes, shape %v of %s needs %d", len(data), a.Shape, a.Dtype, n*size)
	}
	a.Data = data[:n*size]
	return a, nil
}

// Len is the number of elements, the product of the shape.
func (a *Array) Len() int {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	return n
}

// Ints converts an integer array to ints.
func (a *Array) Ints() ([]int, error) {
	size, err := dtypeSize(a.Dtype)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(a.Data)/size)
	for i := range out {
		b := a.Data[i*size:]
		switch a.Dtype {
		case "|u1", "<u1":
			out[i] = int(b[0])
		case "|i1", "<i1":
			out[i] = int(int8(b[0]))
		case "<u2":
			out[i] = int(binary.LittleEndian.Uint16(b))
		case "<i2":
			out[i] = int(int16(binary.LittleEndian.Uint16(b)))
		case "<i4":
			out[i] = int(int32(binary.LittleEndian.Uint32(b)))
		case "<u4":
			out[i] = int(binary.LittleEndian.Uint32(b))
		case "<i8", "<u8":
			out[i] = int(int64(binary.LittleEndian.Uint64(b)))
		default:
			return nil, fmt.Errorf(".npy dtype %s is not an integer type", a.Dtype)
		}
	}
	return out, nil
}

func dtypeSize(d string) (int, error) {
	if len(d) < 3 || !strings.ContainsRune("<>|=", rune(d[0])) {
		return 0, fmt.Errorf(".npy dtype %q is not supported", d)
	}
	n, err := strconv.Atoi(d[2:])
	if err != nil || n <= 0 || n > 16 {
		return 0, fmt.Errorf(".npy dtype %q is not supported", d)
	}
	return n, nil
}

// field extracts the text of key's value from the Python dict literal of a
// .npy header.
func field(hdr, key string) (string, bool) {
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

// NPZ is an open .npz archive.
type NPZ struct {
	zr       *zip.ReadCloser
	files    map[string]*zip.File
	maxBytes int64
}

// OpenNPZ opens a .npz archive; no member larger than maxBytes uncompressed
// is read, so a hostile file cannot make the reader allocate without limit.
func OpenNPZ(path string, maxBytes int64) (*NPZ, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, err
	}
	z := &NPZ{zr: zr, files: map[string]*zip.File{}, maxBytes: maxBytes}
	for _, f := range zr.File {
		z.files[strings.TrimSuffix(f.Name, ".npy")] = f
	}
	return z, nil
}

// Close closes the archive.
func (z *NPZ) Close() error { return z.zr.Close() }

// Array reads the member called name (numpy's key, without ".npy").
func (z *NPZ) Array(name string) (*Array, error) {
	f, ok := z.files[name]
	if !ok {
		return nil, fmt.Errorf("array %q is missing", name)
	}
	if f.UncompressedSize64 > uint64(z.maxBytes) {
		return nil, fmt.Errorf("array %q is %d bytes, over the %d limit", name, f.UncompressedSize64, z.maxBytes)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("array %q: %w", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, z.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("array %q: %w", name, err)
	}
	a, err := Read(b)
	if err != nil {
		return nil, fmt.Errorf("array %q: %w", name, err)
	}
	return a, nil
}

// WriteNPZ writes arrays as an uncompressed .npz archive (what numpy.savez
// writes), members in name order so that the bytes are reproducible.
func WriteNPZ(w io.Writer, arrays map[string]*Array) error {
	names := make([]string, 0, len(arrays))
	for name := range arrays {
		names = append(names, name)
	}
	sort.Strings(names)
	zw := zip.NewWriter(w)
	for _, name := range names {
		a := arrays[name]
		f, err := zw.Create(name + ".npy")
		if err != nil {
			return fmt.Errorf("write npz member %q: %w", name, err)
		}
		if err := Write(f, a.Dtype, a.Shape, a.Data); err != nil {
			return fmt.Errorf("write npz member %q: %w", name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("write npz: %w", err)
	}
	return nil
}
