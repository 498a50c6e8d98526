package imaging

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/concord-fl/concord/internal/testenv"
)

// fakePatient holds identifiers that must never survive de-identification.
var fakePatient = SyntheticFile{
	PatientName:            "Zzyzx^Quentavious",
	PatientID:              "MRN-99887766",
	PatientBirthDate:       "19470312",
	PatientSex:             "F",
	InstitutionName:        "Saint Hypothetical Infirmary",
	AccessionNumber:        "ACC-5551234",
	StudyDate:              "20240229",
	ReferringPhysicianName: "Drwhoville^Hortensia",
	StudyDescription:       "CHEST Quentavious follow-up",
	PrivateText:            "private-note-MRN-99887766",
	StudyInstanceUID:       "1.2.826.0.1.3680043.2.1143.111",
	SeriesInstanceUID:      "1.2.826.0.1.3680043.2.1143.111.2",
	SOPInstanceUID:         "1.2.826.0.1.3680043.2.1143.111.2.3",
}

func identifierStrings(f SyntheticFile) []string {
	return []string{f.PatientName, "Zzyzx", "Quentavious", f.PatientID, "99887766", f.PatientBirthDate, f.InstitutionName,
		f.AccessionNumber, f.StudyDate, f.ReferringPhysicianName, "Hortensia", f.PrivateText,
		f.StudyInstanceUID, f.SeriesInstanceUID, f.SOPInstanceUID}
}

func synthetic(rows, cols int) SyntheticFile {
	f := fakePatient
	f.Rows, f.Columns = rows, cols
	f.Modality = "CT"
	f.BitsStored = 12
	f.RescaleSlope, f.RescaleIntercept = 1, -1024
	f.WindowCenter, f.WindowWidth = 40, 400
	f.Pixels = make([]uint16, rows*cols)
	for i := range f.Pixels {
		f.Pixels[i] = uint16((i*37 + i/cols*11) % 4096)
	}
	return f
}

