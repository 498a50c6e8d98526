// Package signenv owns the signature scheme of Concord's signed statements
// (privacy receipts, validation receipts): which site keys may sign, how a
// domain-separation context is bound into what is signed, and how a
// statement's JSON is held to its one canonical encoding. Each statement's
// package keeps its own envelope and fields; the cryptography lives here
// once, so the statements cannot drift apart in how they are checked.
package signenv

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
)

// Signature algorithms.
const (
	AlgECDSAP256SHA256 = "ecdsa-p256-sha256" // ASN.1 DER signature over SHA-256 (a site kit's key)
	AlgEd25519         = "ed25519"
)

// Sentinel errors; callers wrap them in their own.
var (
	// ErrKey: a key of a type or curve statements are not signed with.
	ErrKey = errors.New("unsupported key")
	// ErrSignature: the signature does not verify, or names another algorithm.
	ErrSignature = errors.New("bad signature")
	// ErrEncoding: bytes that do not decode, or are not in canonical form.
	ErrEncoding = errors.New("not a canonical encoding")
)

// Alg returns the algorithm of a public key: ECDSA P-256 or Ed25519.
func Alg(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("%w: ECDSA key on %s: receipts support P-256 only", ErrKey, k.Curve.Params().Name)
		}
		return AlgECDSAP256SHA256, nil
	case ed25519.PublicKey:
		return AlgEd25519, nil
	}
	return "", fmt.Errorf("%w: a %T key: receipts support ECDSA P-256 and Ed25519", ErrKey, pub)
}

// Sign signs context||body. The context string separates domains: a
// signature of one kind of statement can never pass for another, or for
// anything else the same key signs (a TLS handshake).
func Sign(signer crypto.Signer, context string, body []byte) (alg string, sig []byte, err error) {
	alg, err = Alg(signer.Public())
	if err != nil {
		return "", nil, err
	}
	msg := append([]byte(context), body...)
	if alg == AlgEd25519 {
		sig, err = signer.Sign(rand.Reader, msg, crypto.Hash(0))
	} else {
		d := sha256.Sum256(msg)
		sig, err = signer.Sign(rand.Reader, d[:], crypto.SHA256)
	}
	return alg, sig, err
}

// Verify checks a signature of context||body made with alg by pub's key.
func Verify(pub crypto.PublicKey, alg, context string, body, sig []byte) error {
	want, err := Alg(pub)
	if err != nil {
		return err
	}
	if alg != want {
		return fmt.Errorf("%w: signed with %q, the key is %s", ErrSignature, alg, want)
	}
	msg := append([]byte(context), body...)
	ok := false
	if alg == AlgEd25519 {
		ok = ed25519.Verify(pub.(ed25519.PublicKey), msg, sig)
	} else {
		d := sha256.Sum256(msg)
		ok = ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), d[:], sig)
	}
	if !ok {
		return ErrSignature
	}
	return nil
}

// DecodeStrict decodes JSON into v, refusing unknown fields, and then
// insists that v encodes back to exactly data: no change to the bytes,
// however small (spacing, key order, a number's spelling), leaves them
// accepted.
func DecodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrEncoding, err)
	}
	canon, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrEncoding, err)
	}
	if !bytes.Equal(canon, data) {
		return fmt.Errorf("%w: not in canonical form (altered in transit or at rest?)", ErrEncoding)
	}
	return nil
}
