// Package registry owns the model registry's artefacts: the signed version
// manifest (lineage, hashes, validation receipts, gate decision), the
// device UID derived from the weights, the promotion gates, the artefact
// directory and its offline verification, diffs and model cards.
//
// The publisher's duties, in order:
//  1. fill a Manifest (WeightsSHA256 and LayoutHash of the exact bytes it
//     will serve; DeviceUID may be left empty, Sign derives it);
//  2. set Gate from Decide, with the job's gates, its validation sites and
//     the verified receipts of the final model;
//  3. Sign it with the coordinator's audit log key and keep the signed
//     bytes as they are: they, not a re-encoding, are what verifies;
//  4. WriteDir the signed manifest with the weights and layout.
//
// A reader calls Open (the manifest alone) or VerifyDir (a directory) with
// the consortium's trust file; neither needs the network.
package registry

import (
	"encoding/json"
	"time"

	"github.com/concord-fl/concord/evaluation"
)

// Statuses of a version.
const (
	StatusPublished = "published"
	StatusRejected  = "rejected"
)

// Gate states.
const (
	GatePassed   = "passed"
	GateRejected = StatusRejected
)

// ManifestFormat is Manifest.Format of this package's manifests.
const ManifestFormat = 1

// RoleGlobal is Validation.ModelRole of the federated (global) model; only
// its results count for the gates.
const RoleGlobal = "global"

// Manifest is everything that made one model version, signed by the
// coordinator.
type Manifest struct {
	Format          int               `json:"format"`
	Version         string            `json:"version"`
	Status          string            `json:"status"`
	Name            string            `json:"name"` // the job's name
	JobID           string            `json:"job_id"`
	Purpose         string            `json:"purpose,omitempty"`
	LegalBasis      string            `json:"legal_basis,omitempty"`
	Created         time.Time         `json:"created"`
	Coordinator     string            `json:"coordinator"` // the coordinator's version
	Parent          string            `json:"parent,omitempty"`
	Params          int               `json:"params"`
	LayoutHash      string            `json:"layout_hash"`
	WeightsSHA256   string            `json:"weights_sha256"`
	DeviceUID       string            `json:"device_uid"`
	PipelineHash    string            `json:"pipeline_hash"`
	SpecSHA256      string            `json:"spec_sha256"`
	Spec            json.RawMessage   `json:"spec"` // protojson of the job spec
	Rounds          []Round           `json:"rounds"`
	TrainingSites   []string          `json:"training_sites"`
	ValidationSites []string          `json:"validation_sites,omitempty"`
	Records         map[string]uint64 `json:"records,omitempty"` // examples per training site (counts only)
	// Feedback is the labelled corrections each training site reported
	// holding when the version was built (counts only; trained on from the
	// next job).
	Feedback          map[string]uint64  `json:"feedback,omitempty"`
	Privacy           *Privacy           `json:"privacy,omitempty"`
	SecureAggregation *SecureAggregation `json:"secure_aggregation,omitempty"`
	Validation        []Validation       `json:"validation,omitempty"`
	// Pooled are the per-subgroup counts summed over the validation sites
	// under secure aggregation (absent without it).
	Pooled *Pooled `json:"pooled_subgroups,omitempty"`
	Gate   Gate    `json:"gate"`
}

// Pooled is the final model's per-subgroup confusion counts summed over
// validation sites under encryption: only the sum was ever decrypted.
type Pooled struct {
	State  string                      `json:"state"` // decrypted | unavailable
	Sites  []string                    `json:"sites,omitempty"`
	Reason string                      `json:"reason,omitempty"`
	Note   string                      `json:"note,omitempty"`
	Cells  []evaluation.PooledSubgroup `json:"cells,omitempty"`
}

// Round is one training round in the lineage.
type Round struct {
	Round        int      `json:"round"`
	Contributors []string `json:"contributors"`
	Samples      uint64   `json:"samples"`
}

// Privacy is the differential privacy a version was trained under.
type Privacy struct {
	Level           string             `json:"level"`
	NoiseMultiplier float64            `json:"noise_multiplier,omitempty"`
	Delta           float64            `json:"delta,omitempty"`
	EpsilonBySite   map[string]float64 `json:"epsilon_by_site,omitempty"`
}

// SecureAggregation is the encryption updates were aggregated under.
type SecureAggregation struct {
	Scheme    string `json:"scheme"` // mhe | none
	Params    string `json:"params,omitempty"`
	Threshold int    `json:"threshold,omitempty"`
	Parties   int    `json:"parties,omitempty"`
}

// Validation is one validation site's signed result for the version.
type Validation struct {
	Site       string                `json:"site"`
	ModelRole  string                `json:"model_role"`
	Round      int                   `json:"round"`
	Receipt    []byte                `json:"receipt"` // the site's signed receipt
	Assessment evaluation.Assessment `json:"assessment"`
}

// Gate is the promotion decision.
type Gate struct {
	State   string   `json:"state"` // passed | rejected
	Reasons []string `json:"reasons,omitempty"`
}
