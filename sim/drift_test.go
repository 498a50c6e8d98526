package sim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/concord-fl/concord/proto/concordpb"
	"github.com/concord-fl/concord/sim/synth"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// TestRetrainingFiresOnInjectedDrift: real agents train on generated DICOM
// hospitals; after the version is published, images from another
// hospital's scanners arrive at one site. Its agent measures the drift
// against what it trained on and reports only the statistic; the version's
// retrain.drift_psi fires and the coordinator submits the retraining job
// from the published weights.
func TestRetrainingFiresOnInjectedDrift(t *testing.T) {
	f, ctx := startFederation(t)
	dir := t.TempDir()
	hospitals := synth.Hospitals(4, 7)
	if err := os.MkdirAll(filepath.Join(dir, "arriving"), 0o755); err != nil {
		t.Fatal(err)
	}
	classes := []string{"normal", "lesion"}
	var names []string
	for i, h := range hospitals[:3] {
		h.N = 48
		if _, err := synth.WriteDICOM(filepath.Join(dir, "train"), h, int64(i)); err != nil {
			t.Fatal(err)
		}
		o := SiteOptions{Data: &siteagent.DICOMFolder{Dir: filepath.Join(dir, "train", h.Slug()), Classes: classes}}
		if i == 0 {
			o.Drift = siteagent.DriftConfig{Dir: filepath.Join(dir, "arriving"), Interval: 200 * time.Millisecond, MinExamples: 30}
		}
		if err := f.AddSite(h.Slug(), o); err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Slug())
	}
	if err := f.WaitSites(ctx, 3); err != nil {
		t.Fatal(err)
	}
	spec := generatedPipeline(generatedSize)
	job := runJob(t, ctx, f, &pb.JobSpec{Name: "drifty", Rounds: 1, MinSites: 3, RoundDeadlineSeconds: 120, Seed: 1,
		Model:    &pb.ModelSpec{Arch: "cnn", Channels: 1, Height: generatedSize, Width: generatedSize, Classes: 2},
		Pipeline: spec, Privacy: &pb.PrivacySpec{SecureAggregation: "none"}, Retrain: &pb.RetrainSpec{DriftPsi: 0.25}})
	if job.ModelVersion != "v1" {
		t.Fatalf("first job: %s, model %q", job.State, job.ModelVersion)
	}
	// Another hospital's scanners (other manufacturer and model) at site 0.
	// Written aside and moved in at once, as a PACS export lands: a check
	// must not see half of them.
	other := hospitals[3]
	other.N = 40
	if _, err := synth.WriteDICOM(filepath.Join(dir, "staging"), other, 99); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "staging", other.Slug()), filepath.Join(dir, "arriving", other.Slug())); err != nil {
		t.Fatal(err)
	}
	var re *pb.Job
	eventually(t, 60*time.Second, "a retraining job", func() bool {
		jobs, err := f.Admin.ListJobs(ctx, &pb.ListJobsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs.Jobs) > 1 {
			re = jobs.Jobs[1]
		}
		return re != nil
	})
	if re.Spec.InitVersion != "v1" || re.Spec.Name != "drifty" {
		t.Fatalf("retraining job: init_version %q, name %q", re.Spec.InitVersion, re.Spec.Name)
	}
	sites, err := f.Admin.ListSites(ctx, &pb.ListSitesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sites.Sites {
		if s.Name != names[0] {
			continue
		}
		// The retraining job may already have trained, and so renewed the
		// site's baseline, by the time the admin looks.
		if s.Drift == nil || s.Drift.MaxPsi < 0.25 || s.Drift.Examples != 40 || (s.Drift.BaselineJob != job.Id && s.Drift.BaselineJob != re.Id) {
			t.Fatalf("site %s drift report: %v", s.Name, s.Drift)
		}
		// The final round's model scored the arriving images too.
		if _, ok := s.Drift.Psi["prediction"]; !ok {
			t.Fatalf("site %s drift report: %v", s.Name, s.Drift)
		}
	}
	waitEvent(t, ctx, f, "", "job.retrain", "retraining of v1 triggered: site "+names[0]+" reports drift")
	if final := watchToEnd(t, ctx, f, re.Id); final.ModelVersion != "v2" || !strings.HasPrefix(final.Spec.InitVersion, "v1") {
		t.Fatalf("retraining job ended %s, model %q", final.State, final.ModelVersion)
	}
}