func TestWriteFileRoundTrip(t *testing.T) {
	f := synthetic(17, 23)
	b, err := EncodeSynthetic(f)
	if err != nil {
		t.Fatal(err)
	}
	im, err := Read(b, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if im.Rows != 17 || im.Columns != 23 || im.Modality != "CT" || im.SOPInstanceUID != f.SOPInstanceUID || im.BitsStored != 12 {
		t.Fatalf("header round trip: %+v", im)
	}
	px, err := im.Frame(0)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range f.Pixels {
		if px[i] != float32(p)-1024 {
			t.Fatalf("pixel %d: %v, want %v HU", i, px[i], float32(p)-1024)
		}
	}
	for _, bad := range []SyntheticFile{{Rows: 2, Columns: 2, Pixels: []uint16{1}}, {Rows: 1, Columns: 1, Pixels: []uint16{5000}, BitsStored: 12, StudyInstanceUID: "1.2", SeriesInstanceUID: "1.2", SOPInstanceUID: "1.2"}} {
		if _, err := EncodeSynthetic(bad); err == nil {
			t.Errorf("EncodeSynthetic(%+v) succeeded", bad)
		}
	}
}

// TestWriteFilePydicom checks that pydicom reads what WriteFile writes, with equal pixels.
func TestWriteFilePydicom(t *testing.T) {
	py := testenv.Python(t, "pydicom", "numpy")
	dir := t.TempDir()
	f := synthetic(9, 11)
	path := filepath.Join(dir, "s.dcm")
	if err := WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
	ref := runPydicom(t, py, []string{path})[path]
	if !ref.OK {
		t.Fatalf("pydicom cannot read WriteFile output: %s", ref.Error)
	}
	b, _ := os.ReadFile(ref.NPY)
	a, err := ReadNPY(b)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range f.Pixels {
		if binary.LittleEndian.Uint16(a.Data[2*i:]) != p {
			t.Fatalf("pydicom pixel %d differs", i)
		}
	}
}

func TestDeidentifyLeak(t *testing.T) {
	d := NewDeidentifier([]byte("site-secret-for-tests-0123456789"))
	f := synthetic(8, 8)
	in, err := EncodeSynthetic(f)
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.Bytes(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range identifierStrings(f) {
		if bytes.Contains(out, []byte(s)) {
			t.Errorf("de-identified file still contains %q", s)
		}
	}
	im, err := Read(out, DefaultLimits)
	if err != nil {
		t.Fatalf("de-identified file does not read: %v", err)
	}
	if im.SOPInstanceUID != d.UID(f.SOPInstanceUID) || im.StudyInstanceUID != d.UID(f.StudyInstanceUID) || !ValidUID(im.SOPInstanceUID) {
		t.Errorf("uids not remapped consistently: %s %s", im.SOPInstanceUID, im.StudyInstanceUID)
	}
	if got := im.File.Data.String(0x00120062); got != "YES" {
		t.Errorf("patient identity removed = %q", got)
	}
	if got := im.File.Data.String(0x00120063); got == "" {
		t.Error("de-identification method not set")
	}
	if im.File.Meta.String(tagMediaSOPInstance) != im.SOPInstanceUID {
		t.Error("media storage sop instance uid not remapped with the sop instance uid")
	}
	for _, el := range im.File.Data.Elements {
		if el.Tag.Group()%2 == 1 {
			t.Errorf("private element %s survived", el.Tag)
		}
	}
	a, _ := Read(in, DefaultLimits)
	pa, _ := a.StoredFrame(0)
	pb, _ := im.StoredFrame(0)
	if !bytes.Equal(pa, pb) {
		t.Error("pixel data changed by de-identification")
	}
	rec, _ := json.Marshal(d.Record(a))
	for _, s := range identifierStrings(f) {
		if strings.Contains(string(rec), s) {
			t.Errorf("record %s contains %q", rec, s)
		}
	}
	// Another secret gives other UIDs; the same secret, the same.
	if NewDeidentifier([]byte("other")).UID(f.SOPInstanceUID) == d.UID(f.SOPInstanceUID) {
		t.Error("uid remapping ignores the site secret")
	}
	// Burned-in files are refused unless the site opts in.
	f.BurnedInAnnotation = true
	bi, _ := EncodeSynthetic(f)
	if _, err := d.Bytes(bi); !errors.Is(err, ErrBurnedIn) {
		t.Errorf("burned-in file: %v, want ErrBurnedIn", err)
	}
	d.AllowBurnedIn = true
	if _, err := d.Bytes(bi); err != nil {
		t.Errorf("burned-in file with opt-in: %v", err)
	}
}

// TestDeidentifyCorpus de-identifies every readable file of the pydicom corpus: the
// result must parse, keep its pixels, carry no private element and none of the
// original patient name, id or birth date.
func TestDeidentifyCorpus(t *testing.T) {
	dir := testenv.Shared(t, "data/dicom/pydicom")
	files, _ := filepath.Glob(filepath.Join(dir, "*.dcm"))
	d := NewDeidentifier([]byte("corpus-secret"))
	d.AllowBurnedIn = true
	n := 0
	for _, p := range files {
		in, _ := os.ReadFile(p)
		orig, err := Parse(in, DefaultLimits)
		if err != nil {
			continue
		}
		var ids []string
		for _, tg := range []Tag{0x00100010, 0x00100020, 0x00100030, 0x00080080, 0x00080050} {
			// A value inside the manufacturer's name (kept by the profile) is no identifier.
			if v := orig.Data.String(tg); len(v) >= 4 && !strings.Contains(orig.Data.String(0x00080070), v) {
				ids = append(ids, v)
			}
		}
		out, err := d.Bytes(in)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
			continue
		}
		n++
		for _, s := range ids {
			if bytes.Contains(out, []byte(s)) {
				t.Errorf("%s: de-identified copy contains %q", filepath.Base(p), s)
			}
		}
		f2, err := Parse(out, DefaultLimits)
		if err != nil {
			t.Errorf("%s: de-identified copy does not parse: %v", filepath.Base(p), err)
			continue
		}
		walkElements(f2.Data, func(el *Element) {
			if el.Tag.Group()%2 == 1 {
				t.Errorf("%s: private element %s survived", filepath.Base(p), el.Tag)
			}
		})
		a, errA := Read(in, DefaultLimits)
		b, errB := Read(out, DefaultLimits)
		if errA == nil && errB == nil && CanDecode(a.TransferSyntaxUID) {
			pa, e1 := a.StoredFrame(0)
			pb, e2 := b.StoredFrame(0)
			if e1 == nil && (e2 != nil || !bytes.Equal(pa, pb)) {
				t.Errorf("%s: pixels changed by de-identification (%v)", filepath.Base(p), e2)
			}
		}
	}
	if n < 50 {
		t.Errorf("only %d corpus files de-identified", n)
	}
}

func walkElements(ds *Dataset, fn func(*Element)) {
	for i := range ds.Elements {
		fn(&ds.Elements[i])
		for _, it := range ds.Elements[i].Items {
			walkElements(it, fn)
		}
	}
}

func TestTruncatedNeverPanics(t *testing.T) {
	dir := testenv.Shared(t, "data/dicom/pydicom")
	for _, name := range []string{"CT_small.dcm", "MR_small_RLE.dcm", "SC_rgb_jpeg_dcmtk.dcm", "image_dfl.dcm", "ExplVR_BigEnd.dcm", "nested_priv_SQ.dcm"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		step := max(1, len(b)/200)
		for n := 0; n < len(b); n += step {
			im, err := Read(b[:n], DefaultLimits)
			if err == nil {
				for i := 0; i < im.Frames; i++ {
					_, _ = im.StoredFrame(i)
				}
			}
		}
	}
}

func TestDeclaredSizeCheckedBeforeAllocation(t *testing.T) {
	f := synthetic(4, 4)
	b, _ := EncodeSynthetic(f)
	// Claim 65535 rows: the reader must refuse without allocating rows*columns.
	i := bytes.Index(b, []byte{0x28, 0x00, 0x10, 0x00, 'U', 'S', 2, 0})
	if i < 0 {
		t.Fatal("rows element not found")
	}
	b[i+8], b[i+9] = 0xFF, 0xFF
	_, err := Read(b, DefaultLimits)
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("got %v, want ErrTruncated", err)
	}
}

