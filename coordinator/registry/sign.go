package registry

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/concord-fl/concord/privacy/audit"
)

// EnvelopeFormat names the signed envelope's layout.
const EnvelopeFormat = "concord.model-manifest/1"

// signingContext separates manifest signatures from everything else the
// audit log key signs (records, checkpoints, compliance reports): a
// signature over a manifest can never be replayed as one of those.
const signingContext = "concord model manifest v1\n"

// MaxManifestBytes bounds a signed manifest Open accepts.
const MaxManifestBytes = 16 << 20

// Errors of Open, wrapped with the detail.
var (
	// ErrManifest: the bytes are not a well-formed signed manifest.
	ErrManifest = errors.New("malformed signed manifest")
	// ErrUntrustedKey: signed by a key the trust file does not list.
	ErrUntrustedKey = errors.New("manifest signed by an untrusted key")
	// ErrSignature: the signature does not verify.
	ErrSignature = errors.New("manifest signature does not verify")
)

// envelope is the signed manifest as stored and served: the canonical
// manifest bytes and a signature over signingContext || manifest.
type envelope struct {
	Format    string `json:"format"`
	Context   string `json:"context"`
	Manifest  []byte `json:"manifest"`
	KeyID     string `json:"key_id"`
	Signature []byte `json:"signature"`
}

// canonical is the one byte form of a manifest that is signed.
func canonical(m Manifest) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode manifest %s: %w", m.Version, err)
	}
	return b, nil
}

// Sign signs m with the coordinator's audit log key. It sets Format, and
// DeviceUID when empty; a DeviceUID that does not derive from
// WeightsSHA256 is refused.
func Sign(m Manifest, key *audit.Key) ([]byte, error) {
	if key == nil {
		return nil, errors.New("sign manifest: no key")
	}
	if m.Format == 0 {
		m.Format = ManifestFormat
	}
	uid := DeviceUID(m.WeightsSHA256)
	if uid == "" {
		return nil, fmt.Errorf("sign manifest %s: weights_sha256 %q is not a SHA-256 in hex", m.Version, m.WeightsSHA256)
	}
	if m.DeviceUID == "" {
		m.DeviceUID = uid
	} else if m.DeviceUID != uid {
		return nil, fmt.Errorf("sign manifest %s: device uid %s does not derive from the weights (want %s)", m.Version, m.DeviceUID, uid)
	}
	body, err := canonical(m)
	if err != nil {
		return nil, err
	}
	sig := ed25519.Sign(key.PrivateKey(), append([]byte(signingContext), body...))
	return json.MarshalIndent(envelope{Format: EnvelopeFormat, Context: signingContext, Manifest: body, KeyID: key.ID(), Signature: sig}, "", "  ")
}

// Open verifies signed against the trusted coordinator keys (the trust
// file's log keys) and returns the manifest.
func Open(signed []byte, trust *audit.Trust) (Manifest, error) {
	if trust == nil || len(trust.Logs) == 0 {
		return Manifest{}, errors.New("open manifest: no trusted log key: give the consortium's trust file")
	}
	env, m, err := decode(signed)
	if err != nil {
		return Manifest{}, err
	}
	var pub ed25519.PublicKey
	for _, k := range trust.Logs {
		p, id, err := audit.VerifierPublicKey(k)
		if err != nil {
			return Manifest{}, fmt.Errorf("open manifest: trust file: %w", err)
		}
		if id == env.KeyID {
			pub = p
			break
		}
	}
	if pub == nil {
		return Manifest{}, fmt.Errorf("%w: %q is not a log key of the trust file (origin %s)", ErrUntrustedKey, env.KeyID, trust.Origin)
	}
	if !ed25519.Verify(pub, append([]byte(signingContext), env.Manifest...), env.Signature) {
		return Manifest{}, fmt.Errorf("%w: the manifest of %s was changed after %s signed it", ErrSignature, m.Version, env.KeyID)
	}
	return m, nil
}

// decode parses an envelope and its manifest without checking the
// signature; Open and the directory writer share it.
func decode(signed []byte) (envelope, Manifest, error) {
	if len(signed) > MaxManifestBytes {
		return envelope{}, Manifest{}, fmt.Errorf("%w: %d bytes, more than the %d allowed", ErrManifest, len(signed), MaxManifestBytes)
	}
	var env envelope
	if err := strict(signed, &env); err != nil {
		return envelope{}, Manifest{}, fmt.Errorf("%w: %w", ErrManifest, err)
	}
	if env.Format != EnvelopeFormat || env.Context != signingContext {
		return envelope{}, Manifest{}, fmt.Errorf("%w: format %q, want %q", ErrManifest, env.Format, EnvelopeFormat)
	}
	if len(env.Signature) != ed25519.SignatureSize || env.KeyID == "" {
		return envelope{}, Manifest{}, fmt.Errorf("%w: no signature or key id", ErrManifest)
	}
	var m Manifest
	if err := strict(env.Manifest, &m); err != nil {
		return envelope{}, Manifest{}, fmt.Errorf("%w: manifest: %w", ErrManifest, err)
	}
	// One manifest, one byte form: JSON's freedoms (key case, spacing,
	// duplicate keys, escapes) would otherwise let two different texts
	// carry the same signature's meaning, or one text mean two things.
	if again, err := canonical(m); err != nil || !bytes.Equal(again, env.Manifest) {
		return envelope{}, Manifest{}, fmt.Errorf("%w: manifest bytes are not in canonical form", ErrManifest)
	}
	if m.Format != ManifestFormat {
		return envelope{}, Manifest{}, fmt.Errorf("%w: manifest format %d, this concordctl reads %d", ErrManifest, m.Format, ManifestFormat)
	}
	return env, m, nil
}

// strict decodes exactly one JSON value with no unknown fields.
func strict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON value")
	}
	return nil
}

// Inspect decodes a signed manifest without checking its signature and
// returns it with the id of the key that claims to have signed it. It is
// for display where no trust file is at hand; nothing it returns may be
// relied on. Open verifies.
func Inspect(signed []byte) (Manifest, string, error) {
	env, m, err := decode(signed)
	return m, env.KeyID, err
}
