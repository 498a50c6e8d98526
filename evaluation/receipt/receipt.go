// Package receipt owns the signed validation receipt a validation site
// returns for a model: metrics only, under the site's own signature.
package receipt

import (
	"crypto"
	"errors"
	"time"

	"github.com/concord-fl/concord/evaluation"
)

// Receipt is what a validation site states about one model it scored.
type Receipt struct {
	Site         string                `json:"site"`
	JobID        string                `json:"job_id"`
	Round        int                   `json:"round"`
	ModelRole    string                `json:"model_role"` // global | site:NAME
	ModelSHA256  string                `json:"model_sha256"`
	DataManifest string                `json:"data_manifest"` // hash of the site's data manifest
	PipelineHash string                `json:"pipeline_hash"`
	Assessment   evaluation.Assessment `json:"assessment"`
	Time         time.Time             `json:"time"`
}

// ErrReceipt is returned (wrapped) for a receipt that is malformed or
// whose signature does not verify.
var ErrReceipt = errors.New("validation receipt does not verify")

// Sign signs r with the site's key.
func Sign(r Receipt, key crypto.Signer) ([]byte, error) { return nil, ErrReceipt }

// Verify checks signed against the site's public key and returns the receipt.
func Verify(signed []byte, pub crypto.PublicKey) (Receipt, error) { return Receipt{}, ErrReceipt }
