// Package receipt owns the signed validation receipt a validation site
// returns for a model: metrics only, under the site's own signature.
//
// The envelope is JSON {format, receipt, alg, signature}, like a privacy
// receipt's; the signature covers a context string that no other statement
// uses followed by the receipt's bytes exactly as they appear in the
// envelope, and both the envelope and the receipt must be in canonical
// form, so that no change to a stored or relayed receipt goes unnoticed.
package receipt

import (
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/concord-fl/concord/evaluation"
	"github.com/concord-fl/concord/internal/signenv"
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

// Format is the envelope's format number.
const Format = 1

// MaxSize bounds a signed receipt: a receipt holds metrics, a bounded ROC
// curve and a few subgroups, far below it; anything larger is refused
// before it is parsed.
const MaxSize = 1 << 20

// context separates validation receipts from every other statement a
// site's key signs (privacy receipts, TLS handshakes).
const context = "concord validation receipt v1\n"

type envelope struct {
	Format    int             `json:"format"`
	Receipt   json.RawMessage `json:"receipt"`
	Alg       string          `json:"alg"`
	Signature []byte          `json:"signature"`
}

// Sign signs r with the site's key (its TLS key: ECDSA P-256, or Ed25519)
// and returns the envelope.
func Sign(r Receipt, key crypto.Signer) ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("sign validation receipt: %w", err)
	}
	r.Time = r.Time.UTC()
	body, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("sign validation receipt: %w", err)
	}
	alg, sig, err := signenv.Sign(key, context, body)
	if err != nil {
		return nil, fmt.Errorf("sign validation receipt: %w", err)
	}
	out, err := json.Marshal(envelope{Format: Format, Receipt: body, Alg: alg, Signature: sig})
	if err != nil {
		return nil, err
	}
	if len(out) > MaxSize {
		return nil, fmt.Errorf("sign validation receipt: %d bytes, more than the %d a verifier accepts", len(out), MaxSize)
	}
	return out, nil
}

// Verify checks signed against the site's public key (from its
// certificate) and returns the receipt. Every error wraps ErrReceipt.
func Verify(signed []byte, pub crypto.PublicKey) (Receipt, error) {
	env, r, err := parse(signed)
	if err != nil {
		return Receipt{}, err
	}
	if err := signenv.Verify(pub, env.Alg, context, env.Receipt, env.Signature); err != nil {
		return Receipt{}, fmt.Errorf("%w: %w", ErrReceipt, err)
	}
	if err := r.validate(); err != nil {
		return Receipt{}, err
	}
	return r, nil
}

// Parse decodes a signed receipt WITHOUT checking its signature, for
// display of receipts already verified. Never base a decision on it.
func Parse(signed []byte) (Receipt, error) {
	_, r, err := parse(signed)
	return r, err
}

func parse(data []byte) (envelope, Receipt, error) {
	var env envelope
	if len(data) > MaxSize {
		return env, Receipt{}, fmt.Errorf("%w: %d bytes, more than the %d accepted", ErrReceipt, len(data), MaxSize)
	}
	if err := signenv.DecodeStrict(data, &env); err != nil {
		return env, Receipt{}, fmt.Errorf("%w: %w", ErrReceipt, err)
	}
	if env.Format != Format {
		return env, Receipt{}, fmt.Errorf("%w: format %d, want %d", ErrReceipt, env.Format, Format)
	}
	var r Receipt
	if err := signenv.DecodeStrict(env.Receipt, &r); err != nil {
		return env, Receipt{}, fmt.Errorf("%w: receipt: %w", ErrReceipt, err)
	}
	return env, r, nil
}

// validate refuses a receipt no honest site would sign: a verifier must be
// able to act on every number in it without checking it again.
func (r Receipt) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrReceipt, fmt.Sprintf(format, args...))
	}
	switch {
	case r.Site == "" || r.JobID == "":
		return bad("a receipt needs a site and a job id")
	case r.Round < 0:
		return bad("round %d", r.Round)
	case r.Time.IsZero():
		return bad("a receipt needs a time")
	}
	if b, err := hex.DecodeString(r.ModelSHA256); err != nil || len(b) != 32 || hex.EncodeToString(b) != r.ModelSHA256 {
		return bad("model_sha256 must be 64 lower-case hex digits")
	}
	a := r.Assessment
	if a.Examples < 0 || a.Positives < 0 {
		return bad("negative example count")
	}
	if err := checkMetrics(a.Metrics); err != nil {
		return bad("%v", err)
	}
	for _, g := range a.Subgroups {
		if g.Examples < 0 {
			return bad("subgroup %s=%s: negative example count", g.Field, g.Value)
		}
		if err := checkMetrics(g.Metrics); err != nil {
			return bad("subgroup %s=%s: %v", g.Field, g.Value, err)
		}
	}
	return nil
}

func checkMetrics(m map[string]evaluation.Estimate) error {
	for k, e := range m {
		for _, v := range []float64{e.Value, e.Lower, e.Upper} {
			if math.IsNaN(v) || v < 0 || v > 1 {
				return fmt.Errorf("metric %s: %v is not in [0, 1]", k, v)
			}
		}
	}
	return nil
}
