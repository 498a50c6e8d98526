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
	"github.com/concord-fl/concord/internal/testenv"
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
	// Without --decode only headers are checked: usable, not decoded.
	if s.Files != 4 || s.Usable != 3 || s.Decoded != 0 || s.Rejected["not dicom"] != 1 || s.Modalities["CR"] != 3 {
		t.Fatalf("summary %+v", s)
	}
	if len(s.RejectedFiles) != 1 || s.RejectedFiles[0] != (imaging.RejectedFile{Path: "junk.bin", Reason: "not dicom"}) {
		t.Errorf("rejected files %+v", s.RejectedFiles)
	}
	if st, err := os.Stat(cache); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("cache file: %v, %v; want mode 0600", st, err)
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

// TestScanRealFilesByClass scans real DICOM files laid out as class folders,
// good and broken mixed, and checks the per-class counts and the list of
// rejected files with reasons, in text and JSON.
func TestScanRealFilesByClass(t *testing.T) {
	src := testenv.Shared(t, "data/dicom/pydicom")
	dir := t.TempDir()
	layout := map[string][]string{
		"normal":    {"CT_small.dcm", "MR_small.dcm", "MR_truncated.dcm"},
		"pneumonia": {"MR_small_RLE.dcm", "no_meta.dcm", "rtplan.dcm"},
	}
	for class, files := range layout {
		if err := os.MkdirAll(filepath.Join(dir, class), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(src, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, class, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	var out, errb bytes.Buffer
	if rc := run([]string{"scan", dir, "--json", "--decode", "--quiet", "--cache", "none"}, &out, &errb); rc != 0 {
		t.Fatalf("scan rc %d: %s", rc, errb.String())
	}
	var raw map[string]any
	if err := json.Unmarshal(out.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"files", "usable", "decoded", "cache_hits", "rejected", "rejected_files", "classes", "modalities", "transfer_syntaxes"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON lacks key %q", k)
		}
	}
	if _, ok := raw["files"].(float64); !ok {
		t.Errorf("files is %T, want a JSON number", raw["files"])
	}
	var s imaging.ScanSummary
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	want := map[string]imaging.ClassCount{
		"normal":    {Files: 3, Usable: 2, Decoded: 2, Rejected: 1},
		"pneumonia": {Files: 3, Usable: 1, Decoded: 1, Rejected: 2},
	}
	for class, w := range want {
		if s.Classes[class] != w {
			t.Errorf("class %s: %+v, want %+v", class, s.Classes[class], w)
		}
	}
	wantRejected := []imaging.RejectedFile{
		{Path: "normal/MR_truncated.dcm", Reason: "truncated"},
		{Path: "pneumonia/no_meta.dcm", Reason: "not dicom"},
		{Path: "pneumonia/rtplan.dcm", Reason: "no pixel data"},
	}
	if len(s.RejectedFiles) != len(wantRejected) {
		t.Fatalf("rejected files %+v, want %+v", s.RejectedFiles, wantRejected)
	}
	for i, w := range wantRejected {
		if s.RejectedFiles[i] != w {
			t.Errorf("rejected file %d: %+v, want %+v", i, s.RejectedFiles[i], w)
		}
	}
	if s.Decoded != 3 || s.Usable != 3 {
		t.Errorf("decoded %d, usable %d; want 3, 3", s.Decoded, s.Usable)
	}
	out.Reset()
	if rc := run([]string{"scan", dir, "--quiet", "--cache", "none"}, &out, &errb); rc != 0 {
		t.Fatalf("scan rc %d: %s", rc, errb.String())
	}
	for _, line := range []string{"normal/MR_truncated.dcm", "pneumonia/rtplan.dcm", "no pixel data", "classes (first-level folders)", "usable     3"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("text output lacks %q:\n%s", line, out.String())
		}
	}
}

func TestScanDefaultCacheIsPrivate(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", home)
	t.Setenv("HOME", home)
	dir := t.TempDir()
	writeSet(t, dir, 1)
	var out, errb bytes.Buffer
	if rc := run([]string{"scan", dir, "--quiet"}, &out, &errb); rc != 0 {
		t.Fatalf("scan rc %d: %s", rc, errb.String())
	}
	files, _ := filepath.Glob(filepath.Join(home, "concord", "scan", "*"))
	if len(files) != 1 {
		t.Fatalf("cache files %v, want one under $XDG_CACHE_HOME/concord/scan", files)
	}
	if st, err := os.Stat(files[0]); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("cache %s: %v %v, want mode 0600", files[0], st.Mode(), err)
	}
}