func TestPipeline(t *testing.T) {
	f := synthetic(64, 48)
	b, _ := EncodeSynthetic(f)
	im, _ := Read(b, DefaultLimits)
	for _, p := range []Pipeline{
		{Width: 32, Height: 16, Channels: 1, Resample: "area", Normalise: "auto"},
		{Width: 10, Height: 10, Channels: 3, Resample: "bilinear", Normalise: "zscore", Denoise: "median:3", Contrast: "histeq"},
		{Width: 20, Height: 30, Channels: 1, Resample: "area", Normalise: "percentile:1:99", Denoise: "gaussian:1.5", Contrast: "clahe:4:2"},
		{Width: 16, Height: 16, Channels: 1, Resample: "area", Normalise: "ct-window:40:400", Denoise: "bilateral:2:0.1"},
		{Width: 16, Height: 16, Channels: 1, Resample: "area", Normalise: "voi"},
	} {
		if err := p.Validate(); err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		out, err := p.Apply(im, 0)
		if err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		if len(out) != p.Channels*p.Width*p.Height {
			t.Fatalf("%+v: %d values", p, len(out))
		}
		for _, v := range out {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%+v: non-finite output", p)
			}
			if p.Normalise != "zscore" && (v < 0 || v > 1) {
				t.Fatalf("%+v: value %v outside [0,1]", p, v)
			}
		}
	}
	for _, bad := range []Pipeline{
		{Width: 0, Height: 1, Channels: 1, Resample: "area", Normalise: "auto"},
		{Width: 1, Height: 1, Channels: 2, Resample: "area", Normalise: "auto"},
		{Width: 1, Height: 1, Channels: 1, Resample: "cubic", Normalise: "auto"},
		{Width: 1, Height: 1, Channels: 1, Resample: "area", Normalise: "percentile:99:1"},
		{Width: 1, Height: 1, Channels: 1, Resample: "area", Normalise: "auto", Denoise: "median:4"},
		{Width: 1, Height: 1, Channels: 1, Resample: "area", Normalise: "auto", Contrast: "clahe:x:2"},
	} {
		if bad.Validate() == nil {
			t.Errorf("Validate(%+v) accepted", bad)
		}
	}
	a, c := DefaultPipeline(), DefaultPipeline()
	c.Denoise = "gaussian:1"
	if a.Hash() != DefaultPipeline().Hash() || a.Hash() == c.Hash() || len(a.Hash()) != 64 {
		t.Error("hash must be stable and cover the configuration")
	}
}

