package sim

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "github.com/concord-fl/concord/proto/concordpb"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// TestFederatedTuning: a job with a tuning section runs its six candidates
// as one-round trials scored by the validation site, the best two again
// for three rounds, then trains itself with the best of those; the trials
// publish nothing, the final job publishes, and its spec carries the
// chosen settings.
func TestFederatedTuning(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sum, err := Run(ctx, Config{Sites: 4, ValidationSites: 1, Rounds: 4, ImagesPerSite: 24, Seed: 3, Out: t.TempDir(),
		SecureAggregation: "none", Strategy: "fedadam", TuneServerLR: []float64{0.001, 0.01, 0.1}, TuneLocalEpochs: []uint32{1, 2}, TuneRounds: 1})
	if err != nil {
		t.Fatal(err)
	}
	tu := sum.Tuning
	if sum.State != "completed" || tu == nil || sum.PublishedVersion == "" {
		t.Fatalf("state %s, tuning %+v, published %q", sum.State, tu, sum.PublishedVersion)
	}
	var rung0, rung1 []TuningTrial
	for _, tr := range tu.Trials {
		switch {
		case strings.Contains(tr.Note, "of rung 0") && tr.Rounds == 1:
			rung0 = append(rung0, tr)
		case strings.Contains(tr.Note, "of rung 1") && tr.Rounds == 3:
			rung1 = append(rung1, tr)
		default:
			t.Errorf("unexpected trial %+v", tr)
		}
		if tr.State != "completed" || tr.Score < 0 {
			t.Errorf("trial %+v not scored", tr)
		}
	}
	if len(rung0) != 6 || len(rung1) != 2 {
		t.Fatalf("rung 0: %d trials, rung 1: %d; want 6 and 2 (%+v)", len(rung0), len(rung1), tu.Trials)
	}
	best := rung1[0]
	if rung1[1].Score > best.Score {
		best = rung1[1]
	}
	settings := best.Note[strings.Index(best.Note, ": ")+2 : strings.LastIndex(best.Note, ",")]
	if !strings.Contains(tu.Chosen, settings) || !strings.Contains(tu.Chosen, "job "+best.JobID) {
		t.Errorf("chosen %q; the best of rung 1 is %+v", tu.Chosen, best)
	}
	if sum.JobID != tu.FinalJob || !strings.Contains(settings, fmt.Sprintf("server_lr %g, local_epochs %d", tu.ServerLR, tu.LocalEpochs)) {
		t.Errorf("final job %s (summary's job %s) trained with server_lr %g, local_epochs %d; chosen %s", tu.FinalJob, sum.JobID, tu.ServerLR, tu.LocalEpochs, settings)
	}
	for _, tr := range tu.Trials {
		if tr.Published != "" || tr.Gate != "evaluated" {
			t.Errorf("trial %s published %q, gate %q", tr.JobID, tr.Published, tr.Gate)
		}
	}
}

// TestFederatedTuningSurvivesRestart: a coordinator restarted while a
// tuning group's trials run carries the search on from its job records to
// exactly one final job, and a restart after the search adds nothing.
func TestFederatedTuningSurvivesRestart(t *testing.T) {
	f, ctx := startFederation(t)
	for i, name := range []string{"site-a", "site-b", "site-c"} {
		if err := f.AddSite(name, SiteOptions{Data: siteagent.MemoryData{Data: blobs(32, uint64(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.WaitSites(ctx, 3); err != nil {
		t.Fatal(err)
	}
	first := submit(t, ctx, f, "name: tuned\nsites: [site-a, site-b]\nvalidation_sites: [site-c]\nmin_sites: 2\nrounds: 3\nround_deadline: 60s\n"+
		"privacy: {secure_aggregation: none}\nvalidation: {receipt_deadline: 60s}\ntuning: {local_epochs: [1, 2, 3], rounds: 1}\n")
	if first.TuneGroup == "" || !strings.Contains(first.TuneNote, "trial 1/3 of rung 0") {
		t.Fatalf("first trial: group %q, note %q", first.TuneGroup, first.TuneNote)
	}
	restart := func() {
		addr := f.Addr()
		if err := f.StopCoordinator(); err != nil {
			t.Fatal(err)
		}
		if err := f.StartCoordinator(addr, 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, time.Minute, "the first trial scored", func() bool { return getJob(t, ctx, f, first.Id).Gate.GetState() == "evaluated" })
	restart()
	var final *pb.Job
	eventually(t, 90*time.Second, "the final job completed", func() bool {
		final = nil
		for _, j := range listAll(t, ctx, f) {
			if j.TuneFinal {
				if final != nil {
					t.Fatalf("two final jobs: %s and %s", final.Id, j.Id)
				}
				final = j
			}
		}
		return final != nil && final.State == "completed" && final.ModelVersion != ""
	})
	if final.Spec.Rounds != 3 || final.Spec.Tuning != nil || !strings.Contains(final.TuneNote, "tuned by "+first.TuneGroup) {
		t.Errorf("final job: %d rounds, tuning %v, note %q", final.Spec.Rounds, final.Spec.Tuning, final.TuneNote)
	}
	n := len(listAll(t, ctx, f))
	restart()
	time.Sleep(500 * time.Millisecond)
	if m := len(listAll(t, ctx, f)); m != n || n != 4 {
		t.Errorf("%d jobs after the search, %d after another restart; want 4 (3 trials and the final job)", n, m)
	}
}

func listAll(t *testing.T, ctx context.Context, f *Federation) []*pb.Job {
	t.Helper()
	resp, err := f.Admin.ListJobs(ctx, &pb.ListJobsRequest{PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Jobs
}
