package siteagent

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// driftSpec is a job whose pipeline standardises to 28×28 grey with the
// radiograph default (0.5..99.5 percentile window per image).
func driftSpec(t testing.TB) *pb.JobSpec {
	t.Helper()
	s, err := jobspec.Parse([]byte("rounds: 1\nmin_sites: 1\nmodel: {base_width: 2}\n" +
		"privacy: {secure_aggregation: none}\npipeline: {width: 28, height: 28, channels: 1, normalise: percentile:0.5:99.5}\n"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// scanner writes n 32×32 DICOM images into dir: stored value
// 4095*u^gamma of smooth noise u, so that gamma changes the shape of the
// intensity distribution (a new detector or processing), which survives
// the per-image percentile window; sex is the PatientSex of every image
// ("" alternates M and F).
func scanner(t testing.TB, dir string, n int, gamma float64, sex string, seed uint64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := range n {
		px := make([]uint16, 32*32)
		for k := range px {
			u := (rng.Float64() + rng.Float64()) / 2
			px[k] = uint16(math.Round(4095 * math.Pow(u, gamma)))
		}
		s := sex
		if s == "" {
			s = []string{"M", "F"}[i%2]
		}
		uid := func(k int) string { return fmt.Sprintf("2.25.%d%d%d", seed, i, k) }
		err := imaging.WriteFile(filepath.Join(dir, fmt.Sprintf("%03d.dcm", i)), imaging.SyntheticFile{Pixels: px, Rows: 32, Columns: 32,
			BitsStored: 12, Modality: "DX", PatientName: "ZZSYNTH^DRIFT", PatientID: "SYN1", PatientSex: s,
			StudyInstanceUID: uid(1), SeriesInstanceUID: uid(2), SOPInstanceUID: uid(3)})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// standardise reads a folder written by scanner through the job's pipeline,
// as training does, with each image's sex as its subgroup.
func standardise(t testing.TB, dir string, spec *pb.JobSpec) (learning.Dataset, map[string][]string) {
	t.Helper()
	pl := jobspec.PipelineConfig(spec)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ds := learning.Dataset{C: 1, H: 28, W: 28}
	groups := map[string][]string{"sex": nil}
	for _, e := range entries {
		im, err := imaging.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		px, err := pl.Apply(im, 0)
		if err != nil {
			t.Fatal(err)
		}
		ds.X = append(ds.X, px...)
		ds.Y = append(ds.Y, 0)
		ds.N++
		groups["sex"] = append(groups["sex"], headerGroups(im)[FeatureSex])
	}
	return ds, groups
}

func TestBaselineFrom(t *testing.T) {
	ds := learning.Dataset{N: 3, C: 1, H: 4, W: 4, X: make([]float32, 48)}
	for i := range ds.X {
		ds.X[i] = float32(i)
	}
	cases := []struct {
		name   string
		groups map[string][]string
		want   map[string]evaluation.Frequencies
	}{
		{"no groups", nil, nil},
		{"validation's names", map[string][]string{"sex": {"M", "F", ""}, "age": {"18-39", "18-39", "65+"}},
			map[string]evaluation.Frequencies{FeatureSex: {"M": 1, "F": 1, evaluation.Unknown: 1}, FeatureAgeBand: {"18-39": 2, "65+": 1}}},
		{"a field of the wrong length is left out", map[string][]string{"sex": {"M"}, "model": {"X", "X", "Y"}},
			map[string]evaluation.Frequencies{FeatureModel: {"X": 2, "Y": 1}}},
	}
	for _, c := range cases {
		b := baselineFrom(ds, c.groups)
		if b.Examples != 3 || b.Intensity.N() != 48 || len(b.Intensity.Counts) != evaluation.DefaultBins {
			t.Errorf("%s: %d examples, %v pixels in %d bins; want 3, all 48 (16 per image) in %d", c.name, b.Examples,
				b.Intensity.N(), len(b.Intensity.Counts), evaluation.DefaultBins)
		}
		if fmt.Sprint(b.Categories) != fmt.Sprint(c.want) {
			t.Errorf("%s: categories %v, want %v", c.name, b.Categories, c.want)
		}
	}
	// Device names are free text: the table stays bounded.
	many := make([]string, 100)
	for i := range many {
		many[i] = fmt.Sprint("scanner ", i)
	}
	big := baselineFrom(learning.Dataset{N: 100}, map[string][]string{"manufacturer": many})
	if n := len(big.Categories[FeatureManufacturer]); n != maxCategories+1 || big.Categories[FeatureManufacturer][otherCategory] != 100-maxCategories {
		t.Errorf("100 device names kept as %d categories: %v", n, big.Categories[FeatureManufacturer])
	}
}

func TestAgeBandAndDeviceName(t *testing.T) {
	for in, want := range map[string]string{"045Y": "40-64", "017Y": "0-17", "018Y": "18-39", "065Y": "65+", "006M": "0-17",
		"800W": "0-17", "999D": "0-17", "45Y": "", "045X": "", "": "", "-01Y": ""} {
		if got := imaging.AgeBand(in); got != want {
			t.Errorf("AgeBand(%q) = %q, want %q", in, got, want)
		}
	}
	if got := imaging.DeviceName("  SYNTH \x00 Medical\tSystems "); got != "SYNTH Medical Systems" {
		t.Errorf("deviceName: %q", got)
	}
	if got := imaging.DeviceName(string(make([]byte, 0)) + fmt.Sprintf("%0100d", 0)); len(got) != 64 {
		t.Errorf("deviceName kept %d bytes", len(got))
	}
}

// TestDriftCheck: arriving images from the same scanner give a small PSI;
// from a scanner with another response and patient mix, a PSI above the
// significance threshold; too few images, no report.
func TestDriftCheck(t *testing.T) {
	root := t.TempDir()
	spec := driftSpec(t)
	scanner(t, filepath.Join(root, "baseline"), 60, 1, "", 1)
	ds, groups := standardise(t, filepath.Join(root, "baseline"), spec)
	scanner(t, filepath.Join(root, "same", "study-a"), 40, 1, "", 2)
	scanner(t, filepath.Join(root, "shifted"), 40, 2.5, "F", 3)
	scanner(t, filepath.Join(root, "few"), 10, 1, "", 4)
	if err := os.WriteFile(filepath.Join(root, "same", "broken.dcm"), []byte("DICM? no"), 0o600); err != nil {
		t.Fatal(err)
	}

	a := newTestAgent(t)
	a.cfg.Drift = DriftConfig{}.withDefaults()
	b := baselineFrom(ds, groups)
	pl := jobspec.PipelineConfig(spec)
	b.Job, b.Pipeline, b.PipelineHash = "job-1", pl, pl.Hash()

	cases := []struct {
		dir      string
		report   bool
		min, max float64 // bounds on max_psi
	}{
		{"same", true, 0, evaluation.PSIModerate},
		{"shifted", true, evaluation.PSISignificant, math.Inf(1)},
		{"few", false, 0, 0},
	}
	for _, c := range cases {
		a.cfg.Drift.Dir = filepath.Join(root, c.dir)
		r, err := a.checkDrift(context.Background(), &b)
		if err != nil {
			t.Fatalf("%s: %v", c.dir, err)
		}
		if !c.report {
			if r != nil {
				t.Errorf("%s: reported from fewer than %d images: %v", c.dir, a.cfg.Drift.MinExamples, r)
			}
			continue
		}
		if r == nil {
			t.Fatalf("%s: no report", c.dir)
		}
		t.Logf("%s: psi %v", c.dir, r.Psi)
		if r.MaxPsi < c.min || r.MaxPsi > c.max || r.Examples != 40 || r.BaselineExamples != 60 || r.BaselineJob != "job-1" || r.PipelineHash != pl.Hash() {
			t.Errorf("%s: report %v; want 40 examples against 60 and max_psi in [%v, %v]", c.dir, r, c.min, c.max)
		}
		if _, ok := r.Psi[FeatureSex]; !ok {
			t.Errorf("%s: no sex PSI though the baseline has the table: %v", c.dir, r.Psi)
		}
		if _, ok := r.Psi[FeatureModel]; ok {
			t.Errorf("%s: a PSI for a feature the baseline lacks: %v", c.dir, r.Psi)
		}
		if c.dir == "shifted" && (r.Psi[FeatureIntensity] <= evaluation.PSISignificant || r.Psi[FeatureSex] <= evaluation.PSISignificant) {
			t.Errorf("shifted: intensity and sex should both have drifted: %v", r.Psi)
		}
	}
	a.cfg.Drift.Dir = filepath.Join(root, "missing")
	if _, err := a.checkDrift(context.Background(), &b); err == nil {
		t.Error("a missing drift folder checked without error")
	}
}

func TestNewestFiles(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	for i, name := range []string{"a/1.dcm", "b/c/2.dcm", "3.dcm", "a/4.dcm", ".hidden/5.dcm", "a/.6.dcm"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		mt := now.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	got, err := newestFiles(context.Background(), dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "a/4.dcm"), filepath.Join(dir, "3.dcm"), filepath.Join(dir, "b/c/2.dcm")}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("newest 3: %v, want %v", got, want)
	}
}

// TestBaselineRecordedAfterTraining: a training task records the data it
// trained on as the drift baseline, and the drift watch then compares the
// arriving images with it and sends the report on the task stream.
func TestBaselineRecordedAfterTraining(t *testing.T) {
	p, cfg := startPeer(t)
	root := t.TempDir()
	spec := driftSpec(t)
	scanner(t, filepath.Join(root, "train"), 40, 1, "", 1)
	scanner(t, filepath.Join(root, "arriving"), 30, 2.5, "", 2)
	ds, _ := standardise(t, filepath.Join(root, "train"), spec)
	for i := range ds.Y {
		ds.Y[i] = i % 2
	}
	m, err := learning.New(jobspec.ModelSpec(spec), spec.Seed)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan received, 1)
	p.serve(learning.EncodeWeights(m.Weights()), uploadServer(nil, 0, nil, got))
	cfg.Data = MemoryData{Data: ds}
	cfg.Drift = DriftConfig{Dir: filepath.Join(root, "arriving"), Interval: time.Hour}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := runStarted(t, a)
	<-p.hello

	task := dpTask(spec, "job-7", 1, len(m.Weights()))
	p.out <- &pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Task{Task: task}}
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("no upload")
	}
	b, err := a.st.baseline()
	if err != nil || b == nil {
		t.Fatalf("no baseline after training: %v", err)
	}
	if b.Job != "job-7" || b.Examples != 40 || b.PipelineHash != jobspec.PipelineConfig(spec).Hash() || b.Intensity.N() == 0 || b.Recorded.IsZero() {
		t.Fatalf("baseline %+v", b)
	}
	r := next(t, p, (*pb.AgentMessage).GetDrift, func(r *pb.DriftReport) bool { return r != nil })
	if r.BaselineJob != "job-7" || r.Examples != 30 || r.Psi[FeatureIntensity] <= evaluation.PSISignificant || r.MaxPsi != r.Psi[FeatureIntensity] {
		t.Fatalf("drift report %v", r)
	}
	stop()
	st, err := ReadDrift(cfg.StateDir, time.Second)
	if err != nil || st.Baseline == nil || st.Baseline.Job != "job-7" || st.Last == nil || st.Last.MaxPsi != r.MaxPsi {
		t.Fatalf("state read offline: %+v, %v", st, err)
	}
}

// TestLatestDriftSentOnConnect: the latest report is sent whenever a
// session starts, so one made while the coordinator was unreachable (or
// lost with a broken stream) still arrives.
func TestLatestDriftSentOnConnect(t *testing.T) {
	p, cfg := startPeer(t)
	cfg.Data = MemoryData{}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := &pb.DriftReport{BaselineJob: "job-3", Examples: 31, Psi: map[string]float64{FeatureIntensity: 0.4}, MaxPsi: 0.4}
	a.drift.publish(want)
	<-a.drift.ready // as if a session that broke had taken it
	runStarted(t, a)
	<-p.hello
	r := next(t, p, (*pb.AgentMessage).GetDrift, func(r *pb.DriftReport) bool { return r != nil })
	if r.BaselineJob != "job-3" || r.Examples != 31 || r.MaxPsi != 0.4 {
		t.Fatalf("sent %v, want %v", r, want)
	}
}

// FuzzHeaderValues: header text from arriving files becomes a category
// only as an age band or a bounded, valid device name.
func FuzzHeaderValues(f *testing.F) {
	for _, s := range []string{"045Y", "006M", "SYNTH Medical", "\xff\xfeX", "  a \t b  ", fmt.Sprintf("%070d", 1)} {
		f.Add(s)
	}
	bands := map[string]bool{"": true, "0-17": true, "18-39": true, "40-64": true, "65+": true}
	f.Fuzz(func(t *testing.T, s string) {
		if b := imaging.AgeBand(s); !bands[b] {
			t.Fatalf("AgeBand(%q) = %q", s, b)
		}
		d := imaging.DeviceName(s)
		if len(d) > 64 || !utf8.ValidString(d) || strings.TrimSpace(d) != d || imaging.DeviceName(d) != d {
			t.Fatalf("DeviceName(%q) = %q", s, d)
		}
	})
}

// BenchmarkCheckDrift is one drift check over 100 arriving 32×32 images:
// almost all of it is reading and standardising the files.
func BenchmarkCheckDrift(b *testing.B) {
	root := b.TempDir()
	spec := driftSpec(b)
	scanner(b, filepath.Join(root, "baseline"), 60, 1, "", 1)
	scanner(b, filepath.Join(root, "arriving"), 100, 1, "", 2)
	ds, groups := standardise(b, filepath.Join(root, "baseline"), spec)
	base := baselineFrom(ds, groups)
	base.Pipeline = jobspec.PipelineConfig(spec)
	a := &Agent{cfg: Config{Drift: DriftConfig{Dir: filepath.Join(root, "arriving")}.withDefaults()}, log: slog.New(slog.DiscardHandler)}
	b.ResetTimer()
	for b.Loop() {
		if r, err := a.checkDrift(context.Background(), &base); err != nil || r == nil {
			b.Fatal(err)
		}
	}
}

// TestBaselineIsBounded: a baseline of a large site samples at most
// maxDriftFiles images, spread over the whole dataset.
func TestBaselineIsBounded(t *testing.T) {
	n := 3*maxDriftFiles + 1
	ds := learning.Dataset{N: n, C: 1, H: 1, W: 2, X: make([]float32, 2*n)}
	for i := range ds.X {
		ds.X[i] = float32(i / 2) // the image's index
	}
	b := baselineFrom(ds, nil)
	if got := b.Intensity.N(); got > 2*maxDriftFiles || got < 2*maxDriftFiles-2 {
		t.Fatalf("%v pixels sampled from %d images of 2 pixels; want about %d", got, n, 2*maxDriftFiles)
	}
	if last := b.Intensity.Edges[len(b.Intensity.Edges)-1]; last < 0.8*float64(n) {
		t.Errorf("the top decile starts at image %v of %d: the sample is not spread over the dataset", last, n)
	}
}
