package sim

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-fl/concord/privacy/audit"
	"github.com/concord-fl/concord/privacy/audit/report"
	"github.com/concord-fl/concord/privacy/dp"
	siteagent "github.com/concord-fl/concord/site-agent"
)

// TestRecordDPJobs runs record-level DP jobs through the real coordinator
// and two real agents with their own budgets. The first job (2 rounds of 4
// DP-SGD steps, σ 2, q 16/64, about ε 2.08 at δ 1e-5) fits both budgets:
// each ledger shows its 2 rounds, with what ran, and their epsilon is the
// accountant's for those steps. The second job, the same again, would take
// site-b (budget ε 2.5) to about 2.81: site-b refuses it, and the
// coordinator's job failures show site-b and the numbers.
func TestRecordDPJobs(t *testing.T) {
	f, ctx := startFederation(t)
	budgets := map[string]float64{"site-a": 8, "site-b": 2.5}
	for i, name := range []string{"site-a", "site-b"} {
		o := SiteOptions{Data: siteagent.MemoryData{Data: blobs(64, uint64(i+1))},
			Privacy: siteagent.PrivacyPolicy{Budget: &dp.Budget{Level: dp.Record, Epsilon: budgets[name], Delta: 1e-5}}}
		if err := f.AddSite(name, o); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.WaitSites(ctx, 2); err != nil {
		t.Fatal(err)
	}
	const job = "rounds: 2\nmin_sites: 2\nround_deadline: 60s\nmodel: {base_width: 4}\n" +
		"training: {batch_size: 16, optimizer: sgd, learning_rate: 0.05}\n" +
		"privacy: {secure_aggregation: none, level: record, example_clip: 1, delta: 1e-5, noise_multiplier: 2}\nseed: 3\n"
	first := submit(t, ctx, f, "name: dp-1\n"+job)
	if j := watchToEnd(t, ctx, f, first.Id); j.State != "completed" {
		t.Fatalf("first DP job: %s: %s (failures %v)", j.State, j.Reason, j.Failures)
	}
	second := submit(t, ctx, f, "name: dp-2\n"+job)
	j := watchToEnd(t, ctx, f, second.Id)
	if j.State == "completed" {
		t.Fatal("the second DP job completed, though it exceeds site-b's budget")
	}
	var reason string
	for _, fl := range j.Failures {
		if fl.Site == "site-b" {
			reason = fl.Reason
		}
		if fl.Site == "site-a" {
			t.Errorf("site-a failed the second job, within its budget: %s", fl.Reason)
		}
	}
	t.Logf("site-b: %s", reason)
	for _, want := range []string{"privacy budget exceeded", "spent 2.076 of the budget 2.5", "would bring it to 2.81"} {
		if !strings.Contains(reason, want) {
			t.Errorf("site-b's failure %q does not say %q", reason, want)
		}
	}

	q, steps := 16.0/64, 4
	want, err := dp.Spent(2, q, 2*steps, 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	// The compliance report of the first job states each site's epsilon,
	// from the countersigned receipts, against its budget.
	rep := jobReport(t, ctx, f, first.Id)
	if !rep.Privacy.Enabled || rep.Privacy.Level != report.LevelRecord || len(rep.Privacy.Receipts) != 4 || len(rep.Privacy.Sites) != 2 {
		t.Fatalf("report DP section: enabled %v, level %s, %d receipts, %d sites", rep.Privacy.Enabled, rep.Privacy.Level, len(rep.Privacy.Receipts), len(rep.Privacy.Sites))
	}
	for _, sb := range rep.Privacy.Sites {
		last := sb.Rounds[len(sb.Rounds)-1].Cumulative
		if math.Abs(last-want) > 1e-6 || sb.Budget != budgets[sb.Site] {
			t.Errorf("report: %s spent %v of %v, want %v of %v", sb.Site, last, sb.Budget, want, budgets[sb.Site])
		}
	}
	for _, name := range []string{"site-a", "site-b"} {
		f.StopSite(name)
		rec, err := siteagent.ReadPrivacy(filepath.Join(f.Dir, "sites", name), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		// The site's own log of what left it: both updates of the first
		// job, with their hashes, countersigned.
		sent, err := siteagent.ReadSent(filepath.Join(f.Dir, "sites", name), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		updates := 0
		for _, e := range sent {
			if e.JobID == first.Id && e.Kind == "UPLOAD_KIND_UPDATE" {
				updates++
				if !e.Countersigned || len(e.SHA256) != 64 || e.Bytes == 0 {
					t.Errorf("%s: sent entry %+v", name, e)
				}
			}
		}
		if updates != 2 {
			t.Errorf("%s: the sent log has %d updates of the first job, want 2: %+v", name, updates, sent)
		}
		var ofFirst []dp.Entry
		for _, e := range rec.Ledger.Entries() {
			if e.JobID == first.Id {
				ofFirst = append(ofFirst, e)
			}
		}
		if len(ofFirst) != 2 || ofFirst[0].Round != 1 || ofFirst[1].Round != 2 {
			t.Fatalf("%s: entries of the first job %+v, want rounds 1 and 2", name, ofFirst)
		}
		only, _ := dp.NewLedger(rec.Ledger.Budget())
		for _, e := range ofFirst {
			if e.Steps != steps || e.SampleRate != q || e.NoiseMultiplier != 2 || e.Level != dp.Record {
				t.Errorf("%s: entry %+v, want %d steps at rate %v, σ 2", name, e, steps, q)
			}
			if err := only.Charge(e); err != nil {
				t.Fatal(err)
			}
		}
		if got, _ := only.Spent(); math.Abs(got-want) > 1e-9 {
			t.Errorf("%s: the first job's entries spend %v, dp.Spent for what ran says %v", name, got, want)
		}
		if name == "site-b" {
			if n := len(rec.Ledger.Entries()); n != 2 {
				t.Errorf("site-b refused the second job but its ledger has %d entries", n)
			}
		}
		if rs := rec.Receipts[first.Id]; len(rs) != 2 {
			t.Errorf("%s: %d receipts of the first job, want 2", name, len(rs))
		} else {
			for _, r := range rs {
				if len(r.Countersigned) == 0 {
					t.Errorf("%s: round %d's receipt came back without the coordinator's countersignature", name, r.Round)
				}
			}
		}
	}
}

// jobReport exports a job's JSON compliance report and verifies its
// signature with the log key of the job's exported audit bundle.
func jobReport(t *testing.T, ctx context.Context, f *Federation, jobID string) *report.Report {
	t.Helper()
	bundle, err := audit.ParseBundle(export(t, ctx, f, jobID, "bundle"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _, err := audit.VerifierPublicKey(bundle.Keys.Log[0])
	if err != nil {
		t.Fatal(err)
	}
	rep, err := report.ExtractAndVerify(export(t, ctx, f, jobID, "json"), pub)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}
