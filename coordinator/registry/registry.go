// Package registry owns the model registry's artefacts: the signed version
// manifest (lineage, hashes, validation receipts, gate decision), the
// device UID derived from the weights, the promotion gates, the artefact
// directory and its offline verification, diffs and model cards.
package registry

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/privacy/audit"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Statuses of a version.
const (
	StatusPublished = "published"
	StatusRejected  = "rejected"
)

// Manifest is everything that made one model version, signed by the
// coordinator.
type Manifest struct {
	Format            int                `json:"format"`
	Version           string             `json:"version"`
	Status            string             `json:"status"`
	Name              string             `json:"name"` // the job's name
	JobID             string             `json:"job_id"`
	Purpose           string             `json:"purpose,omitempty"`
	LegalBasis        string             `json:"legal_basis,omitempty"`
	Created           time.Time          `json:"created"`
	Coordinator       string             `json:"coordinator"` // the coordinator's version
	Parent            string             `json:"parent,omitempty"`
	Params            int                `json:"params"`
	LayoutHash        string             `json:"layout_hash"`
	WeightsSHA256     string             `json:"weights_sha256"`
	DeviceUID         string             `json:"device_uid"`
	PipelineHash      string             `json:"pipeline_hash"`
	SpecSHA256        string             `json:"spec_sha256"`
	Spec              json.RawMessage    `json:"spec"` // protojson of the job spec
	Rounds            []Round            `json:"rounds"`
	TrainingSites     []string           `json:"training_sites"`
	ValidationSites   []string           `json:"validation_sites,omitempty"`
	Records           map[string]uint64  `json:"records,omitempty"` // examples per training site (counts only)
	Privacy           *Privacy           `json:"privacy,omitempty"`
	SecureAggregation *SecureAggregation `json:"secure_aggregation,omitempty"`
	Validation        []Validation       `json:"validation,omitempty"`
	Gate              Gate               `json:"gate"`
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

var errContract = errors.New("registry: not built yet")

// DeviceUID derives the version's DICOM-style UID (2.25.<decimal>) from
// the weights' SHA-256 (hex).
func DeviceUID(weightsSHA256 string) string { return "" }

// Decide applies the job's gates to the validation results of the final
// model; prev is the currently published version of the same name (nil:
// none). Every validation site must have a result.
func Decide(gates *pb.ValidationSpec, validationSites []string, results []Validation, prev *Manifest) Gate {
	return Gate{State: StatusRejected, Reasons: []string{errContract.Error()}}
}

// Sign signs m with the coordinator's key.
func Sign(m Manifest, key *audit.Key) ([]byte, error) { return nil, errContract }

// Open verifies signed against the trusted coordinator keys and returns it.
func Open(signed []byte, trust *audit.Trust) (Manifest, error) { return Manifest{}, errContract }

// WriteDir writes a version's artefacts to dir.
func WriteDir(dir string, signed, weights, layout []byte) error { return errContract }