func TestCTWindowAndInversion(t *testing.T) {
	f := synthetic(2, 2)
	f.Pixels = []uint16{0, 1024 - 160, 1024 + 40, 4000} // -1024, -160, 40, 2976 HU
	f.WindowWidth = 0
	b, _ := EncodeSynthetic(f)
	im, _ := Read(b, DefaultLimits)
	p := Pipeline{Width: 2, Height: 2, Channels: 1, Resample: "area", Normalise: "auto"}
	out, err := p.Apply(im, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{0, 0, 0.5, 1}
	for i := range want {
		if math.Abs(float64(out[i]-want[i])) > 1e-6 {
			t.Fatalf("ct window 40/400: %v, want %v", out, want)
		}
	}
	f.Monochrome1 = true
	b, _ = EncodeSynthetic(f)
	im, _ = Read(b, DefaultLimits)
	out, _ = p.Apply(im, 0)
	if out[0] != 1 || out[3] != 0 {
		t.Fatalf("monochrome1 not inverted: %v", out)
	}
}

func TestResampleAndFilters(t *testing.T) {
	// 4x4 -> 2x2 area is the mean of each 2x2 block.
	v := []float32{1, 3, 5, 7, 1, 3, 5, 7, 0, 0, 8, 8, 0, 0, 8, 8}
	got := ResizeArea(v, 4, 4, 2, 2)
	want := []float32{2, 6, 0, 8}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("area: %v, want %v", got, want)
		}
	}
	// 3 -> 2 columns: weights 1, 0.5 | 0.5, 1.
	got = ResizeArea([]float32{0, 3, 6}, 3, 1, 2, 1)
	if math.Abs(float64(got[0]-1)) > 1e-6 || math.Abs(float64(got[1]-5)) > 1e-6 {
		t.Fatalf("fractional area: %v", got)
	}
	got = resizeBilinear([]float32{0, 10}, 2, 1, 4, 1)
	if got[0] != 0 || got[1] != 2.5 || got[2] != 7.5 || got[3] != 10 {
		t.Fatalf("bilinear: %v", got)
	}
	flat := make([]float32, 25)
	for i := range flat {
		flat[i] = 0.5
	}
	for _, f := range [][]float32{Gaussian(flat, 5, 5, 1), bilateral(flat, 5, 5, 2, 0.1), median(flat, 5, 5, 1)} {
		for _, x := range f {
			if math.Abs(float64(x-0.5)) > 1e-6 {
				t.Fatalf("filter changed a flat image: %v", f)
			}
		}
	}
	salt := append([]float32(nil), flat...)
	salt[12] = 1
	if median(salt, 5, 5, 1)[12] != 0.5 {
		t.Error("median did not remove an isolated outlier")
	}
	// An edge survives the bilateral filter much better than the gaussian.
	edge := make([]float32, 100)
	for i := range edge {
		if i%10 >= 5 {
			edge[i] = 1
		}
	}
	bl, gs := bilateral(edge, 10, 10, 2, 0.1), Gaussian(edge, 10, 10, 1)
	if bl[4] > 0.01 || gs[4] < 0.1 {
		t.Errorf("edge preservation: bilateral %v gaussian %v next to the edge", bl[4], gs[4])
	}
	ramp := make([]float32, 64)
	for i := range ramp {
		ramp[i] = float32(i%8) / 70 // low contrast
	}
	he := contrast(ramp, 8, 8, "histeq", nil)
	if he[7] != 1 || he[0] >= he[1] {
		t.Errorf("histeq must stretch to 1 and keep order: %v", he[:8])
	}
	cl := contrast(ramp, 8, 8, "clahe", []float64{2, 2})
	for _, x := range cl {
		if x < 0 || x > 1 {
			t.Fatalf("clahe output %v outside [0,1]", x)
		}
	}
	if q := quantile([]float32{5, 1, 4, 2, 3}, 0.25); q != 2 {
		t.Errorf("quantile 25%% of 1..5 = %v, want 2", q)
	}
	if q := quantile([]float32{1, 2, 3, 4}, 0.5); q != 2.5 {
		t.Errorf("median of 1..4 = %v, want 2.5", q)
	}
}

