package report

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// Algorithm is the only signature algorithm a report carries.
const Algorithm = "Ed25519"

var (
	// ErrUnsigned is returned when a report has no signature.
	ErrUnsigned = errors.New("report is not signed")
	// ErrBadSignature is returned when a signature does not match the
	// report: the report was changed after signing, or signed by another
	// key.
	ErrBadSignature = errors.New("report signature does not verify")
	// ErrNotReport is returned when a file holds no Concord report.
	ErrNotReport = errors.New("no Concord report found in file")
	// ErrVisibleMismatch is returned when a file's signed data verifies but
	// what the file shows to a reader differs from it.
	ErrVisibleMismatch = errors.New("the file's visible content does not match its signed data")
)

// Canonical is the byte string a signature covers: the report as compact
// JSON with its signature's value left empty (its algorithm and key id are
// covered, so that the key a reader is shown cannot be changed either).
// encoding/json writes struct fields in declaration order and map keys
// sorted, so the same report always gives the same bytes, and a report
// read back from its JSON gives them again.
func Canonical(r *Report) ([]byte, error) {
	c := *r
	if r.Signature != nil {
		c.Signature = &Signature{Algorithm: r.Signature.Algorithm, KeyID: r.Signature.KeyID}
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("encode report: %w", err)
	}
	return b, nil
}

// Sign checks that r is complete enough to file, then signs its canonical
// form with key and stores the signature in r.Signature. keyID names the
// key for the reader (e.g. the coordinator certificate's serial).
func Sign(r *Report, key ed25519.PrivateKey, keyID string) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("sign report: Ed25519 private key has %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("sign report: %w", err)
	}
	r.Signature = &Signature{Algorithm: Algorithm, KeyID: keyID}
	msg, err := Canonical(r)
	if err != nil {
		r.Signature = nil
		return fmt.Errorf("sign report: %w", err)
	}
	r.Signature.Value = base64.StdEncoding.EncodeToString(ed25519.Sign(key, msg))
	return nil
}

// VerifySignature reports whether r carries a valid signature by pub over
// all its other fields. The error wraps [ErrUnsigned] or [ErrBadSignature].
func VerifySignature(r *Report, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("verify report: Ed25519 public key has %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	if r.Signature == nil || r.Signature.Value == "" {
		return ErrUnsigned
	}
	if r.Signature.Algorithm != Algorithm {
		return fmt.Errorf("%w: algorithm %q, want %q", ErrBadSignature, r.Signature.Algorithm, Algorithm)
	}
	if r.Schema != Schema {
		return fmt.Errorf("verify report: schema %q is not %q; use the Concord version that wrote it", r.Schema, Schema)
	}
	sig, err := base64.StdEncoding.DecodeString(r.Signature.Value)
	if err != nil {
		return fmt.Errorf("%w: signature is not base64: %v", ErrBadSignature, err)
	}
	msg, err := Canonical(r)
	if err != nil {
		return fmt.Errorf("verify report: %w", err)
	}
	if !ed25519.Verify(pub, msg, sig) {
		return fmt.Errorf("%w (key %q): the report was changed after it was signed, or the key is not the signer's", ErrBadSignature, r.Signature.KeyID)
	}
	return nil
}

// Validate reports what a report lacks before it can be signed.
func (r *Report) Validate() error {
	var errs []error
	if r.Schema != Schema {
		errs = append(errs, fmt.Errorf("schema is %q, want %q", r.Schema, Schema))
	}
	if r.Consortium == "" {
		errs = append(errs, errors.New("consortium name is empty"))
	}
	if r.Subject.JobID == "" {
		errs = append(errs, errors.New("subject has no job id"))
	}
	if r.GeneratedAt.IsZero() {
		errs = append(errs, errors.New("generated_at is not set"))
	}
	if r.GeneratedBy == "" {
		errs = append(errs, errors.New("generated_by is empty"))
	}
	if len(r.Sites) == 0 {
		errs = append(errs, errors.New("no sites"))
	}
	if r.Privacy.Enabled && r.Privacy.Level != LevelRecord && r.Privacy.Level != LevelSite {
		errs = append(errs, fmt.Errorf("differential privacy level %q is neither %q nor %q", r.Privacy.Level, LevelRecord, LevelSite))
	}
	for _, b := range r.Privacy.Sites {
		if b.Level != LevelRecord && b.Level != LevelSite {
			errs = append(errs, fmt.Errorf("site %q: epsilon level %q is neither %q nor %q", b.Site, b.Level, LevelRecord, LevelSite))
		}
	}
	if r.Checkpoint.RootHash == "" {
		errs = append(errs, errors.New("audit checkpoint has no root hash"))
	}
	return errors.Join(errs...)
}
