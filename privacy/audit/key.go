package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Key is an Ed25519 signing key of one component: the coordinator's log key
// (records and checkpoints) or a site's witness key (cosignatures). Its
// public half is a note verifier key, "name+hash+base64", the form trust
// files list.
type Key struct {
	name     string
	priv     ed25519.PrivateKey
	signer   note.Signer
	verifier string
}

// KeyPEMType is the PEM block type of a key file. The block holds the
// PKCS#8 encoding of the Ed25519 private key and a "Name" header.
const KeyPEMType = "CONCORD AUDIT KEY"

// GenerateKey makes a key named name (e.g. "coordinator", "st-marys"), with
// randomness from rnd (crypto/rand.Reader when nil). A name is what notes
// allow: no spaces, no "+".
func GenerateKey(rnd io.Reader, name string) (*Key, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	_, priv, err := ed25519.GenerateKey(rnd)
	if err != nil {
		return nil, fmt.Errorf("generate key %q: %w", name, err)
	}
	return newKey(name, priv)
}

func newKey(name string, priv ed25519.PrivateKey) (*Key, error) {
	vkey, err := note.NewEd25519VerifierKey(name, priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("key name %q: %w (use letters, digits, '-', '.' and no '+')", name, err)
	}
	id := verifierID(vkey)
	// note has no constructor from an ed25519.PrivateKey; its private key
	// string is "PRIVATE+KEY+name+hash+base64(alg || seed)".
	skey := "PRIVATE+KEY+" + id + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, priv.Seed()...))
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", name, err)
	}
	return &Key{name: name, priv: priv, signer: s, verifier: vkey}, nil
}

// Name is the key's name.
func (k *Key) Name() string { return k.name }

// ID is "name+hash", the key id records carry.
func (k *Key) ID() string { return verifierID(k.verifier) }

// verifierID is the "name+hash" prefix of a well-formed verifier key; the
// base64 key after it may itself hold a "+".
func verifierID(vkey string) string {
	name, rest, _ := strings.Cut(vkey, "+")
	hash, _, _ := strings.Cut(rest, "+")
	return name + "+" + hash
}

// Verifier is the public key as a note verifier key, "name+hash+base64".
func (k *Key) Verifier() string { return k.verifier }

// MarshalPEM encodes the private key for a key file.
func (k *Key) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: KeyPEMType, Headers: map[string]string{"Name": k.name}, Bytes: der}), nil
}

// ParseKeyPEM reads a key written by MarshalPEM.
func ParseKeyPEM(data []byte) (*Key, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != KeyPEMType {
		return nil, fmt.Errorf("not an audit key: want a PEM block %q", KeyPEMType)
	}
	pk, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	priv, ok := pk.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("audit key: %T is not an Ed25519 key", pk)
	}
	return newKey(b.Headers["Name"], priv)
}

// WriteKeyFile writes k to path, readable by its owner only; it refuses to
// overwrite a file, since losing a log key orphans the log's signatures.
func WriteKeyFile(path string, k *Key) error {
	data, err := k.MarshalPEM()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write audit key: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write audit key %s: %w", path, err)
	}
	return f.Close()
}

// ReadKeyFile reads a key file written by WriteKeyFile.
func ReadKeyFile(path string) (*Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read audit key: %w", err)
	}
	k, err := ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// parseVerifier returns the id ("name+hash") and public key of a note
// verifier key; only Ed25519 keys are accepted.
func parseVerifier(vkey string) (id string, pub ed25519.PublicKey, v note.Verifier, err error) {
	v, err = note.NewVerifier(vkey)
	if err != nil {
		return "", nil, nil, fmt.Errorf("verifier key %q: %w", vkey, err)
	}
	id = verifierID(vkey)
	raw, err := base64.StdEncoding.DecodeString(vkey[len(id)+1:])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 1 {
		return "", nil, nil, errors.New("verifier key " + strconv.Quote(vkey) + ": not an Ed25519 key")
	}
	return id, ed25519.PublicKey(raw[1:]), v, nil
}

// PrivateKey is the key's Ed25519 private key, for signing documents
// other than records and checkpoints (a compliance report).
func (k *Key) PrivateKey() ed25519.PrivateKey { return k.priv }

// VerifierPublicKey returns the Ed25519 public key and id ("name+hash") of
// a note verifier key, e.g. a trust file's log key, to check documents the
// key signed (a compliance report).
func VerifierPublicKey(vkey string) (ed25519.PublicKey, string, error) {
	id, pub, _, err := parseVerifier(vkey)
	return pub, id, err
}