func TestDatasets(t *testing.T) {
	root := t.TempDir()
	for i, class := range []string{"normal", "pneumonia", "normal"} {
		dir := filepath.Join(root, class)
		os.MkdirAll(dir, 0o755)
		f := synthetic(4, 4)
		f.SOPInstanceUID = f.SOPInstanceUID + "." + string(rune('1'+i))
		if err := WriteFile(filepath.Join(dir, "im"+string(rune('a'+i))+".dcm"), f); err != nil {
			t.Fatal(err)
		}
	}
	ex, classes, err := LoadFolderDataset(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(ex) != 3 || len(classes) != 2 || classes[1] != "pneumonia" {
		t.Fatalf("folder dataset: %v %v", ex, classes)
	}
	csv := filepath.Join(t.TempDir(), "m.csv")
	os.WriteFile(csv, []byte("path,sop_instance_uid,label\nnormal/ima.dcm,,0\n,"+fakePatient.SOPInstanceUID+".2,1\n"), 0o644)
	m, err := LoadManifest(csv, root)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m[1].Label != 1 || filepath.Base(m[1].Path) != "imb.dcm" {
		t.Fatalf("manifest: %+v", m)
	}
	os.WriteFile(csv, []byte("path,label\nx.dcm,cat\n"), 0o644)
	if _, err := LoadManifest(csv, root); err == nil {
		t.Error("non-numeric label accepted")
	}
}

func TestScan(t *testing.T) {
	root := t.TempDir()
	for i := 0; i < 4; i++ {
		f := synthetic(4, 4)
		f.SOPInstanceUID += "." + string(rune('1'+i))
		if i == 3 {
			f.SeriesInstanceUID += ".9"
			f.BurnedInAnnotation = true
		}
		if err := WriteFile(filepath.Join(root, "f"+string(rune('a'+i))+".dcm"), f); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "notes.txt"), []byte("hello"), 0o644)
	good, _ := EncodeSynthetic(synthetic(4, 4))
	os.WriteFile(filepath.Join(root, "cut.dcm"), good[:len(good)-10], 0o644)
	cache := filepath.Join(t.TempDir(), "cache")
	d := NewDeidentifier([]byte("k"))
	var last int
	s, err := Scan(context.Background(), root, ScanOptions{CachePath: cache, Deid: d, Decode: true, Progress: func(done, total int) { last = done }})
	if err != nil {
		t.Fatal(err)
	}
	if s.Files != 6 || s.Decoded != 3 || s.Rejected["burned-in annotation"] != 1 || s.Rejected["not dicom"] != 1 || s.Rejected["truncated"] != 1 || s.Series != 1 || s.Studies != 1 || s.Modalities["CT"] != 3 || last != 6 {
		t.Fatalf("scan summary: %+v (progress %d)", s, last)
	}
	js, _ := json.Marshal(s)
	for _, id := range identifierStrings(fakePatient) {
		if strings.Contains(string(js), id) {
			t.Errorf("scan summary contains %q", id)
		}
	}
	s2, err := Scan(context.Background(), root, ScanOptions{CachePath: cache, Deid: d, Decode: true})
	if err != nil {
		t.Fatal(err)
	}
	if s2.CacheHits != 6 || s2.Decoded != 3 {
		t.Fatalf("re-scan: %+v", s2)
	}
	cb, _ := os.ReadFile(cache)
	for _, id := range identifierStrings(fakePatient) {
		if bytes.Contains(cb, []byte(id)) {
			t.Errorf("scan cache contains %q", id)
		}
	}
}

// TestReadHeaderAgreesWithReadFile: on the corpus, the header-only read gives the same
// attributes as the full read, and rejects every file the full read rejects for a
// reason visible in the header (native pixel data shorter than declared included).
func TestReadHeaderAgreesWithReadFile(t *testing.T) {
	dir := testenv.Shared(t, "data/dicom/pydicom")
	files, _ := filepath.Glob(filepath.Join(dir, "*.dcm"))
	files = append(files, filepath.Join(moduleTestdata(t), "4.dcm"), filepath.Join(moduleTestdata(t), "6.dcm"))
	for _, p := range files {
		full, errF := ReadFile(p)
		head, errH := ReadHeader(p)
		name := filepath.Base(p)
		if errF != nil {
			if errH == nil && !head.pixel.Undefined {
				t.Errorf("%s: full read fails (%v), header read succeeds", name, errF)
			}
			continue
		}
		if errH != nil {
			t.Errorf("%s: header read fails: %v", name, errH)
			continue
		}
		if full.Rows != head.Rows || full.Columns != head.Columns || full.Frames != head.Frames || full.TransferSyntaxUID != head.TransferSyntaxUID || full.SOPInstanceUID != head.SOPInstanceUID || full.Modality != head.Modality {
			t.Errorf("%s: header read disagrees with full read", name)
		}
		if _, err := head.StoredFrame(0); err == nil && head.TransferSyntaxUID != TSDeflatedLE {
			t.Errorf("%s: header-only image decoded pixels", name)
		}
	}
}

