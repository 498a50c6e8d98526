package siteagent

import (
	"errors"
	"strings"
	"testing"

	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// TestModelLimits: a site whose limits the job's model exceeds refuses the
// task at once, before downloading anything, naming the model's figures,
// its own and the agent.yaml keys; at limits equal to the model's cost the
// task reaches the trainer.
func TestModelLimits(t *testing.T) {
	spec := dpJob(t, "")
	cost, err := jobspec.ModelCost(spec)
	if err != nil {
		t.Fatal(err)
	}
	exact := learning.Limits{MaxParams: cost.Params, MaxTrainingBytes: cost.TrainingBytes(), MaxFLOPsPerExample: cost.FLOPsPerExample}
	for _, c := range []struct {
		name   string
		limits learning.Limits
		want   []string
	}{
		{"memory", learning.Limits{MaxTrainingBytes: 1 << 20}, []string{"site st-marys refuses job job-x: its machine cannot hold model cnn: " +
			"training at batch size 16 needs ", "over the limit of 1.0 MiB (limits.max_training_memory in agent.yaml); make the model or training.batch_size smaller"}},
		{"params and FLOPs", learning.Limits{MaxParams: 100, MaxFLOPsPerExample: 1000}, []string{
			"the model has 418 parameters, over the limit of 100 (limits.max_params in agent.yaml); one example's forward pass takes ",
			"over the limit of 1e-06 (limits.max_gflops_per_example in agent.yaml)"}},
		{"at the limits", exact, []string{"local training: trainer out of order"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, cfg := startPeer(t)
			calls := make(chan struct{}, 8)
			cfg.Data, cfg.ModelLimits = MemoryData{Data: syntheticData(32)}, c.limits
			cfg.Trainer = failingTrainer{err: permanent(errors.New("trainer out of order")), calls: calls}
			p.serve(learning.EncodeWeights(make([]float32, cost.Params)), nil)
			startAgent(t, cfg)
			<-p.hello
			p.out <- &pb.CoordinatorMessage{Msg: &pb.CoordinatorMessage_Task{Task: dpTask(spec, "job-x", 1, int(cost.Params))}}
			s := next(t, p, (*pb.AgentMessage).GetStatus, func(s *pb.TaskStatus) bool { return s != nil && s.State == "failed" })
			for _, w := range c.want {
				if !strings.Contains(s.Detail, w) {
					t.Errorf("status %s: %s; want it to contain %q", s.State, s.Detail, w)
				}
			}
			if trained := len(calls) > 0; trained != (c.name == "at the limits") {
				t.Errorf("the trainer ran: %v", trained)
			}
		})
	}
}
