package siteagent

import (
	"context"
	"crypto/ed25519"
	cryptorand "crypto/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/concord-fl/concord/extrainer"
	"github.com/concord-fl/concord/internal/testenv"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/privacy/dp"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// customJob is the README's example custom job (deploy/examples/custom),
// trained by one site in the clear so the test can read the update.
func customJob(t *testing.T) *pb.JobSpec {
	t.Helper()
	s, err := jobspec.ParseFile(filepath.Join(testenv.RepoRoot(), "deploy", "examples", "custom", "job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s.MinSites, s.Privacy.SecureAggregation = 1, "none"
	return s
}

// TestCustomModelNeedsApproval: a site agent hands a custom PyTorch module
// to its trainer (a real trainer.py, on the CPU) only once the hospital
// approved its hash and the site accepts CPU training; otherwise, and for a
// module changed after it was pinned, it refuses the task with what to do;
// an approved module trains with and without DP-SGD; a validation task is
// refused; and the trainer refuses parameters that do not match the job's
// layout. Costs about 5 s (trainer start-up, two rounds on 64 28×28 images).
func TestCustomModelNeedsApproval(t *testing.T) {
	addr := startPyTrainer(t, t.TempDir())
	spec := customJob(t)
	sha := spec.Model.CodeSha256
	m, err := learning.New(jobspec.ModelSpec(spec), spec.Seed)
	if err != nil {
		t.Fatal(err)
	}
	global := m.Weights()
	withDP := proto.Clone(spec).(*pb.JobSpec)
	withDP.Privacy.Level, withDP.Privacy.ExampleClip, withDP.Privacy.Delta, withDP.Privacy.NoiseMultiplier = "record", 1, 1e-5, 1
	withDP.Rounds = 1 // within the site's budget
	changed := proto.Clone(spec).(*pb.JobSpec)
	changed.Model.Code = append(changed.Model.Code, []byte("\nimport os  # edited after the pin\n")...)

	cases := []struct {
		name     string
		spec     *pb.JobSpec
		approve  bool
		external bool
		allowCPU bool
		want     string // "" = trains and uploads
	}{
		{"not approved", spec, false, true, true, "has not approved: review the file and run `site-agent models approve-code " + sha + "`"},
		{"changed file", changed, true, true, true, "the file changed since it was pinned"},
		{"CPU trainer", spec, true, true, false, "custom PyTorch models run on GPU trainer nodes; this site trains on CPU"},
		{"built-in trainer", spec, true, false, true, "this site trains on CPU with the built-in trainer"},
		{"approved", spec, true, true, true, ""},
		{"approved, DP-SGD", withDP, true, true, true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, cfg := startPeer(t)
			cfg.Data = MemoryData{Data: syntheticData(64)}
			cfg.Privacy = PrivacyPolicy{Budget: &dp.Budget{Level: dp.Record, Epsilon: 8, Delta: 1e-5}}
			if c.external {
				tr, err := NewExternalTrainer(context.Background(), extrainer.Config{Address: addr})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { tr.Close() })
				tr.AllowCPUCustom = c.allowCPU
				cfg.Trainer = tr
			}
			if c.approve {
				if err := ApproveCode(cfg.StateDir, sha, "dr-test", time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			_, coord, _ := ed25519.GenerateKey(cryptorand.Reader)
			got := make(chan received, 1)
			p.serve(learning.EncodeWeights(global), uploadServer(coord, 0, nil, got))
			startAgent(t, cfg)
			<-p.hello
			p.out <- &pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Task{Task: dpTask(c.spec, "job-c", 1, len(global))}}
			if c.want != "" {
				s := next(t, p, (*pb.AgentMessage).GetStatus, func(s *pb.TaskStatus) bool { return s != nil })
				if s.State != "failed" || !strings.Contains(s.Detail, c.want) {
					t.Fatalf("status %q: %s; want it to contain %q", s.State, s.Detail, c.want)
				}
				return
			}
			deadline := time.After(90 * time.Second)
			for {
				select {
				case r := <-got:
					update := learning.DecodeWeightsInto(nil, r.data)
					moved := false
					for i, v := range update {
						moved = moved || v != global[i]
					}
					if len(update) != len(global) || !moved {
						t.Fatalf("update of %d values (want %d), differs from the global model: %v", len(update), len(global), moved)
					}
					return
				case m := <-p.in:
					if s := m.GetStatus(); s != nil && s.State == "failed" {
						t.Fatalf("task failed: %s", s.Detail)
					}
				case <-deadline:
					t.Fatal("no upload")
				}
			}
		})
	}

	t.Run("validation", func(t *testing.T) {
		p, cfg := startPeer(t)
		cfg.Data = MemoryData{Data: syntheticData(16)}
		if err := ApproveCode(cfg.StateDir, sha, "dr-test", time.Now()); err != nil {
			t.Fatal(err)
		}
		blob := learning.EncodeWeights(global)
		p.serve(blob, nil)
		startAgent(t, cfg)
		<-p.hello
		p.out <- &pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Task{Task: validateTask(spec, m, blob)}}
		s := next(t, p, (*pb.AgentMessage).GetStatus, func(s *pb.TaskStatus) bool { return s != nil })
		if s.State != "failed" || !strings.Contains(s.Detail, "site agents do not score") {
			t.Fatalf("validation of a custom model: %q: %s", s.State, s.Detail)
		}
	})

	t.Run("revoked", func(t *testing.T) {
		dir := t.TempDir()
		if err := ApproveCode(dir, sha, "dr-test", time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := RevokeCode(dir, sha, "dr-test", time.Now()); err != nil {
			t.Fatal(err)
		}
		if ok, err := codeApproved(dir, sha); ok || err != nil {
			t.Fatalf("approved after revocation: %v, %v", ok, err)
		}
		aps, log, err := CodeApprovals(dir)
		if err != nil || len(aps) != 0 || len(log) != 2 || log[1].Event != "revoke-code" || log[1].Prev != log[0].Hash {
			t.Fatalf("approvals %v, log %+v, %v", aps, log, err)
		}
		if err := ApproveCode(dir, "not-a-hash", "dr-test", time.Now()); err == nil {
			t.Fatal("approved a string that is not a SHA-256")
		}
	})

	t.Run("layout mismatch", func(t *testing.T) {
		tr, err := NewExternalTrainer(context.Background(), extrainer.Config{Address: addr})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		bad := proto.Clone(spec).(*pb.JobSpec)
		l := bad.Model.CustomLayout
		l[0], l[1] = l[1], l[0] // the same tensors in another order
		_, err = tr.Train(t.Context(), TrainRequest{JobID: "job-c", Round: 1, Spec: bad, Global: global, Data: syntheticData(16), Seed: 1})
		if err == nil || !strings.Contains(err.Error(), "parameter 1: the module has conv.weight [8, 1, 3, 3], the job's model.layout ('conv.bias', [8])") {
			t.Fatalf("trainer given a layout the module does not have: %v", err)
		}
	})
}
