package registry

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"testing"
	"time"

	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/learning"
	"github.com/concord-fl/concord/privacy/audit"
)

func mustKey(t testing.TB, name string) *audit.Key {
	t.Helper()
	k, err := audit.GenerateKey(nil, name)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustTrust(t testing.TB, keys ...*audit.Key) *audit.Trust {
	t.Helper()
	var logs []string
	for _, k := range keys {
		logs = append(logs, k.Verifier())
	}
	tr, err := audit.NewTrust("concord/audit", logs, nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// testLayout is a small two-tensor layout.
func testLayout() learning.Layout {
	return learning.Layout{Version: "test/1", Arch: "cnn", Input: []int{1, 28, 28}, Classes: 2, Width: 4,
		Params: []learning.LayoutEntry{{Name: "conv.weight", Shape: []int{2, 3}, Offset: 0, Size: 6}, {Name: "fc.bias", Shape: []int{2}, Offset: 6, Size: 2}},
		Total:  8}
}

func f32bytes(w []float32) []byte {
	b := make([]byte, 4*len(w))
	for i, v := range w {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func est(v float64) evaluation.Estimate {
	return evaluation.Estimate{Value: v, Lower: v - 0.05, Upper: v + 0.05}
}

func assessment(auc float64) evaluation.Assessment {
	return evaluation.Assessment{Task: "binary", Examples: 200, Positives: 60, Threshold: 0.5,
		Metrics: map[string]evaluation.Estimate{"auc": est(auc), "sensitivity": est(0.8), "specificity": est(0.9)},
		ROC:     []evaluation.CurvePoint{{FPR: 0, TPR: 0, Threshold: 1}, {FPR: 0.1, TPR: 0.7, Threshold: 0.6}, {FPR: 1, TPR: 1, Threshold: 0}},
		Calibration: []evaluation.CalibrationBin{{Lower: 0, Upper: 0.5, Count: 120, MeanPredicted: 0.2, ObservedRate: 0.15},
			{Lower: 0.5, Upper: 1, Count: 80, MeanPredicted: 0.75, ObservedRate: 0.7}},
		Subgroups: []evaluation.Subgroup{
			{Field: "sex", Value: "F", Examples: 100, Metrics: map[string]evaluation.Estimate{"auc": est(auc - 0.02)}},
			{Field: "sex", Value: "M", Examples: 95, Metrics: map[string]evaluation.Estimate{"auc": est(auc + 0.02)}},
			{Field: "age", Value: "90+", Suppressed: true}}}
}

// testManifest is a version whose weights are w, laid out as testLayout.
func testManifest(version string, w []float32) Manifest {
	sum := sha256.Sum256(f32bytes(w))
	l := testLayout()
	return Manifest{Version: version, Status: StatusPublished, Name: "pneumonia", JobID: "7",
		Purpose: "Flag chest X-rays <with> likely pneumonia for a radiologist's review", LegalBasis: "GDPR Art. 9(2)(j)",
		Created: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC), Coordinator: "0.9.0", Params: l.Total,
		LayoutHash: l.Hash(), WeightsSHA256: hex.EncodeToString(sum[:]), PipelineHash: "ab12", SpecSHA256: "cd34",
		Spec:          []byte(`{"name":"pneumonia","rounds":3}`),
		Rounds:        []Round{{Round: 1, Contributors: []string{"city-general", "st-marys"}, Samples: 320}, {Round: 2, Contributors: []string{"city-general", "st-marys"}, Samples: 320}},
		TrainingSites: []string{"city-general", "st-marys"}, ValidationSites: []string{"north"},
		Records:           map[string]uint64{"city-general": 160, "st-marys": 160},
		Privacy:           &Privacy{Level: "standard", NoiseMultiplier: 1.1, Delta: 1e-5, EpsilonBySite: map[string]float64{"city-general": 2.5, "st-marys": 2.5}},
		SecureAggregation: &SecureAggregation{Scheme: "mhe", Params: "PN14", Threshold: 2, Parties: 2},
		Validation:        []Validation{{Site: "north", ModelRole: RoleGlobal, Round: 2, Receipt: []byte("signed"), Assessment: assessment(0.86)}},
		Gate:              Gate{State: GatePassed}}
}

// testKey is the coordinator's key of the tests that write directories.
var testKey, _ = audit.GenerateKey(nil, "coordinator")
