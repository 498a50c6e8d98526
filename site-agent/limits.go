package siteagent

import (
	"strings"

	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// limitKeys are the agent.yaml keys of learning.Limits' fields, by
// learning.Excess.Limit.
var limitKeys = map[string]string{
	"params":            "limits.max_params",
	"training_bytes":    "limits.max_training_memory",
	"flops_per_example": "limits.max_gflops_per_example",
}

// modelLimitsRefuse refuses a training task whose model asks more of this
// site's machine than its limits allow (Config.ModelLimits), before
// anything is downloaded: the reason, with the model's figures and the
// site's, reaches the coordinator and the job's admin.
func (a *Agent) modelLimitsRefuse(t *pb.Task) error {
	if a.cfg.ModelLimits == (learning.Limits{}) {
		return nil // nothing to check: the coordinator has sized the model against its own limits
	}
	c, err := jobspec.ModelCost(t.Spec)
	if err != nil {
		return permanentf("job %s: the model cannot be sized: %w", t.JobId, err)
	}
	ex := a.cfg.ModelLimits.Exceeded(c)
	if len(ex) == 0 {
		return nil
	}
	why := make([]string, len(ex))
	for i, x := range ex {
		why[i] = x.String() + " (" + limitKeys[x.Limit] + " in agent.yaml)"
	}
	return permanentf("site %s refuses job %s: its machine cannot hold model %s: %s; make the model or training.batch_size smaller, "+
		"or leave this site out of the job", a.siteName(), t.JobId, t.Spec.GetModel().GetArch(), strings.Join(why, "; "))
}
