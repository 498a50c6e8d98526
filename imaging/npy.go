package imaging

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// WriteNPY writes a numpy .npy (version 1.0) file holding data, which must already be
// in the dtype's byte order.
func WriteNPY(w io.Writer, dtype string, shape []int, data []byte) error {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	hdr := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", dtype, tuple)
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

// NPYArray is a parsed .npy file.
type NPYArray struct {
	Dtype string
	Shape []int
	Data  []byte
}

// ReadNPY parses a .npy file held in memory (C order only).
func ReadNPY(b []byte) (*NPYArray, error) {
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" {
		return nil, fmt.Errorf("not a npy file")
	}
	var hlen, start int
	switch b[6] {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(b[8:])), 10
	case 2, 3:
		if len(b) < 12 {
			return nil, fmt.Errorf("npy header cut off")
		}
		hlen, start = int(binary.LittleEndian.Uint32(b[8:])), 12
	default:
		return nil, fmt.Errorf("npy version %d not supported", b[6])
	}
	if start+hlen > len(b) {
		return nil, fmt.Errorf("npy header cut off")
	}
	hdr := string(b[start : start+hlen])
	a := &NPYArray{Data: b[start+hlen:]}
	descr, ok := npyField(hdr, "descr")
	if !ok {
		return nil, fmt.Errorf("npy header has no descr")
	}
	a.Dtype = strings.Trim(descr, "'\" ")
	if fo, _ := npyField(hdr, "fortran_order"); strings.TrimSpace(fo) == "True" {
		return nil, fmt.Errorf("fortran-order npy not supported")
	}
	shape, ok := npyField(hdr, "shape")
	if !ok {
		return nil, fmt.Errorf("npy header has no shape")
	}
	shape = strings.Trim(shape, "() ")
	n := 1
	for _, s := range strings.Split(shape, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		d, err := strconv.Atoi(s)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("npy shape %q: bad dimension", shape)
		}
		a.Shape = append(a.Shape, d)
		n *= d
	}
	size, err := dtypeSize(a.Dtype)
	if err != nil {
		return nil, err
	}
	if len(a.Data) < n*size {
		return nil, fmt.Errorf("npy data holds %d bytes, shape needs %d", len(a.Data), n*size)
	}
	a.Data = a.Data[:n*size]
	return a, nil
}

func dtypeSize(d string) (int, error) {
	if len(d) < 3 {
		return 0, fmt.Errorf("npy dtype %q not supported", d)
	}
	n, err := strconv.Atoi(d[2:])
	if err != nil || n <= 0 || n > 16 {
		return 0, fmt.Errorf("npy dtype %q not supported", d)
	}
	return n, nil
}

// npyField extracts the text of a key from the header dict.
func npyField(hdr, key string) (string, bool) {
	i := strings.Index(hdr, "'"+key+"'")
	if i < 0 {
		return "", false
	}
	rest := hdr[i+len(key)+2:]
	j := strings.Index(rest, ":")
	if j < 0 {
		return "", false
	}
	rest = strings.TrimSpace(rest[j+1:])
	if strings.HasPrefix(rest, "(") {
		k := strings.Index(rest, ")")
		if k < 0 {
			return "", false
		}
		return rest[:k+1], true
	}
	k := strings.IndexAny(rest, ",}")
	if k < 0 {
		return "", false
	}
	return rest[:k], true
}
