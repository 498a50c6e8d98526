package sim

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// TestDriftTriggersRetraining: a site of a published version's job reports
// drift above the version's retrain.drift_psi; the coordinator submits the
// same spec again from that version's weights, holds it for approval, and
// once approved it runs and publishes the next version with the first as
// its parent. A malformed report is refused and triggers nothing.
func TestDriftTriggersRetraining(t *testing.T) {
	f, ctx, v := validatedFederation(t)
	vKey := kitKey(t, v.kit)
	job := submit(t, ctx, f, "name: watched\nrounds: 1\nmin_sites: 2\nvalidation_sites: [site-v]\nround_deadline: 60s\n"+
		"privacy: {secure_aggregation: none}\nretrain: {drift_psi: 0.25, require_approval: true}\n")
	v.report(t, v.task(t), vKey, nil)
	if final := watchToEnd(t, ctx, f, job.Id); final.ModelVersion != "v1" {
		t.Fatalf("first job: model %q, gate %v", final.ModelVersion, final.Gate)
	}

	drift := func(psi float64) {
		t.Helper()
		err := v.stream.Send(&pb.AgentMessage{Msg: &pb.AgentMessage_Drift{Drift: &pb.DriftReport{BaselineJob: job.Id, Examples: 200,
			BaselineExamples: 80, Psi: map[string]float64{"intensity": psi, "manufacturer": 0.01}}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	drift(math.NaN())
	waitEvent(t, ctx, f, "", "site.drift", "drift report from site-v refused")
	drift(0.1) // below the trigger
	waitEvent(t, ctx, f, "", "site.drift", "largest PSI 0.100")
	drift(0.41)
	waitEvent(t, ctx, f, "", "job.retrain", "retraining of v1 triggered: site site-v reports drift: PSI 0.410 on intensity")
	jobs, err := f.Admin.ListJobs(ctx, &pb.ListJobsRequest{})
	if err != nil || len(jobs.Jobs) != 2 {
		t.Fatalf("jobs after the trigger: %v, %v", jobs.GetJobs(), err)
	}
	re := jobs.Jobs[1]
	if re.State != "awaiting approval" || re.Spec.InitVersion != "v1" || !strings.Contains(re.Reason, "drift") {
		t.Fatalf("retraining job: state %q, init_version %q, reason %q", re.State, re.Spec.InitVersion, re.Reason)
	}
	drift(0.5) // the version is retrained once
	waitEvent(t, ctx, f, "", "site.drift", "largest PSI 0.500")
	if jobs, _ := f.Admin.ListJobs(ctx, &pb.ListJobsRequest{}); len(jobs.GetJobs()) != 2 {
		t.Fatalf("a second drift report submitted another retraining job: %d jobs", len(jobs.GetJobs()))
	}

	// It starts from v1's weights once approved, and publishes v2 with v1
	// as its parent.
	v1, err := fetchModel(ctx, f.Admin, "v1")
	if err != nil {
		t.Fatal(err)
	}
	start, err := fetchModel(ctx, f.Admin, re.Id+"@0")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(learning.EncodeWeights(v1), learning.EncodeWeights(start)) {
		t.Fatal("the retraining job does not start from v1's weights")
	}
	if _, err := f.Admin.ApproveJob(ctx, &pb.ApproveJobRequest{JobId: re.Id}); err != nil {
		t.Fatal(err)
	}
	v.report(t, v.task(t), vKey, nil)
	final := watchToEnd(t, ctx, f, re.Id)
	mv, err := f.Admin.GetModelInfo(ctx, &pb.GetModelRequest{Version: final.ModelVersion})
	if err != nil || mv.Version != "v2" || mv.Parent != "v1" {
		t.Fatalf("retrained version: %v, %v", mv, err)
	}
	if _, err := f.Admin.ApproveJob(ctx, &pb.ApproveJobRequest{JobId: re.Id}); err == nil {
		t.Fatal("a job was approved twice")
	}
}
