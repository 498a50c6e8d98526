package sim

import (
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/privacy/audit/report"
	"github.com/concord-fl/concord/privacy/dp"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// TestSiteDPJobs runs site-level DP jobs with secure aggregation through
// the real coordinator and three real agents, each with a site-level
// budget. The first job plans z for ε 4 at δ 1e-5 over 3 rounds: every
// site's site-level ledger shows 3 releases (q = 1, one step, z) whose
// epsilon is the accountant's for 3 Gaussian releases, just under 4, and
// the report names the level. The second job adapts its clip: the clip
// sent with each round's task follows the noisy count, which only the
// encrypted sum reveals.
func TestSiteDPJobs(t *testing.T) {
	f, ctx := startFederation(t)
	names := []string{"site-a", "site-b", "site-c"}
	for i, name := range names {
		o := SiteOptions{Data: siteagent.MemoryData{Data: blobs(32, uint64(i+1))},
			Privacy: siteagent.PrivacyPolicy{SiteBudget: &dp.Budget{Level: dp.Site, Epsilon: 20, Delta: 1e-5}}}
		if err := f.AddSite(name, o); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.WaitSites(ctx, 3); err != nil {
		t.Fatal(err)
	}
	const common = "min_sites: 3\nround_deadline: 60s\nmodel: {base_width: 4}\ntraining: {batch_size: 16, optimizer: sgd, learning_rate: 0.05}\nseed: 5\n"
	first := submit(t, ctx, f, "name: site-dp\nrounds: 3\n"+common+
		"privacy: {secure_aggregation: mhe, threshold: 3, level: site, update_clip: 0.5, delta: 1e-5, epsilon: 4}\n")
	j := watchToEnd(t, ctx, f, first.Id)
	if j.State != "completed" || len(j.Rounds) != 3 {
		t.Fatalf("site-level DP job: %s: %s (failures %v)", j.State, j.Reason, j.Failures)
	}
	for _, r := range j.Rounds {
		if len(r.Contributors) != 3 {
			t.Errorf("round %d aggregated %d contributions, want 3", r.Round, len(r.Contributors))
		}
	}
	spec := testSpec(t, "name: site-dp\nrounds: 3\n"+common+"privacy: {secure_aggregation: mhe, threshold: 3, level: site, update_clip: 0.5, delta: 1e-5, epsilon: 4}\n")
	sdp, err := jobspec.SiteDPConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	want, err := dp.Spent(sdp.NoiseMultiplier, 1, 3, 1e-5)
	if err != nil || want > 4 || want < 3.99 {
		t.Fatalf("the planned z %v spends %v over 3 rounds (%v), want just under 4", sdp.NoiseMultiplier, want, err)
	}
	t.Logf("planned z = %.4f for ε 4 at δ 1e-5 over 3 rounds; each site adds std z·C/sqrt(3) = %.4f", sdp.NoiseMultiplier, sdp.UpdateStd())

	second := submit(t, ctx, f, "name: site-dp-adaptive\nrounds: 3\n"+common+
		"privacy: {secure_aggregation: mhe, threshold: 3, level: site, update_clip: 0.05, delta: 1e-5, noise_multiplier: 0.8, "+
		"adaptive_clip: {quantile: 0.5, lr: 0.5, count_noise: 0.6}}\n")
	j2 := watchToEnd(t, ctx, f, second.Id)
	if j2.State != "completed" || len(j2.Rounds) != 3 {
		t.Fatalf("adaptive site-level DP job: %s: %s (failures %v)", j2.State, j2.Reason, j2.Failures)
	}
	clips := []float64{}
	for _, r := range j2.Rounds {
		c, ok := r.Metrics["update_clip"]
		if !ok {
			t.Fatalf("round %d has no update_clip metric: %v", r.Round, r.Metrics)
		}
		clips = append(clips, c)
	}
	t.Logf("adaptive clip per round: %v; noisy unclipped fraction: %v, %v, %v", clips,
		j2.Rounds[0].Metrics["clipped_fraction_noisy"], j2.Rounds[1].Metrics["clipped_fraction_noisy"], j2.Rounds[2].Metrics["clipped_fraction_noisy"])
	if clips[0] != 0.05 || clips[1] == clips[0] || clips[2] == clips[1] {
		t.Errorf("the clip did not adapt: %v", clips)
	}
	for i := 1; i < len(clips); i++ {
		// One step moves the clip by at most exp(±η·max(γ, 1−γ)).
		if r := clips[i] / clips[i-1]; r < math.Exp(-0.25)-1e-9 || r > math.Exp(0.25)+1e-9 {
			t.Errorf("round %d: clip %v after %v, a step beyond exp(±0.25)", i+1, clips[i], clips[i-1])
		}
	}

	// The report of the first job names the level, and each site's epsilon.
	rep := jobReport(t, ctx, f, first.Id)
	if !rep.Privacy.Enabled || rep.Privacy.Level != report.LevelSite || len(rep.Privacy.Receipts) != 9 || len(rep.Privacy.Sites) != 3 {
		t.Fatalf("report DP section: enabled %v, level %s, %d receipts, %d sites", rep.Privacy.Enabled, rep.Privacy.Level, len(rep.Privacy.Receipts), len(rep.Privacy.Sites))
	}
	for _, sb := range rep.Privacy.Sites {
		if last := sb.Rounds[len(sb.Rounds)-1].Cumulative; math.Abs(last-want) > 1e-6 || sb.Level != report.LevelSite {
			t.Errorf("report: %s spent %v at level %s, want %v at site level", sb.Site, last, sb.Level, want)
		}
	}

	zu, err := dp.AdaptiveSplit(0.8, 0.6)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("adaptive job: z 0.8 split into z_update %.4f and count noise 0.6", zu)
	bothJobs, err := dp.Spent(sdp.NoiseMultiplier, 1, 3, 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		f.StopSite(name)
		rec, err := siteagent.ReadPrivacy(filepath.Join(f.Dir, "sites", name), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Ledger != nil || rec.SiteLedger == nil {
			t.Fatalf("%s: record ledger %v, site ledger %v", name, rec.Ledger, rec.SiteLedger)
		}
		only, _ := dp.NewLedger(rec.SiteLedger.Budget())
		adaptive := 0
		for _, e := range rec.SiteLedger.Entries() {
			switch e.JobID {
			case first.Id:
				if e.Level != dp.Site || e.SampleRate != 1 || e.Steps != 1 || e.NoiseMultiplier != sdp.NoiseMultiplier {
					t.Errorf("%s: entry %+v, want one site-level release at q 1 with z %v", name, e, sdp.NoiseMultiplier)
				}
				if err := only.Charge(e); err != nil {
					t.Fatal(err)
				}
			case second.Id:
				adaptive++
				if e.NoiseMultiplier != 0.8 {
					t.Errorf("%s: adaptive entry charged at z %v, want the whole round's 0.8", name, e.NoiseMultiplier)
				}
			}
		}
		if got, _ := only.Spent(); len(only.Entries()) != 3 || math.Abs(got-bothJobs) > 1e-9 {
			t.Errorf("%s: the first job's %d entries spend %v, want 3 spending %v", name, len(only.Entries()), got, bothJobs)
		}
		if adaptive != 3 {
			t.Errorf("%s: %d entries of the adaptive job, want 3", name, adaptive)
		}
		total, _ := rec.SiteLedger.Spent()
		t.Logf("%s: site-level epsilon after both jobs %.4f (δ 1e-5); first job alone %.4f", name, total, bothJobs)
		for _, r := range rec.Receipts[first.Id] {
			if len(r.Countersigned) == 0 {
				t.Errorf("%s: round %d's receipt was not countersigned", name, r.Round)
			}
		}
	}
}

// TestSiteDPPlaintextAdaptive: site-level DP with adaptive clipping
// without secure aggregation: each update carries its noisy count bit as
// one extra value, the coordinator takes the unweighted mean (the sites
// hold 16 and 48 examples, which a weighted mean would favour) and adapts
// the clip.
func TestSiteDPPlaintextAdaptive(t *testing.T) {
	f, ctx := startFederation(t)
	for i, n := range []int{16, 48} {
		o := SiteOptions{Data: siteagent.MemoryData{Data: blobs(n, uint64(i+1))},
			Privacy: siteagent.PrivacyPolicy{SiteBudget: &dp.Budget{Level: dp.Site, Epsilon: 30, Delta: 1e-5}}}
		if err := f.AddSite([]string{"site-a", "site-b"}[i], o); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.WaitSites(ctx, 2); err != nil {
		t.Fatal(err)
	}
	job := submit(t, ctx, f, "name: site-dp-plain\nrounds: 2\nmin_sites: 2\nround_deadline: 60s\nmodel: {base_width: 4}\n"+
		"training: {batch_size: 16, optimizer: sgd, learning_rate: 0.05}\nseed: 5\n"+
		"privacy: {secure_aggregation: none, level: site, update_clip: 10, delta: 1e-5, noise_multiplier: 1, adaptive_clip: {quantile: 0.5, count_noise: 2}}\n")
	j := watchToEnd(t, ctx, f, job.Id)
	if j.State != "completed" || len(j.Rounds) != 2 {
		t.Fatalf("%s: %s (failures %v)", j.State, j.Reason, j.Failures)
	}
	c1, c2 := j.Rounds[0].Metrics["update_clip"], j.Rounds[1].Metrics["update_clip"]
	if c1 != 10 || c2 == c1 || c2 <= 0 {
		t.Errorf("clips %v then %v: want 10 then an adapted one", c1, c2)
	}
	if _, ok := j.Rounds[0].Metrics["train_loss"]; ok {
		t.Error("a site-level DP round published the sites' training loss")
	}
	t.Logf("plaintext adaptive clip: %v → %v", c1, c2)
}
