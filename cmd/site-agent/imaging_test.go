package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/concord-fl/concord/imaging"
)

var fake = imaging.SyntheticFile{
	PatientName: "Brunhilde^Xanthippe", PatientID: "PID-424242", PatientBirthDate: "19380101",
	InstitutionName: "Hypothetical General", AccessionNumber: "ACC-777", StudyDate: "20230101",
	StudyInstanceUID: "1.2.3.4.5.6.7", SeriesInstanceUID: "1.2.3.4.5.6.7.8", SOPInstanceUID: "1.2.3.4.5.6.7.8.9",
	Modality: "CR", PrivateText: "PID-424242",
}

func writeSet(t *testing.T, dir string, n int) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	for i := 0; i < n; i++ {
		f := fake
		f.Rows, f.Columns = 32, 40
		f.SOPInstanceUID += "." + string(rune('1'+i))
		f.Pixels = make([]uint16, 32*40)
		for k := range f.Pixels {
			f.Pixels[k] = uint16(k * (i + 1) % 65535)
		}
		if err := imaging.WriteFile(filepath.Join(dir, "Brunhilde_"+string(rune('a'+i))+".dcm"), f); err != nil {
			t.Fatal(err)
		}
	}
}

func TestScanCommand(t *testing.T) {
	dir := t.TempDir()
	writeSet(t, dir, 3)
	os.WriteFile(filepath.Join(dir, "junk.bin"), []byte("not dicom at all"), 0o644)
	var out, errb bytes.Buffer
	cache := filepath.Join(t.TempDir(), "c")
	if rc := run([]string{"scan", dir, "--json", "--cache", cache}, &out, &errb); rc != 0 {
		t.Fatalf("scan rc %d: %s", rc, errb.String())
	}
	var s imaging.ScanSummary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("scan --json: %v: %s", err, out.String())
	}
	if s.Files != 4 || s.Decoded != 3 || s.Rejected["not dicom"] != 1 || s.Modalities["CR"] != 3 {
		t.Fatalf("summary %+v", s)
	}
	if !strings.Contains(errb.String(), "3/4") && !strings.Contains(errb.String(), "4/4") {
		t.Errorf("no progress bar: %q", errb.String())
	}
	out.Reset()
	if rc := run([]string{"scan", dir, "--cache", cache, "--quiet"}, &out, &errb); rc != 0 || !strings.Contains(out.String(), "not dicom") {
		t.Fatalf("text summary rc %d: %s", rc, out.String())
	}
	for _, id := range []string{fake.PatientName, fake.PatientID, fake.StudyInstanceUID} {
		if strings.Contains(out.String()+errb.String(), id) {
			t.Errorf("scan output contains %q", id)
		}
	}
	if rc := run([]string{"scan"}, &out, &errb); rc != 2 {
		t.Errorf("scan without DIR: rc %d", rc)
	}
}

func TestExportCommand(t *testing.T) {
	dir := t.TempDir()
	writeSet(t, dir, 1)
	in := filepath.Join(dir, "Brunhilde_a.dcm")
	npy, pngf := filepath.Join(dir, "o.npy"), filepath.Join(dir, "o.png")
	var out, errb bytes.Buffer
	if rc := run([]string{"dicom", "export", in, "--npy", npy, "--png", pngf}, &out, &errb); rc != 0 {
		t.Fatalf("export rc %d: %s", rc, errb.String())
	}
	b, _ := os.ReadFile(npy)
	a, err := imaging.ReadNPY(b)
	if err != nil || a.Dtype != "<u2" || len(a.Shape) != 2 || a.Shape[0] != 32 || a.Shape[1] != 40 {
		t.Fatalf("npy: %v %+v", err, a)
	}
	if st, err := os.Stat(pngf); err != nil || st.Size() < 100 {
		t.Fatalf("png: %v", err)
	}
	if rc := run([]string{"dicom", "export", filepath.Join(dir, "missing.dcm"), "--npy", npy}, &out, &errb); rc != 1 {
		t.Errorf("missing file: rc %d", rc)
	}
}

func TestDeidCommand(t *testing.T) {
	in, outDir := t.TempDir(), t.TempDir()
	writeSet(t, in, 2)
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("0123456789abcdef0123456789abcdef"), 0o600)
	var out, errb bytes.Buffer
	if rc := run([]string{"deid", in, outDir}, &out, &errb); rc != 1 || !strings.Contains(errb.String(), "secret") {
		t.Fatalf("deid without a secret must fail clearly: rc %d %s", rc, errb.String())
	}
	errb.Reset()
	if rc := run([]string{"deid", in, outDir, "--secret-file", secret}, &out, &errb); rc != 0 {
		t.Fatalf("deid rc %d: %s", rc, errb.String())
	}
	names, _ := os.ReadDir(outDir)
	if len(names) != 2 {
		t.Fatalf("%d files written", len(names))
	}
	for _, n := range names {
		b, _ := os.ReadFile(filepath.Join(outDir, n.Name()))
		for _, id := range []string{fake.PatientName, fake.PatientID, "Brunhilde", fake.InstitutionName, fake.AccessionNumber, fake.StudyInstanceUID, fake.PatientBirthDate} {
			if bytes.Contains(b, []byte(id)) || strings.Contains(n.Name(), id) {
				t.Errorf("%s contains %q", n.Name(), id)
			}
		}
		if dcmdump, err := exec.LookPath("dcmdump"); err == nil {
			if o, err := exec.Command(dcmdump, "-q", filepath.Join(outDir, n.Name())).CombinedOutput(); err != nil || len(o) != 0 && bytes.Contains(o, []byte("E:")) {
				t.Errorf("dcmdump rejects de-identified file: %v %s", err, o)
			}
		}
	}
}

func TestDeidSingleFileIntoFolder(t *testing.T) {
	in, outDir := t.TempDir(), t.TempDir()
	writeSet(t, in, 2)
	t.Setenv("CONCORD_SITE_SECRET", "0123456789abcdef0123456789abcdef")
	var out, errb bytes.Buffer
	if rc := run([]string{"deid", filepath.Join(in, "Brunhilde_a.dcm"), outDir}, &out, &errb); rc != 0 {
		t.Fatalf("deid rc %d: %s", rc, errb.String())
	}
	names, _ := os.ReadDir(outDir)
	if len(names) != 1 || strings.Contains(names[0].Name(), "Brunhilde") || !strings.HasPrefix(names[0].Name(), "2.25.") {
		t.Fatalf("output %v", names)
	}
}
