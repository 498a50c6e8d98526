package sim

import (
	"slices"
	"testing"

	pb "github.com/concord-fl/concord/proto/concordpb"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// TestLeaveOneSiteOut runs a leave-one-site-out job with real agents: one
// fold per site, each trained without the site it holds out and scored by
// it through a signed receipt, and nothing published.
func TestLeaveOneSiteOut(t *testing.T) {
	f, ctx := startFederation(t)
	sites := []string{"site-a", "site-b", "site-c"}
	for i, name := range sites {
		if err := f.AddSite(name, SiteOptions{Data: siteagent.MemoryData{Data: blobs(48, uint64(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.WaitSites(ctx, 3); err != nil {
		t.Fatal(err)
	}
	first := submit(t, ctx, f, "name: loso\nmode: leave-one-site-out\nsites: [site-c, site-a, site-b]\nmin_sites: 2\nrounds: 1\n"+
		"round_deadline: 60s\nprivacy: {secure_aggregation: none}\nvalidation: {receipt_deadline: 60s}\n")
	if first.FoldGroup == "" || first.HeldOut != "site-a" {
		t.Fatalf("first fold: group %q, held out %q", first.FoldGroup, first.HeldOut)
	}
	jobs, err := f.Admin.ListJobs(ctx, &pb.ListJobsRequest{})
	if err != nil || len(jobs.Jobs) != 3 {
		t.Fatalf("folds: %v, %v", jobs.GetJobs(), err)
	}
	for i, j := range jobs.Jobs {
		final := watchToEnd(t, ctx, f, j.Id)
		held := sites[i]
		if final.FoldGroup != first.FoldGroup || final.HeldOut != held || final.ModelVersion != "" || final.Gate.GetState() != "evaluated" {
			t.Fatalf("fold %d: group %q, held out %q, model %q, gate %v", i+1, final.FoldGroup, final.HeldOut, final.ModelVersion, final.Gate)
		}
		if slices.Contains(final.Spec.Sites, held) || slices.Contains(final.Rounds[0].Contributors, held) {
			t.Fatalf("fold %d trained with its held-out site %s", i+1, held)
		}
		v := final.Rounds[len(final.Rounds)-1].Validation
		if len(v) != 1 || v[0].Site != held || v[0].Examples != 48 || v[0].Metrics["auc"] <= 0 {
			t.Fatalf("fold %d: validation %v", i+1, v)
		}
	}
	models, err := f.Admin.ListModels(ctx, &pb.ListModelsRequest{IncludeRejected: true})
	if err != nil || len(models.Models) != 0 {
		t.Fatalf("folds registered versions: %v, %v", models.GetModels(), err)
	}
}
