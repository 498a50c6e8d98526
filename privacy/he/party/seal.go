package party

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"

	"github.com/concord-fl/concord/privacy/he"
	"github.com/concord-fl/concord/privacy/he/internal/core"
)

// ErrOpen is returned when sealed bytes cannot be opened: wrong key, wrong receiver,
// wrong job or sites, or tampering.
var ErrOpen = errors.New("cannot open sealed data")

// seal encrypts plain to the X25519 key peerPub: the AES-256-GCM key is
// HKDF-SHA256(ECDH(priv, peerPub)) and ad (job, sender, receiver) is authenticated, so
// the coordinator that relays the bytes can neither read nor redirect them.
func seal(priv *ecdh.PrivateKey, peerPub, ad, plain []byte) ([]byte, error) {
	aead, err := pairAEAD(priv, peerPub, ad)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, plain, ad), nil
}

func open(priv *ecdh.PrivateKey, peerPub, ad, sealed []byte) ([]byte, error) {
	aead, err := pairAEAD(priv, peerPub, ad)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrOpen, len(sealed))
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: not sealed to this site by that sender for this job", ErrOpen)
	}
	return plain, nil
}

func pairAEAD(priv *ecdh.PrivateKey, peerPub, ad []byte) (cipher.AEAD, error) {
	pub, err := ecdh.X25519().NewPublicKey(peerPub)
	if err != nil {
		return nil, fmt.Errorf("peer exchange key: %w", err)
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("x25519: %w", err)
	}
	key, err := hkdf.Key(sha256.New, shared, nil, "concord-he-seal/v1\x00"+string(ad), 32)
	if err != nil {
		return nil, fmt.Errorf("hkdf: %w", err)
	}
	return newGCM(key)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	return cipher.NewGCM(block)
}

// state is the sealed form of a Party.
type state struct {
	Version   int
	Params    string
	JobID     string
	CRSSeed   []byte
	Sites     int
	Threshold int
	Point     int
	SecretKey []byte
	X25519    []byte
	NoiseSeed []byte
	Outgoing  map[int][]byte
	Shares    map[int][]byte
	Encrypted map[uint64][]byte
	Decrypted map[uint64][]byte
}

const stateAD = "concord-he-party/v1"

// Seal returns the party's whole state encrypted with AES-256-GCM under a key derived
// from key, which must be 32 random bytes held outside the data directory (a KMS, Vault
// or a file readable only by the agent).
func (pt *Party) Seal(key []byte) ([]byte, error) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	aead, err := stateAEAD(key)
	if err != nil {
		return nil, err
	}
	sk, err := pt.sk.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("seal party: %w", err)
	}
	st := state{
		Version: 1, Params: pt.ps.Name, JobID: pt.job.ID, CRSSeed: pt.job.CRSSeed,
		Sites: pt.job.Sites, Threshold: pt.job.Threshold, Point: pt.point,
		SecretKey: sk, X25519: pt.xpriv.Bytes(), NoiseSeed: pt.noiseSeed[:],
		Outgoing: pt.outgoing, Shares: map[int][]byte{},
		Encrypted: map[uint64][]byte{}, Decrypted: map[uint64][]byte{},
	}
	for j, s := range pt.shares {
		b, err := s.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("seal party: %w", err)
		}
		st.Shares[j] = b
	}
	for r, d := range pt.enc {
		st.Encrypted[r] = slices.Clone(d[:])
	}
	for r, d := range pt.dec {
		st.Decrypted[r] = slices.Clone(d[:])
	}
	plain, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("seal party: %w", err)
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal party: nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, plain, []byte(stateAD)), nil
}

func stateAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("party storage key is %d bytes, want 32 random bytes", len(key))
	}
	k, err := hkdf.Key(sha256.New, key, nil, stateAD, 32)
	if err != nil {
		return nil, fmt.Errorf("hkdf: %w", err)
	}
	return newGCM(k)
}

// Open restores a party sealed with Seal under the same key.
func Open(sealed, key []byte) (pt *Party, err error) {
	aead, err := stateAEAD(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("open party: %w: %d bytes is too short", ErrOpen, len(sealed))
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(stateAD))
	if err != nil {
		return nil, fmt.Errorf("open party: %w: wrong key or corrupted file", ErrOpen)
	}
	var st state
	if err := json.Unmarshal(plain, &st); err != nil {
		return nil, fmt.Errorf("open party: decode state: %w", err)
	}
	if st.Version != 1 {
		return nil, fmt.Errorf("open party: state version %d, want 1", st.Version)
	}
	ps, err := he.Lookup(st.Params)
	if err != nil {
		return nil, fmt.Errorf("open party: %w", err)
	}
	job := he.Job{ID: st.JobID, CRSSeed: st.CRSSeed, Sites: st.Sites, Threshold: st.Threshold}
	if err := job.Validate(); err != nil {
		return nil, fmt.Errorf("open party: %w", err)
	}
	pt, err = newEmpty(ps, job, st.Point)
	if err != nil {
		return nil, fmt.Errorf("open party: %w", err)
	}
	defer core.Recover(&err, "open party")
	pt.sk = rlwe.NewSecretKey(pt.p.RLWE)
	if err := pt.sk.UnmarshalBinary(st.SecretKey); err != nil {
		return nil, fmt.Errorf("open party: secret key: %w", err)
	}
	if pt.sk.LevelQ() != 0 || pt.sk.Value.Q.N() != pt.p.N() {
		return nil, errors.New("open party: secret key does not match the parameter set")
	}
	if pt.xpriv, err = ecdh.X25519().NewPrivateKey(st.X25519); err != nil {
		return nil, fmt.Errorf("open party: exchange key: %w", err)
	}
	if len(st.NoiseSeed) != len(pt.noiseSeed) {
		return nil, errors.New("open party: noise seed has the wrong size")
	}
	copy(pt.noiseSeed[:], st.NoiseSeed)
	if st.Outgoing != nil {
		pt.outgoing = st.Outgoing
	}
	for j, b := range st.Shares {
		s, err := pt.decodeShare(b)
		if err != nil {
			return nil, fmt.Errorf("open party: shamir share of site %d: %w", j, err)
		}
		pt.shares[j] = s
	}
	for r, d := range st.Encrypted {
		if len(d) != 32 {
			return nil, errors.New("open party: bad encryption record")
		}
		pt.enc[r] = [32]byte(d)
	}
	for r, d := range st.Decrypted {
		if len(d) != 32 {
			return nil, errors.New("open party: bad decryption record")
		}
		pt.dec[r] = [32]byte(d)
	}
	return pt, nil
}
