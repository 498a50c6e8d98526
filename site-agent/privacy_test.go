package siteagent

import (
	"context"
	"crypto/ed25519"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/privacy/dp"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// dpJob is a small job: a cnn of base width 2 on 28×28, 2 rounds of one
// epoch at batch 16; privacy is the YAML of its privacy section.
func dpJob(t *testing.T, privacy string) *pb.JobSpec {
	t.Helper()
	s, err := jobspec.Parse([]byte("rounds: 2\nmin_sites: 1\nmodel: {base_width: 2}\ntraining: {batch_size: 16, optimizer: sgd, learning_rate: 0.1}\n" +
		"privacy: {secure_aggregation: none" + privacy + "}\n"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// syntheticData is n random 28×28 grey images with alternating labels.
func syntheticData(n int) learning.Dataset {
	rng := rand.New(rand.NewPCG(1, 2))
	d := learning.Dataset{N: n, C: 1, H: 28, W: 28, X: make([]float32, n*28*28), Y: make([]int, n)}
	for i := range d.X {
		d.X[i] = float32(rng.NormFloat64())
	}
	for i := range d.Y {
		d.Y[i] = i % 2
	}
	return d
}

// upload is what the peer received in one upload.
type received struct {
	header *pb.UploadHeader
	data   []byte
}

// uploadServer serves uploads: the first failFirst fail after the header
// as a lost connection would (their headers go on failed); the others are
// received whole, acknowledged with the receipt countersigned by coord,
// and sent on got.
func uploadServer(coord ed25519.PrivateKey, failFirst int32, failed, got chan<- received) func(pb.Agent_UploadServer) error {
	var n atomic.Int32
	return func(stream pb.Agent_UploadServer) error {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		h := m.GetHeader()
		if n.Add(1) <= failFirst {
			failed <- received{header: h}
			return status.Error(codes.Unavailable, "coordinator restarting")
		}
		if err := stream.Send(&pb.UploadAck{}); err != nil {
			return err
		}
		var data []byte
		for i := uint32(0); i < h.TotalChunks; i++ {
			m, err := stream.Recv()
			if err != nil {
				return err
			}
			data = append(data, m.GetChunk().GetData()...)
		}
		var cs []byte
		if len(h.PrivacyReceipt) > 0 {
			if cs, err = dp.Countersign(h.PrivacyReceipt, coord, "audit-test"); err != nil {
				return err
			}
		}
		got <- received{header: h, data: data}
		if err := stream.Send(&pb.UploadAck{Acknowledged: h.TotalChunks, Complete: true, CountersignedReceipt: cs}); err != nil {
			return err
		}
		_, err = stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
}

func dpTask(spec *pb.JobSpec, job string, round int, params int) *pb.Task {
	t := trainTask(job, round)
	t.Spec, t.InputParams = spec, uint64(params)
	return t
}

// TestDPTaskWithinBudget: a DP task within the site's budget trains with
// noise, sends no metric, sends a receipt that verifies against the site
// certificate's key, and charges the ledger once with what ran, also when
// the upload is retried; the coordinator's countersigned receipt is kept.
func TestDPTaskWithinBudget(t *testing.T) {
	p, cfg := startPeer(t)
	data := syntheticData(64)
	spec := dpJob(t, ", level: record, example_clip: 1, delta: 1e-5, noise_multiplier: 1.0")
	m, err := learning.New(jobspec.ModelSpec(spec), spec.Seed)
	if err != nil {
		t.Fatal(err)
	}
	global := m.Weights()
	coordPub, coord, _ := ed25519.GenerateKey(cryptorand.Reader)
	got, failed := make(chan received, 4), make(chan received, 4)
	p.serve(learning.EncodeWeights(global), uploadServer(coord, 1, failed, got))
	cfg.Data = MemoryData{Data: data}
	cfg.Privacy = PrivacyPolicy{Budget: &dp.Budget{Level: dp.Record, Epsilon: 8, Delta: 1e-5}}
	stop := startAgent(t, cfg)
	<-p.hello

	task := dpTask(spec, "job-dp", 1, len(global))
	p.out <- &pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Task{Task: task}}
	var r received
	select {
	case r = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("no upload")
	}
	h := r.header
	if len(failed) != 1 {
		t.Fatalf("%d failed uploads before the one that arrived, want 1: the test did not exercise a retry", len(failed))
	}
	if f := <-failed; string(f.header.PrivacyReceipt) != string(h.PrivacyReceipt) || string(f.header.Sha256) != string(h.Sha256) {
		t.Error("the retried upload is not the recorded one: other bytes or another receipt")
	}
	if len(h.Metrics) != 0 {
		t.Errorf("a DP update carries metrics computed on the records: %v", h.Metrics)
	}
	receipt, err := dp.VerifyReceipt(h.PrivacyReceipt, cfg.TLS.Certificates[0].Leaf.PublicKey)
	if err != nil {
		t.Fatalf("the receipt does not verify against the site certificate: %v", err)
	}
	q, steps := 16.0/64, 4 // one epoch of round(1/q) steps
	if receipt.Site != "st-marys" || receipt.JobID != "job-dp" || receipt.Round != 1 || receipt.SampleRate != q || receipt.Steps != steps ||
		receipt.NoiseMultiplier != 1 || receipt.UploadSHA256 != hex.EncodeToString(h.Sha256) || receipt.Accountant != dp.AccountantVersion {
		t.Errorf("receipt %+v", receipt)
	}
	want, err := dp.Spent(1, q, steps, 1e-5)
	if err != nil || math.Abs(receipt.EpsilonSpent-want) > 1e-12 {
		t.Errorf("receipt says %v spent, dp.Spent says %v (%v)", receipt.EpsilonSpent, want, err)
	}
	for i := range h.PrivacyReceipt {
		bad := append([]byte(nil), h.PrivacyReceipt...)
		bad[i] ^= 0x04
		if _, err := dp.VerifyReceipt(bad, cfg.TLS.Certificates[0].Leaf.PublicKey); err == nil {
			t.Fatalf("the receipt verifies with byte %d changed", i)
		}
	}

	// The same round without DP, from the same weights and seed.
	plain := dpJob(t, "")
	res, err := LocalTrainer{}.Train(context.Background(), TrainRequest{Spec: plain, Global: global, Data: data,
		Seed: TrainingSeed(spec.Seed, 1, "st-marys")})
	if err != nil {
		t.Fatal(err)
	}
	update := learning.DecodeWeightsInto(nil, r.data)
	same := true
	for i := range update {
		if update[i] != res.Weights[i]-global[i] {
			same = false
			break
		}
	}
	if same {
		t.Error("the DP update equals the update without DP")
	}

	// The coordinator sends the task again (it reconnected): nothing is
	// trained, uploaded or charged again.
	p.out <- &pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Task{Task: task}}
	time.Sleep(300 * time.Millisecond)
	stop()
	if len(got) != 0 {
		t.Error("the completed upload was sent again")
	}
	rec, err := ReadPrivacy(cfg.StateDir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	entries := rec.Ledger.Entries()
	if len(entries) != 1 || entries[0].Steps != steps || entries[0].UploadSHA256 != receipt.UploadSHA256 {
		t.Fatalf("ledger entries %+v, want one of %d steps for the upload", entries, steps)
	}
	if spent, _ := rec.Ledger.Spent(); math.Abs(spent-want) > 1e-12 {
		t.Errorf("ledger spent %v, want %v", spent, want)
	}
	rs := rec.Receipts["job-dp"]
	if len(rs) != 1 || len(rs[0].Countersigned) == 0 {
		t.Fatalf("stored receipts %+v", rs)
	}
	if _, kid, err := dp.VerifyCountersigned(rs[0].Countersigned, cfg.TLS.Certificates[0].Leaf.PublicKey, coordPub); err != nil || kid != "audit-test" {
		t.Errorf("stored countersigned receipt: %q %v", kid, err)
	}

	// The hospital lowers its budget: the agent keeps what was spent.
	cfg.Privacy.Budget = &dp.Budget{Level: dp.Record, Epsilon: 5, Delta: 1e-5}
	startAgent(t, cfg)()
	rec, err = ReadPrivacy(cfg.StateDir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if spent, _ := rec.Ledger.Spent(); rec.Ledger.Budget().Epsilon != 5 || len(rec.Ledger.Entries()) != 1 || math.Abs(spent-want) > 1e-12 {
		t.Errorf("after a restart with a new budget: budget %+v, %d entries, spent %v", rec.Ledger.Budget(), len(rec.Ledger.Entries()), spent)
	}
}

// TestDPRefusals: each refusal is permanent (reported at once) and says
// why, with the numbers when the budget is the reason.
func TestDPRefusals(t *testing.T) {
	record := ", level: record, example_clip: 1, delta: 1e-5, noise_multiplier: 0.6"
	budget := &dp.Budget{Level: dp.Record, Epsilon: 0.5, Delta: 1e-5}
	site := ", level: site, update_clip: 1, delta: 1e-5, noise_multiplier: 1"
	adaptive := site + ", adaptive_clip: {quantile: 0.5, count_noise: 1}"
	siteBudget := &dp.Budget{Level: dp.Site, Epsilon: 1, Delta: 1e-5}
	cases := []struct {
		name    string
		privacy string
		policy  PrivacyPolicy
		trainer Trainer
		want    []string
		clip    float64 // the task's update_clip
	}{
		{"over budget", record, PrivacyPolicy{Budget: budget}, nil,
			[]string{"site st-marys refuses job job-x at round 1", "2 rounds of 4 steps", "privacy budget exceeded", "spent 0 of the budget 0.5", "would bring it to"}, 0},
		{"no DP, DP required", "", PrivacyPolicy{Budget: budget, RequireDP: true}, nil, []string{"this site requires it (privacy.require_dp"}, 0},
		{"DP without a budget", record, PrivacyPolicy{}, nil, []string{"has no privacy budget (privacy.budget"}, 0},
		{"a trainer without DP", record, PrivacyPolicy{Budget: budget}, failingTrainer{}, []string{"failingTrainer) does not carry out DP-SGD"}, 0},
		{"site level over budget", site, PrivacyPolicy{SiteBudget: siteBudget}, nil,
			[]string{"the rest of the job (2 site-level releases) would exceed its site-level privacy budget", "site-level epsilon spent 0 of the budget 1"}, 0},
		{"site level without a site budget", site, PrivacyPolicy{Budget: budget}, nil, []string{"has no site-level budget (privacy.site_budget"}, 0},
		{"site level, record level required", site, PrivacyPolicy{Budget: budget, SiteBudget: siteBudget, RequireDP: true}, nil,
			[]string{"this site requires record-level DP"}, 0},
		{"adaptive clip not finite", adaptive, PrivacyPolicy{SiteBudget: siteBudget}, nil, []string{"the task's update clip NaN is not a positive finite number"}, math.NaN()},
		{"adaptive clip negative", adaptive, PrivacyPolicy{SiteBudget: siteBudget}, nil, []string{"the task's update clip -1 is not a positive finite number"}, -1},
		{"fixed clip changed", site, PrivacyPolicy{SiteBudget: &dp.Budget{Level: dp.Site, Epsilon: 50, Delta: 1e-5}}, nil,
			[]string{"the task's update clip 2 differs from the job's 1"}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, cfg := startPeer(t)
			spec := dpJob(t, c.privacy)
			m, err := learning.New(jobspec.ModelSpec(spec), spec.Seed)
			if err != nil {
				t.Fatal(err)
			}
			p.serve(learning.EncodeWeights(m.Weights()), nil)
			cfg.Data, cfg.Privacy, cfg.Trainer = MemoryData{Data: syntheticData(64)}, c.policy, c.trainer
			startAgent(t, cfg)
			<-p.hello
			task := dpTask(spec, "job-x", 1, len(m.Weights()))
			task.UpdateClip = c.clip
			p.out <- &pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Task{Task: task}}
			s := next(t, p, (*pb.AgentMessage).GetStatus, func(s *pb.TaskStatus) bool { return s != nil })
			for _, w := range c.want {
				if s.State != "failed" || !strings.Contains(s.Detail, w) {
					t.Errorf("status %q: %s; want it to contain %q", s.State, s.Detail, w)
				}
			}
		})
	}
}

func TestPrivacyPolicyValidate(t *testing.T) {
	b := func(eps, delta float64) *dp.Budget { return &dp.Budget{Level: dp.Record, Epsilon: eps, Delta: delta} }
	cases := []struct {
		p    PrivacyPolicy
		want string
	}{
		{PrivacyPolicy{}, ""},
		{PrivacyPolicy{Budget: b(8, 1e-5), RequireDP: true}, ""},
		{PrivacyPolicy{RequireDP: true}, "privacy.require_dp is set but privacy.budget is not"},
		{PrivacyPolicy{Budget: b(0, 1e-5)}, "privacy.budget.epsilon is 0"},
		{PrivacyPolicy{Budget: b(math.NaN(), 1e-5)}, "privacy.budget.epsilon is NaN"},
		{PrivacyPolicy{Budget: b(math.Inf(1), 1e-5)}, "privacy.budget.epsilon is +Inf"},
		{PrivacyPolicy{Budget: b(101, 1e-5)}, "privacy.budget.epsilon is 101"},
		{PrivacyPolicy{Budget: b(8, 0)}, "privacy.budget.delta is 0"},
		{PrivacyPolicy{Budget: b(8, 0.01)}, "privacy.budget.delta is 0.01"},
		{PrivacyPolicy{Budget: b(8, math.NaN())}, "privacy.budget.delta is NaN"},
		{PrivacyPolicy{Budget: &dp.Budget{Level: dp.Site, Epsilon: 8, Delta: 1e-5}}, "record-level budget"},
		{PrivacyPolicy{SiteBudget: &dp.Budget{Level: dp.Site, Epsilon: 8, Delta: 1e-5}}, ""},
		{PrivacyPolicy{SiteBudget: &dp.Budget{Level: dp.Record, Epsilon: 8, Delta: 1e-5}}, "privacy.site_budget is for level \"record\": it holds the site-level budget"},
		{PrivacyPolicy{SiteBudget: &dp.Budget{Level: dp.Site, Epsilon: math.Inf(1), Delta: 1e-5}}, "privacy.site_budget.epsilon is +Inf"},
	}
	for _, c := range cases {
		err := c.p.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.p.Budget, err, c.want)
		}
	}
}

// TestReadPrivacyWhileRunning: a running agent holds its state, and
// ReadPrivacy says so instead of waiting for ever.
func TestReadPrivacyWhileRunning(t *testing.T) {
	_, cfg := startPeer(t)
	cfg.Data = MemoryData{}
	cfg.Privacy = PrivacyPolicy{Budget: &dp.Budget{Level: dp.Record, Epsilon: 3, Delta: 1e-6}}
	stop := startAgent(t, cfg)
	if _, err := ReadPrivacy(cfg.StateDir, 100*time.Millisecond); !errors.Is(err, ErrStateLocked) {
		t.Fatalf("while the agent runs: %v", err)
	}
	stop()
	rec, err := ReadPrivacy(cfg.StateDir, time.Second)
	if err != nil || rec.Ledger == nil || rec.Ledger.Budget().Epsilon != 3 || len(rec.Ledger.Entries()) != 0 {
		t.Fatalf("after it stopped: %+v, %v", rec, err)
	}
}
