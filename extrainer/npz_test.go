package extrainer

import (
	"archive/zip"
	"bytes"
	"fmt"
	"os"
	"strings"
)

// npyArray is one array to store in a .npz: uint8 data in C order.
type npyArray struct {
	shape []int
	data  []byte
}

// writeNPZ writes arrays in numpy's .npz format (a zip of .npy v1.0 files),
// as MedMNIST ships them.
func writeNPZ(path string, arrays map[string]npyArray) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zw := zip.NewWriter(f)
	for name, a := range arrays {
		w, err := zw.Create(name + ".npy")
		if err != nil {
			return err
		}
		dims := make([]string, len(a.shape))
		for i, d := range a.shape {
			dims[i] = fmt.Sprint(d)
		}
		shape := strings.Join(dims, ", ")
		if len(dims) == 1 {
			shape += ","
		}
		header := fmt.Sprintf("{'descr': '|u1', 'fortran_order': False, 'shape': (%s), }", shape)
		// Magic (6) + version (2) + header length (2) + header + newline,
		// padded with spaces to a multiple of 64 bytes.
		pad := 64 - (10+len(header)+1)%64
		header += strings.Repeat(" ", pad%64) + "\n"
		var buf bytes.Buffer
		buf.WriteString("\x93NUMPY\x01\x00")
		buf.WriteByte(byte(len(header)))
		buf.WriteByte(byte(len(header) >> 8))
		buf.WriteString(header)
		buf.Write(a.data)
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
