package dp

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/concord-fl/concord/internal/signenv"
)

// Receipt is what a site states, under its own signature, about one
// release: the mechanism it ran for a job's round, what its ledger has
// spent after charging it, and the hash of the bytes it released. The
// coordinator verifies it against the site's certificate and countersigns
// it, so both sides hold proof of the same statement.
type Receipt struct {
	Site            string    `json:"site"`
	JobID           string    `json:"job_id"`
	Round           int       `json:"round"`
	Level           Level     `json:"level"`
	Mechanism       string    `json:"mechanism"`
	NoiseMultiplier float64   `json:"noise_multiplier"`
	SampleRate      float64   `json:"sample_rate"`
	Steps           int       `json:"steps"`
	Delta           float64   `json:"delta"`
	EpsilonSpent    float64   `json:"epsilon_spent"` // the ledger's epsilon at the budget's δ, this release included
	Budget          Budget    `json:"budget"`
	Accountant      string    `json:"accountant"` // AccountantVersion: the accountant's name and version
	UploadSHA256    string    `json:"upload_sha256"`
	Time            time.Time `json:"time"`
	// Site level only: the clip C of the round and the fewest contributors
	// m the site's share of the noise was calibrated for (the sum of k >= m
	// shares carries the charged noise). Omitted at record level, so that
	// record-level receipts keep their form.
	UpdateClip      float64 `json:"update_clip,omitempty"`
	MinContributors int     `json:"min_contributors,omitempty"`
}

// Signature algorithms of receipts.
const (
	AlgECDSAP256SHA256 = signenv.AlgECDSAP256SHA256 // ASN.1 DER signature over SHA-256 (a site kit's key)
	AlgEd25519         = signenv.AlgEd25519         // the coordinator's audit key, or an Ed25519 site key
)

// ReceiptFormat is the envelope's format number.
const ReceiptFormat = 1

// ErrReceipt is returned (wrapped) for a receipt that is malformed, not in
// canonical form, or whose signature does not verify.
var ErrReceipt = errors.New("privacy receipt does not verify")

// Domain separation: a receipt signature can never be mistaken for a
// signature of anything else the same key signs (a TLS handshake, an
// audit checkpoint).
const (
	siteContext    = "concord privacy receipt v1\n"
	counterContext = "concord privacy receipt countersignature v1\n"
)

type envelope struct {
	Format    int             `json:"format"`
	Receipt   json.RawMessage `json:"receipt"`
	Alg       string          `json:"alg"`
	Signature []byte          `json:"signature"`
	Counter   *countersig     `json:"countersignature,omitempty"`
}

type countersig struct {
	KeyID     string `json:"key_id"`
	Alg       string `json:"alg"`
	Signature []byte `json:"signature"`
}

func (r Receipt) validate() error {
	switch {
	case r.Site == "" || r.JobID == "":
		return fmt.Errorf("%w: a receipt needs a site and a job id", ErrInvalid)
	case r.Round < 0 || r.Steps < 0:
		return fmt.Errorf("%w: round %d, steps %d", ErrInvalid, r.Round, r.Steps)
	case r.Time.IsZero():
		return fmt.Errorf("%w: a receipt needs a time", ErrInvalid)
	}
	return nil
}

// algOf, sign and verify are internal/signenv's scheme (shared with the
// validation receipts), with this package's errors.
func algOf(pub crypto.PublicKey) (string, error) {
	alg, err := signenv.Alg(pub)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return alg, nil
}

func sign(signer crypto.Signer, msg []byte) (alg string, sig []byte, err error) {
	if _, err := algOf(signer.Public()); err != nil {
		return "", nil, err
	}
	return signenv.Sign(signer, "", msg)
}

func verify(pub crypto.PublicKey, alg string, msg, sig []byte) error {
	if _, err := algOf(pub); err != nil {
		return err
	}
	if err := signenv.Verify(pub, alg, "", msg, sig); err != nil {
		return fmt.Errorf("%w: %w", ErrReceipt, err)
	}
	return nil
}

// SignReceipt signs r with the site's key (its TLS key: ECDSA P-256, or
// Ed25519) and returns the envelope, JSON: {format, receipt, alg,
// signature}. The signature covers the receipt's bytes exactly as they
// appear in the envelope.
func SignReceipt(r Receipt, signer crypto.Signer) ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	r.Time = r.Time.UTC()
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	alg, sig, err := sign(signer, append([]byte(siteContext), body...))
	if err != nil {
		return nil, fmt.Errorf("sign privacy receipt: %w", err)
	}
	return json.Marshal(envelope{Format: ReceiptFormat, Receipt: body, Alg: alg, Signature: sig})
}