// TestNoPart10Header reads a data set written without preamble and meta group, in
// each of the three uncompressed encodings, and gets the same pixels.
func TestNoPart10Header(t *testing.T) {
	dir := testenv.Shared(t, "data/dicom/pydicom")
	for _, name := range []string{"CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		full, err := Read(b, DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		// Skip preamble, "DICM" and the meta group (its length is in (0002,0000)).
		gl := int(binary.LittleEndian.Uint32(b[140:144]))
		bare, err := Read(b[144+gl:], DefaultLimits)
		if err != nil {
			t.Fatalf("%s without meta: %v", name, err)
		}
		if bare.TransferSyntaxUID != full.TransferSyntaxUID {
			t.Errorf("%s: guessed %s, file says %s", name, bare.TransferSyntaxUID, full.TransferSyntaxUID)
		}
		a, _ := full.StoredFrame(0)
		c, err := bare.StoredFrame(0)
		if err != nil || !bytes.Equal(a, c) {
			t.Errorf("%s: pixels differ without meta (%v)", name, err)
		}
	}
}

// TestPipelineOnCorpus standardises every decodable corpus file (grey, colour, palette,
// multi-frame, signed, 32-bit) and checks the tensor's shape and range.
func TestPipelineOnCorpus(t *testing.T) {
	dir := testenv.Shared(t, "data/dicom/pydicom")
	files, _ := filepath.Glob(filepath.Join(dir, "*.dcm"))
	n := 0
	for _, ch := range []int{1, 3} {
		p := Pipeline{Width: 32, Height: 24, Channels: ch, Resample: "area", Normalise: "auto", Contrast: "clahe:4:2"}
		for _, f := range files {
			im, err := ReadFile(f)
			if err != nil || im.Decodable() != nil {
				continue
			}
			out, err := p.Apply(im, im.Frames-1)
			if err != nil {
				t.Errorf("%s: %v", filepath.Base(f), err)
				continue
			}
			n++
			if len(out) != ch*32*24 {
				t.Fatalf("%s: %d values", filepath.Base(f), len(out))
			}
			for _, v := range out {
				if !(v >= 0 && v <= 1) {
					t.Fatalf("%s: value %v outside [0,1]", filepath.Base(f), v)
				}
			}
		}
	}
	if n < 100 {
		t.Errorf("only %d corpus images standardised", n)
	}
	if _, err := DefaultPipeline().Apply(mustRead(t, filepath.Join(dir, "CT_small.dcm")), 5); err == nil {
		t.Error("frame out of range accepted")
	}
}

func mustRead(t *testing.T, p string) *Image {
	t.Helper()
	im, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// TestErrorsCarryNoPath: folder and file names often hold patient names, so read
// errors must not repeat them.
func TestErrorsCarryNoPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Zzyzx_Quentavious")
	os.MkdirAll(dir, 0o755)
	bad := filepath.Join(dir, "Zzyzx_Quentavious_MRN99887766.dcm")
	os.WriteFile(bad, []byte("DICM not really"), 0o644)
	for _, p := range []string{bad, filepath.Join(dir, "missing.dcm")} {
		_, err1 := ReadFile(p)
		_, err2 := ReadHeader(p)
		_, err3 := ReadSegmentation(p)
		err4 := NewDeidentifier([]byte("k")).File(p, filepath.Join(t.TempDir(), "o.dcm"))
		for _, err := range []error{err1, err2, err3, err4} {
			if err == nil {
				t.Fatalf("%s: no error", p)
			}
			if strings.Contains(err.Error(), "Zzyzx") || strings.Contains(err.Error(), "missing") {
				t.Errorf("error repeats the path: %v", err)
			}
		}
	}
	if _, err := ReadFile(filepath.Join(dir, "missing.dcm")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}
