package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/concord-fl/concord/coordinator/registry"
	"github.com/concord-fl/concord/privacy/audit"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// summariseValidation copies the validation sites' signed figures and the
// gate's decision from the job into the summary.
func summariseValidation(final *pb.Job, sum *Summary) {
	if g := final.Gate; g != nil {
		sum.Gate = Gate{State: g.State, Reasons: g.Reasons}
	} else if final.ModelVersion != "" {
		sum.Gate = Gate{State: "passed"}
	}
	if m := final.CrossSite; m != nil {
		for _, c := range m.Cells {
			if auc, ok := c.Metrics["auc"]; ok {
				if sum.CrossSite == nil {
					sum.CrossSite = map[string]map[string]float64{}
				}
				if sum.CrossSite[c.ModelRole] == nil {
					sum.CrossSite[c.ModelRole] = map[string]float64{}
				}
				sum.CrossSite[c.ModelRole][c.Site] = auc
			}
		}
	}
	byRound := map[int]*RoundMetrics{}
	for i := range sum.PerRound {
		byRound[sum.PerRound[i].Round] = &sum.PerRound[i]
	}
	for _, r := range final.Rounds {
		var total float64
		var n int
		for _, v := range r.Validation {
			auc, ok := v.Metrics["auc"]
			if !ok {
				continue
			}
			total += auc
			n++
			if sum.Validation == nil {
				sum.Validation = map[string]SiteValidation{}
			}
			sv := sum.Validation[v.Site]
			if sv.Rounds == nil {
				sv.Rounds = map[int]float64{}
			}
			sv.Rounds[int(r.Round)] = auc
			sv.Examples, sv.Metrics, sv.Lower, sv.Upper = int(v.Examples), v.Metrics, v.Lower, v.Upper
			sum.Validation[v.Site] = sv
		}
		if pr := byRound[int(r.Round)]; pr != nil && n > 0 {
			pr.ValidationAUC = total / float64(n)
		}
	}
}

// writeModelCard fetches the job's registered version (published or
// rejected) with its signed manifest and writes its registry directory,
// model card included, to out/model-card.
func writeModelCard(ctx context.Context, fed *Federation, out string, final *pb.Job, sum *Summary) error {
	version := final.ModelVersion
	if version == "" && final.Gate != nil {
		version = final.Gate.Version
	}
	if version == "" {
		return nil
	}
	mv, err := fed.Admin.GetModelInfo(ctx, &pb.GetModelRequest{Version: version})
	if err != nil {
		return fmt.Errorf("model %s: %w", version, err)
	}
	stream, err := fed.Admin.GetModel(ctx, &pb.GetModelRequest{Version: version})
	if err != nil {
		return err
	}
	var weights, layout []byte
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("fetch model %s: %w", version, err)
		}
		if m.Layout != nil {
			layout = m.Layout
		}
		weights = append(weights, m.Chunk.GetData()...)
	}
	dir := filepath.Join(out, "model-card")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := registry.WriteDir(dir, mv.Manifest, weights, layout); err != nil {
		return fmt.Errorf("write the registry directory of %s: %w", version, err)
	}
	// The consortium's trust file, as `concordctl pki` keeps it in a real
	// CA folder: what `concordctl models verify --trust` checks against.
	key, err := audit.ReadKeyFile(filepath.Join(filepath.Dir(fed.StatePath()), "audit-key.pem"))
	if err != nil {
		return err
	}
	trust, err := audit.NewTrust(auditOrigin, []string{key.Verifier()}, nil, nil, 0)
	if err != nil {
		return err
	}
	trustFile := filepath.Join(out, "audit-trust.txt")
	if err := os.WriteFile(trustFile, trust.Marshal(), 0o644); err != nil {
		return err
	}
	if _, err := registry.VerifyDir(dir, trust); err != nil {
		return fmt.Errorf("the registry directory of %s does not verify: %w", version, err)
	}
	sum.Files = append(sum.Files, "model-card/card.html", "model-card/card.json", "model-card/manifest.json", "audit-trust.txt")
	return nil
}
