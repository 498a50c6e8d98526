package siteagent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/imaging/pacs"
	"github.com/concord-fl/concord/internal/testenv"
	"github.com/concord-fl/concord/internal/testorthanc"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// TestPACSDataReadsLabelledInstances loads shared files into Orthanc,
// labels some by study and one by SOP instance, and checks what a job's
// dataset holds and what it skipped, by reason, and what a scan predicts
// over DICOMweb and over DIMSE.
func TestPACSDataReadsLabelledInstances(t *testing.T) {
	dir := testenv.Shared(t, "data/dicom/pydicom")
	o := testorthanc.Start(t, testorthanc.Options{Modalities: map[string]string{"CONCORD": "127.0.0.1:1"}})
	files := map[string]string{ // file → label ("" unlabelled)
		"CT_small.dcm": "normal", "693_J2KI.dcm": "lesion", "MR_small.dcm": "1",
		"badVR.dcm": "normal", "test-SR.dcm": "normal", "examples_overlay.dcm": "",
		"examples_ybr_color.dcm": "lesion"} // uploaded later
	const later = "examples_ybr_color.dcm"
	var csv strings.Builder
	csv.WriteString("study_instance_uid,sop_instance_uid,label\n")
	for name, label := range files {
		p := filepath.Join(dir, name)
		if name != later {
			o.Upload(t, p)
		}
		b, _ := os.ReadFile(p)
		f, err := imaging.Parse(b, imaging.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		study, sop := f.Data.String(imaging.NewTag(0x0020, 0x000D)), f.Data.String(imaging.NewTag(0x0008, 0x0018))
		switch {
		case label == "":
		case name == "MR_small.dcm":
			fmt.Fprintf(&csv, ",%s,%s\n", sop, label)
		default:
			fmt.Fprintf(&csv, "%s,,%s\n", study, label)
		}
	}
	state := t.TempDir()
	labels := filepath.Join(state, "labels.csv")
	if err := os.WriteFile(labels, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := OpenPACS(PACSConfig{URL: o.DICOMweb, Labels: labels, Classes: []string{"normal", "lesion"},
		StateDir: state, CacheBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	ds := pacsDataset(t, p)
	if ds.N != 3 || len(ds.X) != 3*16*16 {
		t.Fatalf("dataset of %d examples (%d values), want 3", ds.N, len(ds.X))
	}
	ones := 0
	for _, y := range ds.Y {
		ones += y
	}
	if ones != 2 {
		t.Errorf("labels %v: want two of class 1 (693_J2KI by study name, MR_small by SOP index)", ds.Y)
	}
	want := map[string]int{"malformed": 1, "no pixel data": 1, "no label in the labels file": 1}
	if fmt.Sprint(p.Rejected) != fmt.Sprint(want) {
		t.Errorf("rejected %v, want %v", p.Rejected, want)
	}
	if p.Examples() != len(files)-1 {
		t.Errorf("Examples %d, want %d", p.Examples(), len(files)-1)
	}
	// The scan predicts the labels from the query alone. It cannot know
	// that badVR.dcm will not decode: it counts it as a normal image.
	scan := scanPACS(t, PACSConfig{URL: o.DICOMweb, Labels: labels, Classes: []string{"normal", "lesion"}})
	wantScan := PACSScan{Images: 5, Skipped: map[string]Count{"no pixel data": {1, 1}},
		Labels: &LabelScan{Source: "csv", Classes: []ClassCount{{"normal", Count{2, 2}}, {"lesion", Count{2, 2}}},
			Unlabelled: map[string]Count{"no label in the labels file": {1, 1}}}}
	checkScan(t, scan, wantScan)
	// Over DIMSE the PACS lists series, not instances: labels by study are
	// counted, MR_small's label by its SOP instance cannot be, nor can the
	// absence of a label.
	dimse := fmt.Sprintf("dicom://%s@127.0.0.1:%d?calling=CONCORD", o.AET, o.DICOMPort)
	scan = scanPACS(t, PACSConfig{URL: dimse, Labels: labels, Classes: []string{"normal", "lesion"}})
	wantScan.Labels.Classes[1].Count = Count{1, 1}
	wantScan.Labels.Unlabelled = map[string]Count{errNoInstances: {2, 2}}
	checkScan(t, scan, wantScan)
	// An image added to the PACS is taken at the first load after the
	// refresh interval, not before.
	spec := pacsSpec()
	o.Upload(t, filepath.Join(dir, later))
	if ds, err := p.Dataset(context.Background(), spec); err != nil || ds.N != 3 {
		t.Errorf("a load within the refresh interval: %d examples, %v; want the 3 of before", ds.N, err)
	}
	p.now = func() time.Time { return time.Now().Add(time.Hour) }
	if ds, err := p.Dataset(context.Background(), spec); err != nil || ds.N != 4 {
		t.Errorf("a load after the refresh interval: %d examples, %v; want 4", ds.N, err)
	}
	// A restarted agent serves the same data from its state, asking the
	// PACS nothing new.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p, err = OpenPACS(PACSConfig{URL: o.DICOMweb, Labels: labels, Classes: []string{"normal", "lesion"},
		StateDir: state, CacheBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	rep, err := p.Sync(context.Background())
	if err != nil || rep.Fetched != 0 || rep.AlreadyDone != len(files) {
		t.Errorf("sync after restart: %+v, %v", rep, err)
	}
}

// TestPACSDataLabelsFromSegmentations: the shared CT slices and the SEG
// that outlines the liver on them, one more image in the same study that
// the SEG does not reference, and one study without a SEG.
func TestPACSDataLabelsFromSegmentations(t *testing.T) {
	dir := testenv.Shared(t, "data/dicom/dcmqi")
	o := testorthanc.Start(t, testorthanc.Options{})
	for _, f := range []string{"ct-3slice/01.dcm", "ct-3slice/02.dcm", "ct-3slice/03.dcm", "liver-seg.dcm"} {
		o.Upload(t, filepath.Join(dir, f))
	}
	o.Upload(t, filepath.Join(testenv.Shared(t, "data/dicom/pydicom"), "CT_small.dcm"))
	b, err := os.ReadFile(filepath.Join(dir, "ct-3slice/01.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := imaging.Parse(b, imaging.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	unreferenced := filepath.Join(t.TempDir(), "unreferenced.dcm")
	px := make([]uint16, 64*64)
	for i := range px {
		px[i] = uint16(i % 1000)
	}
	if err := imaging.WriteFile(unreferenced, imaging.SyntheticFile{Pixels: px, Rows: 64, Columns: 64, Modality: "CT",
		StudyInstanceUID: f.Data.String(imaging.NewTag(0x0020, 0x000D)), SeriesInstanceUID: "2.25.77001", SOPInstanceUID: "2.25.77002"}); err != nil {
		t.Fatal(err)
	}
	o.Upload(t, unreferenced)

	p, err := OpenPACS(PACSConfig{URL: o.DICOMweb, SEGLabels: true, Queries: []pacs.Query{{Modality: "CT"}},
		StateDir: t.TempDir(), CacheBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ds := pacsDataset(t, p)
	ones := 0
	for _, y := range ds.Y {
		ones += y
	}
	if ds.N != 4 || ones != 3 {
		t.Errorf("%d examples with labels %v: want the 3 segmented slices as 1 and the unreferenced image as 0", ds.N, ds.Y)
	}
	if want := map[string]int{"no segmentation in its study": 1}; fmt.Sprint(p.Rejected) != fmt.Sprint(want) {
		t.Errorf("rejected %v, want %v", p.Rejected, want)
	}
	scan := scanPACS(t, PACSConfig{URL: o.DICOMweb, SEGLabels: true, Queries: []pacs.Query{{Modality: "CT"}}})
	checkScan(t, scan, PACSScan{Images: 5, Skipped: map[string]Count{},
		Labels: &LabelScan{Source: "seg", Classes: []ClassCount{{"0", Count{1, 1}}, {"1", Count{3, 1}}},
			Unlabelled: map[string]Count{"no segmentation in its study": {1, 1}}, Read: Count{1, 1}}})
	sameAsLoad(t, scan, ds)
	if _, err := OpenPACS(PACSConfig{URL: o.DICOMweb, SEGLabels: true, Labels: "labels.csv", StateDir: t.TempDir(), CacheBytes: 1 << 20}); err == nil {
		t.Error("labels from a CSV and from segmentations at once were accepted")
	}
}

// scanPACS runs ScanPACS and checks what every scan must hold: the
// retrieved label objects have bytes exactly when there are some.
func scanPACS(t *testing.T, cfg PACSConfig) PACSScan {
	t.Helper()
	scan, err := ScanPACS(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l := scan.Labels; l != nil && (l.Read.Instances > 0) != (l.Bytes > 0) {
		t.Errorf("scan read %d label objects in %d bytes", l.Read.Instances, l.Bytes)
	}
	return scan
}

// checkScan compares a scan's images, skips and labels with want's (not the
// query's counts, which pacs tests check, nor the bytes read).
func checkScan(t *testing.T, got, want PACSScan) {
	t.Helper()
	show := func(s PACSScan) string {
		if s.Labels == nil {
			return fmt.Sprintf("%d %v no labels", s.Images, s.Skipped)
		}
		l := *s.Labels
		l.Bytes = 0
		if len(l.Broken) == 0 {
			l.Broken = nil
		}
		return fmt.Sprintf("%d %v %+v", s.Images, s.Skipped, l)
	}
	if g, w := show(got), show(want); g != w {
		t.Errorf("scan\n got  %s\n want %s", g, w)
	}
}

// sameAsLoad checks that a scan's classes count what a data load took.
func sameAsLoad(t *testing.T, scan PACSScan, ds learning.Dataset) {
	t.Helper()
	for i, c := range scan.Labels.Classes {
		n := 0
		for _, y := range ds.Y {
			if y == i {
				n++
			}
		}
		if n != c.Instances {
			t.Errorf("scan counts %d images of class %s, the load took %d", c.Instances, c.Class, n)
		}
	}
}

// pacsDataset loads a small grey two-class job's dataset from p.
func pacsDataset(t *testing.T, p *PACSData) learning.Dataset {
	t.Helper()
	ds, err := p.Dataset(context.Background(), pacsSpec())
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// pacsSpec is a small grey two-class job over 16x16 images.
func pacsSpec() *pb.JobSpec {
	return &pb.JobSpec{Model: &pb.ModelSpec{Channels: 1, Height: 16, Width: 16, Classes: 2},
		Pipeline: &pb.PipelineSpec{Width: 16, Height: 16, Channels: 1, Resample: "area", Normalise: "zscore"}}
}
