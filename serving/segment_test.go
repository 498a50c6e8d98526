package serving

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/internal/servetest"
	"github.com/concord-fl/concord/internal/testenv"
	"github.com/concord-fl/concord/internal/testfhir"
	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/serving/fhirr4"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// unetSpec is a small segmentation job on CT, windowed for soft tissue.
const unetSpec = "name: liver\nrounds: 1\nmin_sites: 1\nmodel: {arch: unet, height: 64, width: 64, base_width: 4}\n" +
	"privacy: {secure_aggregation: none}\npipeline: {width: 64, height: 64, channels: 1, normalise: ct-window:40:400}\n"

// newSegSite is a hospital that approved a published unet version, s1.
func newSegSite(t testing.TB) *site {
	t.Helper()
	s := newSite(t)
	if _, err := servetest.Publish(s.models, s.key, servetest.Version{Version: "s1", SpecYAML: unetSpec, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	s.approve(t, "s1")
	return s
}

// ctSlices are the three real 512×512 CT slices of one series that the
// shared dcmqi SEG was made for.
func ctSlices(t testing.TB) [][]byte {
	var out [][]byte
	for _, n := range []string{"01.dcm", "02.dcm", "03.dcm"} {
		out = append(out, readFile(t, testenv.Shared(t, filepath.Join("data", "dicom", "dcmqi", "ct-3slice", n))))
	}
	return out
}

// TestSegmentationSTOWWritesASEGAndAValidFHIRResult sends a real CT
// series by STOW-RS to a site serving a unet and checks the whole path:
// one DICOM SEG kept under the state folder that our reader decodes, whose
// frames are the model's masks resampled to the CT grid and reference the
// CT instances; a FHIR result on a real FHIR server that validates against
// R4 and names the SEG and the segmented volume; feedback that makes the
// study and its SEG a training example.
func TestSegmentationSTOWWritesASEGAndAValidFHIRResult(t *testing.T) {
	base := testfhir.Start(t)
	s := newSegSite(t)
	srv := s.start(t, &fhirr4.Client{Base: base, HTTP: &http.Client{Timeout: 30 * time.Second}}, nil)
	m, err := s.load(t)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Segments() || m.Manifest.Version != "s1" {
		t.Fatalf("serving %s (segments %v), want the unet s1", m.Manifest.Version, m.Segments())
	}
	slices := ctSlices(t)
	status, ds := stow(t, "http://"+srv.Addr().String(), slices...)
	if status != http.StatusOK {
		t.Fatalf("STOW-RS %d %v", status, ds)
	}
	stored := seq(ds, tagReferencedSOPSeq)
	if len(stored) != 3 {
		t.Fatalf("%d instances stored, want 3: %v", len(stored), ds)
	}
	id := value(stored[0], tagResultID).(string)
	waitFor(t, func() bool { c, _ := s.store.Counts(); return c.Delivered == 1 }, "the result delivered")

	// The SEG: decodable, one frame per CT slice, each the thresholded
	// model output resampled to 512×512.
	segPath := filepath.Join(s.state, "serve", "seg", id+".dcm")
	seg, err := imaging.ReadSegmentation(segPath)
	if err != nil {
		t.Fatalf("our reader cannot read the SEG: %v", err)
	}
	segIm, err := imaging.ReadFile(segPath)
	if err != nil {
		t.Fatal(err)
	}
	if seg.Type != "BINARY" || len(seg.Segments) != 1 || seg.Segments[0].Label != "liver" || len(seg.Frames) != 3 {
		t.Fatalf("SEG: type %s, segments %v, %d frames; want BINARY, one segment liver, 3 frames", seg.Type, seg.Segments, len(seg.Frames))
	}
	wantUID := derivedUID(id, "seg-instance")
	if segIm.SOPInstanceUID != wantUID {
		t.Fatalf("SEG SOP Instance UID %s, want %s", segIm.SOPInstanceUID, wantUID)
	}
	foreground := 0
	for _, raw := range slices {
		ct, err := imaging.Read(raw, imaging.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		if segIm.StudyInstanceUID != ct.StudyInstanceUID {
			t.Fatalf("the SEG is in study %s, the CT in %s", segIm.StudyInstanceUID, ct.StudyInstanceUID)
		}
		got := seg.Mask(ct.SOPInstanceUID, 1)
		if len(got) != ct.Rows*ct.Columns {
			t.Fatalf("the SEG has no %dx%d frame for CT instance %s", ct.Rows, ct.Columns, ct.SOPInstanceUID)
		}
		want := expectedMask(t, m, ct)
		for k := range want {
			if got[k] != want[k] {
				t.Fatalf("SEG frame of %s differs from the model's mask resampled to the CT grid at pixel %d", ct.SOPInstanceUID, k)
			}
			foreground += int(want[k])
		}
	}
	if dcmdump, err := exec.LookPath("dcmdump"); err != nil && os.Getenv("CI") != "" {
		t.Fatal("dcmdump (Debian dcmtk, installed by .ci/run) is missing")
	} else if err == nil {
		out, err := exec.Command(dcmdump, "-E", "+L", segPath).CombinedOutput()
		if err != nil {
			t.Fatalf("dcmdump -E: %v\n%s", err, out)
		}
		for _, want := range []string{"=SegmentationStorage", "ReferencedSeriesSequence", "PerFrameFunctionalGroupsSequence"} {
			if !bytes.Contains(out, []byte(want)) {
				t.Errorf("dcmdump shows no %s", want)
			}
		}
	}

	// The FHIR result, read back from the server.
	obs := search(t, base, "Observation")
	if len(obs) != 1 {
		t.Fatalf("%d Observations, want 1", len(obs))
	}
	var o struct {
		Component []struct {
			Code          struct{ Coding []struct{ Code string } }
			ValueString   string
			ValueQuantity struct {
				Value float64
				Code  string
			}
		}
	}
	if err := json.Unmarshal(obs[0], &o); err != nil {
		t.Fatal(err)
	}
	vol := -1.0
	segRef := ""
	for _, c := range o.Component {
		switch c.Code.Coding[0].Code {
		case fhirr4.CodeSegInstance:
			segRef = c.ValueString
		case fhirr4.CodeSegmentVolume:
			vol = c.ValueQuantity.Value
			if c.ValueQuantity.Code != "mL" {
				t.Errorf("volume unit %q, want mL", c.ValueQuantity.Code)
			}
		}
	}
	if segRef != "urn:oid:"+wantUID {
		t.Fatalf("the Observation names SEG %q, want urn:oid:%s", segRef, wantUID)
	}
	ct, _ := imaging.Read(slices[0], imaging.DefaultLimits)
	if total := 3 * ct.Rows * ct.Columns; foreground == 0 || foreground == total {
		t.Fatalf("%d of %d voxels foreground: the mask comparison shows nothing; publish with another seed", foreground, total)
	}
	if wantVol := float64(foreground) * voxelMM3(t, ct) / 1000; !near(vol, wantVol) {
		t.Fatalf("volume %v mL, want %v (%d foreground voxels)", vol, wantVol, foreground)
	}
	reports := search(t, base, "DiagnosticReport")
	resources := []json.RawMessage{reports[0], obs[0], search(t, base, "Device")[0], search(t, base, "Provenance")[0]}
	raw := make([][]byte, len(resources))
	for i, r := range resources {
		raw[i] = r
	}
	for i, issues := range testfhir.Check(t, raw...) {
		for _, is := range issues {
			if is.Severity == "error" || is.Severity == "fatal" {
				t.Errorf("%.40s: R4 validation: %s", resources[i], is)
			}
		}
	}
	if !bytes.Contains(reports[0], []byte(wantUID)) || !bytes.Contains(reports[0], []byte("AIAST")) {
		t.Errorf("the DiagnosticReport's conclusion names no SEG, or it lacks the AIAST label: %s", reports[0])
	}

	// Agreeing makes the CT and its SEG a training example, side by side.
	url := "http://" + srv.Addr().String()
	resp, status := postFeedback(t, url, FeedbackRequest{ResultID: id, Verdict: VerdictAgree})
	if status != http.StatusOK || resp.Files != 4 {
		t.Fatalf("feedback: %d %+v, want 200 and 4 files (3 slices and the SEG)", status, resp)
	}
	ex, err := os.ReadDir(filepath.Join(s.feedback, SegFeedbackDir))
	if err != nil || len(ex) != 4 {
		t.Fatalf("feedback folder: %d files %v", len(ex), err)
	}
	// The next segmentation job reads them as three examples, each masked
	// by the served SEG.
	train, err := (&siteagent.SegFolder{Dir: filepath.Join(s.feedback, SegFeedbackDir)}).Dataset(context.Background(), m.Spec)
	if err != nil || train.N != 3 {
		t.Fatalf("the feedback as training data: %d examples, %v; want 3", train.N, err)
	}
	if _, status := postFeedback(t, url, FeedbackRequest{ResultID: id, Verdict: VerdictDisagree}); status != http.StatusConflict {
		t.Fatalf("second feedback: %d, want 409", status)
	}
}

func postFeedback(t testing.TB, url string, req FeedbackRequest) (FeedbackResponse, int) {
	t.Helper()
	b, _ := json.Marshal(req)
	r, err := http.Post(url+"/feedback", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var resp FeedbackResponse
	json.NewDecoder(r.Body).Decode(&resp)
	return resp, r.StatusCode
}

// expectedMask is what the served model should give for one CT slice,
// computed here from the same parts: pipeline, network, threshold, and
// nearest-neighbour resampling to the slice's grid.
func expectedMask(t testing.TB, m *Model, ct *imaging.Image) []uint8 {
	t.Helper()
	pl := m.Pipeline
	px, err := pl.Apply(ct, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Net.Predict(learning.Dataset{N: 1, C: pl.Channels, H: pl.Height, W: pl.Width, X: px})
	if err != nil {
		t.Fatal(err)
	}
	small := make([]uint8, len(p))
	for k, v := range p {
		if float64(v) >= m.Threshold {
			small[k] = 1
		}
	}
	out, err := imaging.ResampleNearest(small, pl.Height, pl.Width, ct.Rows, ct.Columns)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// voxelMM3 reads one voxel's volume from the CT's own attributes.
func voxelMM3(t testing.TB, ct *imaging.Image) float64 {
	ps := ct.File.Data.Strings(tagPixelSpacing)
	th := ct.File.Data.String(tagSliceThickness)
	if len(ps) != 2 || th == "" {
		t.Fatalf("the CT has no pixel spacing or slice thickness")
	}
	v := 1.0
	for _, s := range []string{ps[0], ps[1], th} {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			t.Fatal(err)
		}
		v *= f
	}
	return v
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6*(1+math.Abs(b)) }

// TestSegmentSize: a volume from pixel spacing and slice thickness, an
// area from pixel spacing alone, nothing from neither.
func TestSegmentSize(t *testing.T) {
	without := func(tags ...imaging.Tag) *imaging.Image {
		im, err := imaging.Read(ctSlices(t)[0], imaging.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		d := im.File.Data
		kept := d.Elements[:0]
		for _, e := range d.Elements {
			drop := false
			for _, tg := range tags {
				drop = drop || e.Tag == tg
			}
			if !drop {
				kept = append(kept, e)
			}
		}
		d.Elements = kept
		return im
	}
	px := 0.810547 * 0.810547 // the CT's pixel spacing, mm
	cases := []struct {
		name      string
		im        *imaging.Image
		vol, area float64
		ok        bool
	}{
		{"CT slice", without(), 1000 * px * 1.25 / 1000, 1000 * px, true},
		{"no thickness", without(tagSliceThickness), -1, 1000 * px, true},
		{"no pixel spacing", without(tagPixelSpacing), 0, 0, false},
	}
	for _, tc := range cases {
		vol, area, ok := segmentSize(tc.im, 1000)
		if ok != tc.ok || !near(vol, tc.vol) || !near(area, tc.area) {
			t.Errorf("%s: %v mL %v mm² %v, want %v %v %v", tc.name, vol, area, ok, tc.vol, tc.area, tc.ok)
		}
	}
}

func TestPickSeriesTakesTheLargest(t *testing.T) {
	im := func(series string) instance { return instance{image: &imaging.Image{SeriesInstanceUID: series}} }
	insts := []instance{im("1.1"), im("1.2"), im("1.2"), im("1.1"), im("1.3"), im("1.2")}
	if got := pickSeries(insts, []int{0, 1, 2, 3, 4, 5}); got != "1.2" {
		t.Errorf("largest series %s, want 1.2", got)
	}
	if got := pickSeries(insts, []int{0, 1, 2, 3}); got != "1.1" {
		t.Errorf("on a tie %s, want 1.1 (arrived first)", got)
	}
}
