// Package servetest publishes model versions the way the coordinator does
// (signed manifest, weights, layout, cards, SHA256SUMS), for the tests and
// benchmarks of serving that need a version without running a federation.
package servetest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/concord-fl/concord/coordinator/registry"
	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/jobspec"
	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/privacy/audit"
)

// SpecYAML is a small binary cnn on 28×28 grey images.
const SpecYAML = "name: chest\nrounds: 1\nmin_sites: 1\nmodel: {base_width: 2}\nprivacy: {secure_aggregation: none}\n" +
	"pipeline: {width: 28, height: 28, channels: 1, normalise: percentile:0.5:99.5}\n"

// Key is a coordinator key made for one test run.
func Key() (*audit.Key, *audit.Trust, error) {
	k, err := audit.GenerateKey(nil, "coordinator")
	if err != nil {
		return nil, nil, err
	}
	tr, err := audit.NewTrust("concord/audit", []string{k.Verifier()}, nil, nil, 0)
	return k, tr, err
}

// Version describes one version to publish.
type Version struct {
	Version   string
	SpecYAML  string // default SpecYAML
	Threshold float64
	Created   time.Time
	Rejected  bool // gate rejected, status rejected
	Seed      int64
}

// Publish writes version v under modelsDir/v.Version, signed with key.
func Publish(modelsDir string, key *audit.Key, v Version) (registry.Manifest, error) {
	y := v.SpecYAML
	if y == "" {
		y = SpecYAML
	}
	spec, err := jobspec.Parse([]byte(y))
	if err != nil {
		return registry.Manifest{}, err
	}
	net, err := learning.New(jobspec.ModelSpec(spec), spec.GetSeed()+v.Seed)
	if err != nil {
		return registry.Manifest{}, err
	}
	weights := learning.EncodeWeights(net.Weights())
	layout := net.Layout().JSON()
	specJSON, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(spec)
	if err != nil {
		return registry.Manifest{}, err
	}
	ws := sha256.Sum256(weights)
	ss := sha256.Sum256(specJSON)
	created := v.Created
	if created.IsZero() {
		created = time.Now().UTC().Truncate(time.Second)
	}
	th := v.Threshold
	if th == 0 {
		th = 0.5
	}
	m := registry.Manifest{Format: registry.ManifestFormat, Version: v.Version, Status: registry.StatusPublished, Name: spec.GetName(), JobID: "1",
		Purpose: "Flag chest X-rays for a radiologist's review", Created: created, Coordinator: "test", Params: len(net.Weights()),
		LayoutHash: net.Layout().Hash(), WeightsSHA256: hex.EncodeToString(ws[:]), PipelineHash: jobspec.PipelineConfig(spec).Hash(),
		SpecSHA256: hex.EncodeToString(ss[:]), Spec: specJSON,
		Rounds:        []registry.Round{{Round: 1, Contributors: []string{"st-marys"}, Samples: 100}},
		TrainingSites: []string{"st-marys"}, ValidationSites: []string{"north"}, Records: map[string]uint64{"st-marys": 100},
		Validation: []registry.Validation{{Site: "north", ModelRole: registry.RoleGlobal, Round: 1, Receipt: []byte("signed"),
			Assessment: evaluation.Assessment{Task: "binary", Examples: 100, Positives: 40, Threshold: th,
				Metrics: map[string]evaluation.Estimate{"auc": {Value: 0.9, Lower: 0.85, Upper: 0.95}}}}},
		Gate: registry.Gate{State: registry.GatePassed}}
	if v.Rejected {
		m.Status, m.Gate = registry.StatusRejected, registry.Gate{State: registry.GateRejected, Reasons: []string{"site north: auc 0.700 < min_auc 0.85"}}
	}
	signed, err := registry.Sign(m, key)
	if err != nil {
		return m, fmt.Errorf("sign: %w", err)
	}
	if err := registry.WriteDir(filepath.Join(modelsDir, v.Version), signed, weights, layout); err != nil {
		return m, err
	}
	m.DeviceUID = registry.DeviceUID(m.WeightsSHA256)
	return m, nil
}
