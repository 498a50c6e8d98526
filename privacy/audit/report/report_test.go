package report

import (
	"bytes"
	"compress/zlib"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// testKey is a fixed key so that rendered files are the same on every run.
func testKey() (ed25519.PublicKey, ed25519.PrivateKey) {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	priv := ed25519.NewKeyFromSeed(seed)
	return priv.Public().(ed25519.PublicKey), priv
}

func signedSample(t testing.TB) *Report {
	t.Helper()
	_, priv := testKey()
	r := Sample()
	if err := Sign(r, priv, "coordinator-4f1a"); err != nil {
		t.Fatal(err)
	}
	return r
}

func render(t testing.TB, r *Report, f Format) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, r, f); err != nil {
		t.Fatalf("write %s: %v", f, err)
	}
	// REPORT_OUT keeps the files for a person to look at.
	if dir := os.Getenv("REPORT_OUT"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "report."+string(f)), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

var formats = []Format{FormatJSON, FormatCSV, FormatHTML, FormatPDF}

func TestExtractAndVerifyEachFormat(t *testing.T) {
	pub, _ := testKey()
	want := signedSample(t)
	wantJSON, _ := Canonical(want)
	for _, f := range formats {
		t.Run(string(f), func(t *testing.T) {
			file := render(t, want, f)
			got, err := ExtractAndVerify(file, pub)
			if err != nil {
				t.Fatalf("ExtractAndVerify: %v", err)
			}
			gotJSON, _ := Canonical(got)
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Errorf("extracted report differs from the one written")
			}
			if again := render(t, want, f); !bytes.Equal(again, file) {
				t.Errorf("rendering is not deterministic")
			}
		})
	}
}

func TestExtractAndVerifyRejects(t *testing.T) {
	pub, _ := testKey()
	otherPub, _, _ := ed25519.GenerateKey(nil)
	r := signedSample(t)
	for _, f := range formats {
		file := render(t, r, f)
		t.Run(string(f)+"/other key", func(t *testing.T) {
			if _, err := ExtractAndVerify(file, otherPub); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("got %v, want ErrBadSignature", err)
			}
		})
		t.Run(string(f)+"/truncated", func(t *testing.T) {
			if _, err := ExtractAndVerify(file[:len(file)/3], pub); err == nil {
				t.Fatal("a truncated file verified")
			}
		})
	}
	t.Run("not a report", func(t *testing.T) {
		if _, err := ExtractAndVerify([]byte("hello"), pub); !errors.Is(err, ErrNotReport) {
			t.Fatalf("got %v, want ErrNotReport", err)
		}
	})
	t.Run("unsigned", func(t *testing.T) {
		u := Sample()
		var buf bytes.Buffer
		if err := WriteHTML(&buf, u); err != nil {
			t.Fatal(err)
		}
		if _, err := ExtractAndVerify(buf.Bytes(), pub); !errors.Is(err, ErrUnsigned) {
			t.Fatalf("got %v, want ErrUnsigned", err)
		}
	})
}

// An edit to the embedded data breaks the signature; an edit to what the
// file shows, with the data intact, is a visible mismatch.
func TestExtractAndVerifyFindsEdits(t *testing.T) {
	pub, _ := testKey()
	r := signedSample(t)
	tests := []struct {
		format   Format
		old, new string
		want     error
	}{
		{FormatJSON, `"patients": 4210`, `"patients": 4211`, ErrBadSignature},
		{FormatJSON, `"consortium": "European`, `"approved_by": "FDA", "consortium": "European`, ErrNotReport},
		{FormatHTML, `"patients":4210`, `"patients":4211`, ErrBadSignature},
		{FormatHTML, `<td class="num">4,210</td>`, `<td class="num">4,211</td>`, ErrVisibleMismatch},
		{FormatCSV, "site,st-marys,records.patients,4210", "site,st-marys,records.patients,4211", ErrVisibleMismatch},
		{FormatPDF, "/Title", "/Titlf", ErrVisibleMismatch},
	}
	for _, tt := range tests {
		t.Run(string(tt.format)+"/"+tt.new, func(t *testing.T) {
			file := string(render(t, r, tt.format))
			if !strings.Contains(file, tt.old) {
				t.Fatalf("%q not in the %s file", tt.old, tt.format)
			}
			edited := strings.Replace(file, tt.old, tt.new, 1)
			got, err := ExtractAndVerify([]byte(edited), pub)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if errors.Is(err, ErrVisibleMismatch) && got == nil {
				t.Error("a visible mismatch returns the verified report")
			}
		})
	}
}

// A forger who rewrites the PDF's attached data (same length, recompressed,
// lengths fixed) still breaks the signature.
func TestPDFWithRewrittenAttachment(t *testing.T) {
	pub, _ := testKey()
	file := render(t, signedSample(t), FormatPDF)
	m := embeddedFile.FindSubmatchIndex(file)
	if m == nil {
		t.Fatal("attachment not found")
	}
	n, _ := strconv.Atoi(string(file[m[2]:m[3]]))
	zr, err := zlib.NewReader(bytes.NewReader(file[m[1] : m[1]+n]))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(zr)
	forged := bytes.Replace(data, []byte(`"patients":4210`), []byte(`"patients":4211`), 1)
	if bytes.Equal(forged, data) {
		t.Fatal("patients count not found in the attachment")
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(forged)
	zw.Close()
	head := bytes.Replace(file[:m[1]], []byte(fmt.Sprintf("/Length %d ", n)), []byte(fmt.Sprintf("/Length %d ", z.Len())), 1)
	out := append(append(head, z.Bytes()...), file[m[1]+n:]...)
	if _, err := ExtractAndVerify(out, pub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("got %v, want ErrBadSignature", err)
	}
}
