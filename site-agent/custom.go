package siteagent

import (
	"context"
	"errors"
	"fmt"

	"github.com/concord-fl/concord/jobspec"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Custom models (model.arch custom) ship a consortium's PyTorch module with
// the job. The agent hands it to its external trainer only when, in order:
// the bytes hash to the job's pin (the coordinator checked too, but the
// agent trusts only its own check), this hospital approved that exact hash
// (codeapproval.go), and the trainer runs custom modules on a GPU (or the
// site allowed CPU with trainer.allow_cpu_custom). Each refusal is
// permanent and reaches the coordinator with what to do, before the global
// model is downloaded. The built-in trainer never runs consortium code, and
// validation, which the agent runs on its own CPU, is refused too.

// customCodeTrainer is a Trainer that can run custom modules.
type customCodeTrainer interface {
	// customCodeReady says why the trainer cannot run a custom module now:
	// a permanent error for what the site decided, another for a trainer
	// that cannot be reached.
	customCodeReady(ctx context.Context) error
}

// customCodeRefuses returns why this site does not train the task's
// custom model, or nil (also for every other arch).
func (a *Agent) customCodeRefuses(ctx context.Context, t *pb.Task) error {
	m := t.Spec.GetModel()
	if m.GetArch() != jobspec.ArchCustom {
		return nil
	}
	if err := jobspec.CheckCode(m); err != nil {
		return permanentf("job %s: %w", t.JobId, err)
	}
	sha := m.GetCodeSha256()
	ok, err := codeApproved(a.cfg.StateDir, sha)
	if err != nil {
		return fmt.Errorf("read the site's code approvals: %w", err)
	}
	if !ok {
		a.log.Warn("custom model code not approved", "job", t.JobId, "sha256", sha)
		return permanentf("job %s ships custom model code sha256 %s that this site has not approved: review the file and run "+
			"`site-agent models approve-code %s`", t.JobId, sha, sha)
	}
	ct, ok := a.cfg.Trainer.(customCodeTrainer)
	if !ok {
		return permanentf("job %s trains a custom PyTorch model, which runs on GPU trainer nodes; this site trains on CPU with the built-in trainer", t.JobId)
	}
	if err := ct.customCodeReady(ctx); err != nil {
		if errors.Is(err, ErrPermanent) {
			return permanentf("job %s: %w", t.JobId, err)
		}
		return err
	}
	a.log.Info("custom model code approved; handing it to the trainer", "job", t.JobId, "round", t.Round, "sha256", sha)
	return nil
}

// customValidationRefuses refuses to score a custom model: the agent scores
// with its own CPU code, which never runs consortium modules.
func customValidationRefuses(t *pb.Task) error {
	if t.Spec.GetModel().GetArch() != jobspec.ArchCustom {
		return nil
	}
	return permanentf("job %s trains a custom PyTorch model, which site agents do not score: leave this site out of validation_sites", t.JobId)
}

// customCodeReady implements customCodeTrainer.
func (t *ExternalTrainer) customCodeReady(ctx context.Context) error {
	info, err := t.c.Info(ctx)
	if err != nil {
		return err // the trainer may be restarting: try again
	}
	switch {
	case !info.CustomCode:
		return permanentf("this site's external trainer (version %s) does not run custom models: update deploy/trainer, and run it as one process, not under torchrun",
			bounded(info.Version, maxVersion))
	case info.Device == "cpu" && !t.AllowCPUCustom:
		return permanentf("custom PyTorch models run on GPU trainer nodes; this site trains on CPU (its trainer reports device cpu). " +
			"A site that accepts CPU training sets trainer.allow_cpu_custom: true in agent.yaml")
	}
	return nil
}
