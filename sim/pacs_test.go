package sim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/imaging"
	"github.com/concord-fl/concord/internal/testorthanc"
	"github.com/concord-fl/concord/sim/synth"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// TestJobTrainsFromOrthanc: two hospitals each keep their images in their
// own Orthanc; one site agent pulls them over DICOMweb, the other over
// DIMSE (C-FIND and C-GET), each labels them from a CSV keyed by Study
// Instance UID, and the federation trains on them.
func TestJobTrainsFromOrthanc(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	f, err := Start(Options{Dir: filepath.Join(dir, "fed"), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var sources []*siteagent.PACSData
	for i, h := range synth.Hospitals(2, 5) {
		h.N = 24
		m, err := synth.WriteDICOM(filepath.Join(dir, "export"), h, int64(i))
		if err != nil {
			t.Fatal(err)
		}
		// Orthanc answers C-FIND and C-GET only from AE titles it knows.
		o := testorthanc.Start(t, testorthanc.Options{Modalities: map[string]string{"CONCORD": "127.0.0.1:1"}})
		var csv strings.Builder
		csv.WriteString("study_instance_uid,label\n")
		for _, e := range m.Entries {
			p := filepath.Join(m.Dir, filepath.FromSlash(e.Path))
			o.Upload(t, p)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			file, err := imaging.Parse(b, imaging.DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&csv, "%s,%d\n", file.Data.String(imaging.NewTag(0x0020, 0x000D)), e.Label)
		}
		state := filepath.Join(dir, h.Slug())
		labels := filepath.Join(dir, h.Slug()+"-labels.csv")
		if err := os.WriteFile(labels, []byte(csv.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		url := o.DICOMweb
		if i == 1 {
			url = fmt.Sprintf("dicom://%s@127.0.0.1:%d?calling=CONCORD", o.AET, o.DICOMPort)
		}
		src, err := siteagent.OpenPACS(siteagent.PACSConfig{URL: url, Labels: labels, StateDir: state,
			CacheBytes: 64 << 20})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		sources = append(sources, src)
		if err := f.AddSite(h.Slug(), SiteOptions{Data: src}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.WaitSites(ctx, 2); err != nil {
		t.Fatal(err)
	}
	spec := testSpec(t, "name: from-pacs\nrounds: 2\nmin_sites: 2\nround_deadline: 60s\nseed: 1\n"+
		"model: {channels: 1, height: 32, width: 32, classes: 2, base_width: 4}\n"+
		"pipeline: {width: 32, height: 32, channels: 1, resample: area, normalise: zscore}\n"+
		"privacy: {secure_aggregation: none}\n")
	final := runJob(t, ctx, f, spec)
	if final.State != "completed" || len(final.Rounds) != 2 {
		t.Fatalf("job ended %s (%s) after %d rounds", final.State, final.Reason, len(final.Rounds))
	}
	for i, src := range sources {
		if n := src.Examples(); n != 24 {
			t.Errorf("site %d brought in %d instances, its PACS holds 24", i, n)
		}
		if len(src.Rejected) != 0 {
			t.Errorf("site %d skipped %v", i, src.Rejected)
		}
	}
	// Every round trained on both sites' 24 images each.
	for _, r := range final.Rounds {
		if r.Samples != 48 || len(r.Contributors) != 2 {
			t.Errorf("round %d: %d samples from %v, want 48 from both sites", r.Round, r.Samples, r.Contributors)
		}
	}
}