// parse decodes an envelope and insists on its canonical form: the bytes
// must be exactly what this package would write for the decoded values,
// so that no change to them, however small, leaves a receipt valid.
func parse(data []byte) (envelope, Receipt, error) {
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return env, Receipt{}, fmt.Errorf("%w: %v", ErrReceipt, err)
	}
	if env.Format != ReceiptFormat {
		return env, Receipt{}, fmt.Errorf("%w: format %d, want %d", ErrReceipt, env.Format, ReceiptFormat)
	}
	var r Receipt
	rd := json.NewDecoder(bytes.NewReader(env.Receipt))
	rd.DisallowUnknownFields()
	if err := rd.Decode(&r); err != nil {
		return env, Receipt{}, fmt.Errorf("%w: receipt: %v", ErrReceipt, err)
	}
	body, err := json.Marshal(r)
	if err != nil {
		return env, Receipt{}, err
	}
	canon, err := json.Marshal(envelope{Format: env.Format, Receipt: body, Alg: env.Alg, Signature: env.Signature, Counter: env.Counter})
	if err != nil {
		return env, Receipt{}, err
	}
	if !bytes.Equal(canon, data) {
		return env, Receipt{}, fmt.Errorf("%w: not in canonical form (altered in transit or at rest?)", ErrReceipt)
	}
	return env, r, nil
}

// VerifyReceipt checks the site's signature of an envelope (with or
// without a countersignature) with the site's public key, from its
// certificate, and returns the receipt. An error wraps ErrReceipt (or
// ErrInvalid for an unsupported key).
func VerifyReceipt(data []byte, pub crypto.PublicKey) (Receipt, error) {
	env, r, err := parse(data)
	if err != nil {
		return Receipt{}, err
	}
	if err := verify(pub, env.Alg, append([]byte(siteContext), env.Receipt...), env.Signature); err != nil {
		return Receipt{}, err
	}
	if err := r.validate(); err != nil {
		return Receipt{}, fmt.Errorf("%w: %w", ErrReceipt, err)
	}
	return r, nil
}

// counterMessage is what the coordinator signs: the receipt and the site's
// signature of it, so the countersignature vouches that the coordinator
// received exactly this signed statement.
func counterMessage(env envelope, keyID string) []byte {
	m, _ := json.Marshal(struct {
		Receipt   json.RawMessage `json:"receipt"`
		Alg       string          `json:"alg"`
		Signature []byte          `json:"signature"`
		KeyID     string          `json:"key_id"`
	}{env.Receipt, env.Alg, env.Signature, keyID})
	return append([]byte(counterContext), m...)
}

// Countersign adds the coordinator's Ed25519 signature, under keyID, to a
// site-signed envelope. It does not check the site's signature: the
// coordinator calls VerifyReceipt with the site's certificate key first.
// A second countersignature is refused.
func Countersign(data []byte, key ed25519.PrivateKey, keyID string) ([]byte, error) {
	env, _, err := parse(data)
	if err != nil {
		return nil, err
	}
	if env.Counter != nil {
		return nil, fmt.Errorf("%w: already countersigned by %q", ErrReceipt, env.Counter.KeyID)
	}
	if len(key) != ed25519.PrivateKeySize || keyID == "" {
		return nil, fmt.Errorf("%w: countersigning needs an Ed25519 private key and a key id", ErrInvalid)
	}
	env.Counter = &countersig{KeyID: keyID, Alg: AlgEd25519, Signature: ed25519.Sign(key, counterMessage(env, keyID))}
	return json.Marshal(env)
}

// VerifyCountersigned checks both signatures of a countersigned envelope:
// the site's with sitePub and the coordinator's with coordPub. It returns
// the receipt and the coordinator's key id.
func VerifyCountersigned(data []byte, sitePub crypto.PublicKey, coordPub ed25519.PublicKey) (Receipt, string, error) {
	r, err := VerifyReceipt(data, sitePub)
	if err != nil {
		return Receipt{}, "", err
	}
	env, _, _ := parse(data) // parsed above
	if env.Counter == nil {
		return Receipt{}, "", fmt.Errorf("%w: no countersignature", ErrReceipt)
	}
	if err := verify(coordPub, env.Counter.Alg, counterMessage(env, env.Counter.KeyID), env.Counter.Signature); err != nil {
		return Receipt{}, "", fmt.Errorf("countersignature: %w", err)
	}
	return r, env.Counter.KeyID, nil
}

// ParseReceipt decodes a receipt envelope WITHOUT checking any signature:
// for display and summaries of receipts already verified (the coordinator
// verified it before countersigning). Never base a decision on it.
func ParseReceipt(data []byte) (Receipt, error) {
	_, r, err := parse(data)
	return r, err
}
