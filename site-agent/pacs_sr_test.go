package siteagent

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/imaging/pacs"
	"github.com/concord-fl/concord/internal/testdicom"
	"github.com/concord-fl/concord/internal/testorthanc"
)

// TestPACSDataLabelsFromReports: five studies in a real Orthanc, each with
// CT images; their structured reports (written by dcmtk) say pneumonia,
// normal, a finding the site did not map, two findings that disagree, or
// nothing at all (no report). Only the first two studies' images are
// labelled; the others are counted by reason.
func TestPACSDataLabelsFromReports(t *testing.T) {
	o := testorthanc.Start(t, testorthanc.Options{})
	dir := t.TempDir()
	pneumonia := []string{"SCT", "233604007", "Pneumonia"}
	normal := []string{"SCT", "17621005", "Normal"}
	unmapped := []string{"SCT", "39607008", "Lung structure"}
	studies := []struct {
		images  int
		reports [][]string
	}{
		{2, [][]string{pneumonia}},
		{1, [][]string{normal}},
		{1, [][]string{unmapped}},
		{1, [][]string{pneumonia, normal}},
		{1, nil},
	}
	px := make([]uint16, 32*32)
	for i := range px {
		px[i] = uint16(i % 700)
	}
	for s, st := range studies {
		study := fmt.Sprintf("2.25.9100%d", s)
		for i := range st.images {
			path := filepath.Join(dir, fmt.Sprintf("img-%d-%d.dcm", s, i))
			if err := imaging.WriteFile(path, imaging.SyntheticFile{Pixels: px, Rows: 32, Columns: 32, Modality: "CT",
				StudyInstanceUID: study, SeriesInstanceUID: study + ".1", SOPInstanceUID: fmt.Sprintf("%s.1.%d", study, i)}); err != nil {
				t.Fatal(err)
			}
			o.Upload(t, path)
		}
		for r, code := range st.reports {
			o.Upload(t, testdicom.WriteSR(t, dir, testdicom.SR{StudyInstanceUID: study, SeriesInstanceUID: fmt.Sprintf("%s.2.%d", study, r),
				SOPInstanceUID: fmt.Sprintf("%s.3.%d", study, r), Scheme: code[0], Value: code[1], Meaning: code[2]}))
		}
	}
	sr := &SRLabelConfig{Finding: "DCM:121071", Classes: map[string]string{"SCT:233604007": "pneumonia", "SCT:17621005": "normal"}}
	classes := []string{"normal", "pneumonia"}
	p, err := OpenPACS(PACSConfig{URL: o.DICOMweb, SRLabels: sr, Classes: classes, Queries: []pacs.Query{{Modality: "CT"}},
		StateDir: t.TempDir(), CacheBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ds := pacsDataset(t, p)
	if ds.N != 3 || fmt.Sprint(ds.Y) != "[1 1 0]" && fmt.Sprint(ds.Y) != "[0 1 1]" && fmt.Sprint(ds.Y) != "[1 0 1]" {
		t.Errorf("%d examples with labels %v: want the two pneumonia images as 1 and the normal one as 0", ds.N, ds.Y)
	}
	want := map[string]int{
		"its study's finding SCT:39607008 is not in data.pacs.sr_labels.classes": 1,
		"its study's reports disagree on the finding":                            1,
		"no structured report in its study":                                      1,
	}
	if fmt.Sprint(p.Rejected) != fmt.Sprint(want) {
		t.Errorf("rejected %v, want %v", p.Rejected, want)
	}
	scan := scanPACS(t, PACSConfig{URL: o.DICOMweb, SRLabels: sr, Classes: classes, Queries: []pacs.Query{{Modality: "CT"}}})
	unl := map[string]Count{}
	for k, v := range want {
		unl[k] = Count{v, 1}
	}
	checkScan(t, scan, PACSScan{Images: 6, Skipped: map[string]Count{},
		Labels: &LabelScan{Source: "sr", Classes: []ClassCount{{"normal", Count{1, 1}}, {"pneumonia", Count{2, 1}}},
			Unlabelled: unl, Read: Count{5, 4}}})
	sameAsLoad(t, scan, ds)

	for _, bad := range []struct {
		cfg  PACSConfig
		want string
	}{
		{PACSConfig{SRLabels: sr, SEGLabels: true}, "labels come from one place"},
		{PACSConfig{SRLabels: sr, Labels: "labels.csv"}, "labels come from one place"},
		{PACSConfig{SRLabels: &SRLabelConfig{Finding: "121071", Classes: sr.Classes}}, "SCHEME:VALUE"},
		{PACSConfig{SRLabels: &SRLabelConfig{Finding: "DCM:121071", Classes: map[string]string{"SCT:1": "effusion"}}}, "not one of data.classes"},
		{PACSConfig{SRLabels: &SRLabelConfig{Finding: "DCM:121071"}}, "map each coded finding"},
	} {
		bad.cfg.URL, bad.cfg.Classes, bad.cfg.StateDir, bad.cfg.CacheBytes = o.DICOMweb, classes, t.TempDir(), 1<<20
		if _, err := OpenPACS(bad.cfg); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("OpenPACS(%+v) = %v, want an error with %q", bad.cfg.SRLabels, err, bad.want)
		}
	}
}
