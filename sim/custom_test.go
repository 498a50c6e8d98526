package sim

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/extrainer"
	"github.com/concord-fl/concord/internal/testenv"
	"github.com/concord-fl/concord/internal/testtrainer"
	"github.com/concord-fl/concord/jobspec"
	pb "github.com/concord-fl/concord/proto/concordpb"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// TestCustomModelFederated: the README's example custom job runs end to end
// under secure aggregation: the coordinator builds the global model from the
// pinned layout without Python, two hospitals that approved the module's
// hash train it on a PyTorch trainer (the CPU, allowed by their option),
// and a third that did not approve it refuses with the command to run.
// Costs about 10 s (trainer start-up, one round with key generation).
func TestCustomModelFederated(t *testing.T) {
	addr := testtrainer.Start(t, t.TempDir(), 1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f, err := Start(Options{Dir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	spec, err := jobspec.ParseFile(filepath.Join(testenv.RepoRoot(), "deploy", "examples", "custom", "job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	spec.Rounds, spec.MinSites, spec.RoundDeadlineSeconds, spec.StragglerCutoffSeconds = 1, 2, 90, 60
	spec.Privacy.Threshold = 2 // any two key holders decrypt: the site that refuses holds a share too
	sha := spec.Model.CodeSha256
	for i, name := range []string{"st-marys", "riverside", "north-general"} {
		if name != "north-general" {
			if err := siteagent.ApproveCode(filepath.Join(f.Dir, "sites", name), sha, "dr-"+name, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		tr, err := siteagent.NewExternalTrainer(ctx, extrainer.Config{Address: addr})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		tr.AllowCPUCustom = true
		if err := f.AddSite(name, SiteOptions{Data: siteagent.MemoryData{Data: blobs(32, uint64(i+1))}, Trainer: tr}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.WaitSites(ctx, 3); err != nil {
		t.Fatal(err)
	}
	job, err := f.Admin.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	final := watchToEnd(t, ctx, f, job.Id)
	if final.State != "completed" || len(final.Rounds) != 1 || len(final.Rounds[0].Contributors) != 2 {
		t.Fatalf("job %s (%s), rounds %v", final.State, final.Reason, final.Rounds)
	}
	evs, err := f.Admin.ListEvents(ctx, &pb.ListEventsRequest{JobId: job.Id})
	if err != nil {
		t.Fatal(err)
	}
	refused := false
	for _, e := range evs.Events {
		refused = refused || (e.Kind == "task.failed" && strings.Contains(e.Detail, "site-agent models approve-code "+sha))
	}
	if !refused {
		t.Fatalf("no task.failed event with the approve-code command among %d events", len(evs.Events))
	}
}
