package npy

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func encode(t testing.TB, dtype string, shape []int, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, dtype, shape, data); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// header builds a version-1 file by hand, for headers Write never produces.
func header(descr, shape string, data []byte) []byte {
	hdr := "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }"
	for (10+len(hdr)+1)%64 != 0 {
		hdr += " "
	}
	hdr += "\n"
	b := []byte("\x93NUMPY\x01\x00")
	b = append(b, byte(len(hdr)), byte(len(hdr)>>8))
	return append(append(b, hdr...), data...)
}

func TestRoundTrip(t *testing.T) {
	for _, c := range []struct {
		dtype string
		shape []int
		data  []byte
	}{
		{"|u1", []int{2, 3}, []byte{1, 2, 3, 4, 5, 6}},
		{"<u2", []int{3}, []byte{1, 0, 2, 0, 0xff, 0xff}},
		{"<f4", []int{1, 1, 1}, []byte{0, 0, 0x80, 0x3f}},
		{"<i8", []int{0}, nil},
	} {
		b := encode(t, c.dtype, c.shape, c.data)
		if (len(b)-len(c.data))%64 != 0 {
			t.Errorf("%s %v: data starts at %d, not on a 64-byte boundary", c.dtype, c.shape, len(b)-len(c.data))
		}
		a, err := Read(b)
		if err != nil {
			t.Fatalf("%s %v: %v", c.dtype, c.shape, err)
		}
		if a.Dtype != c.dtype || !reflect.DeepEqual(a.Shape, c.shape) || !bytes.Equal(a.Data, c.data) {
			t.Errorf("read back %s %v %v, want %s %v %v", a.Dtype, a.Shape, a.Data, c.dtype, c.shape, c.data)
		}
	}
}

func TestReadRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"no magic":      []byte("hello, world"),
		"version 9":     []byte("\x93NUMPY\x09\x00\x00\x00"),
		"cut header":    []byte("\x93NUMPY\x01\x00\xff\x00{'descr'"),
		"cut v2 header": []byte("\x93NUMPY\x02\x00\xff\xff\xff\x7f"),
		"fortran":       bytes.Replace(header("|u1", "(2,)", []byte{1, 2}), []byte("False"), []byte("True "), 1),
		"bad dtype":     header("object", "(2,)", []byte{1, 2}),
		"bad shape":     header("|u1", "(2, x)", []byte{1, 2}),
		"short data":    header("<u2", "(2,)", []byte{1, 2}),
		"huge shape":    header("|u1", "(99999999, 99999, 28)", nil),
	} {
		if a, err := Read(b); err == nil {
			t.Errorf("%s: read as %+v, want an error", name, a)
		}
	}
}

func TestInts(t *testing.T) {
	for _, c := range []struct {
		dtype string
		data  []byte
		want  []int
	}{
		{"|u1", []byte{0, 255}, []int{0, 255}},
		{"|i1", []byte{0xff}, []int{-1}},
		{"<i4", []byte{7, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff}, []int{7, -2}},
		{"<i8", []byte{3, 0, 0, 0, 0, 0, 0, 0}, []int{3}},
	} {
		a := &Array{Dtype: c.dtype, Shape: []int{len(c.want)}, Data: c.data}
		got, err := a.Ints()
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %v, %v; want %v", c.dtype, got, err, c.want)
		}
	}
	if _, err := (&Array{Dtype: "<f4", Shape: []int{1}, Data: make([]byte, 4)}).Ints(); err == nil {
		t.Error("float array converted to ints")
	}
}

func TestNPZ(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteNPZ(&buf, map[string]*Array{
		"small": {Dtype: "|u1", Shape: []int{2}, Data: []byte{4, 5}},
		"big":   {Dtype: "|u1", Shape: []int{1000}, Data: make([]byte, 1000)},
	}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "a.npz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	z, err := OpenNPZ(p, 512)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	if a, err := z.Array("small"); err != nil || !bytes.Equal(a.Data, []byte{4, 5}) {
		t.Errorf("small: %+v, %v", a, err)
	}
	if _, err := z.Array("big"); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("member over the limit: %v, want a limit error", err)
	}
	if _, err := z.Array("absent"); err == nil {
		t.Error("absent member read")
	}
}

func FuzzRead(f *testing.F) {
	f.Add(header("|u1", "(2, 28, 28)", make([]byte, 2*784)))
	f.Add(header("<i8", "(3,)", make([]byte, 24)))
	f.Add([]byte("\x93NUMPY\x02\x00\xff\xff\xff\x7f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Read(b)
		if err != nil {
			return
		}
		size, err := dtypeSize(a.Dtype)
		if err != nil {
			t.Fatalf("accepted dtype %q: %v", a.Dtype, err)
		}
		if len(a.Data) != a.Len()*size {
			t.Fatalf("shape %v of %s but %d bytes", a.Shape, a.Dtype, len(a.Data))
		}
	})
}
