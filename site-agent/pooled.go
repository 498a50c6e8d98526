package siteagent

import (
	"context"
	"fmt"

	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Pooled subgroup counts. When a secure job's final VALIDATE task names a
// pool round, the site also encrypts its unsuppressed confusion counts
// per subgroup (evaluation.SubgroupCounts) with its key share, for that
// round, and uploads them bound to the task's nonce. The coordinator adds
// every validation site's ciphertexts and a committee of key holders
// decrypts only the sum: these counts never leave the site in the clear.

// uploadPooled scores the model again for the scores the counts need,
// encrypts the counts and uploads them.
func (a *Agent) uploadPooled(ctx context.Context, t *pb.Task, m *learning.Model, data learning.Dataset) error {
	if m.Spec().Classes != 2 || m.Segments() {
		return permanentf("only a binary classifier's subgroup counts are pooled")
	}
	out, err := m.Predict(data)
	if err != nil {
		return permanentf("run the model on the site's data: %w", err)
	}
	scores := make([]float64, data.N)
	for i := range scores {
		scores[i] = clamp01(out[2*i+1])
	}
	threshold := jobspec.AssessOptions(t.Spec).Threshold
	if threshold == 0 {
		threshold = 0.5
	}
	counts, err := evaluation.SubgroupCounts(scores, data.Y, data.Groups, threshold)
	if err != nil {
		return permanent(err)
	}
	// The submission is keyed by the pool round: it cannot be confused
	// with this task's receipt or with a training round's upload.
	up := &pb.Task{TaskId: t.TaskId, Kind: t.Kind, JobId: t.JobId, Round: t.PoolRound, Nonce: t.Nonce}
	return a.sendOnce(ctx, up, pb.UploadKind_UPLOAD_KIND_VALIDATION_COUNTS, nil, func() ([][]byte, error) {
		p, err := a.loadParty(t.JobId)
		if err != nil {
			return nil, fmt.Errorf("this site holds no key for job %s: %w", t.JobId, err)
		}
		if err := a.ensureShares(ctx, t, p); err != nil {
			return nil, err
		}
		cts, err := p.Encrypt(uint64(t.PoolRound), counts, 1)
		if err != nil {
			return nil, err
		}
		// The party records what it encrypted for the round: persist it
		// before anything leaves.
		return cts, a.saveParty(t.JobId, p)
	})
}
