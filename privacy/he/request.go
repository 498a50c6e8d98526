package he

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Job is the public description of a secure-aggregation job, identical at every party.
type Job struct {
	ID string
	// CRSSeed is the public seed of the common reference polynomials, fixed in the job
	// (at least 16 bytes, drawn at random when the job is created).
	CRSSeed []byte
	// Sites is N; sites are identified by their Shamir points 1..N.
	Sites int
	// Threshold is t: any t sites can decrypt a sum, fewer cannot.
	Threshold int
}

// Validate checks the job description.
func (j Job) Validate() error {
	switch {
	case j.ID == "":
		return errors.New("he job: empty job id")
	case len(j.CRSSeed) < 16:
		return fmt.Errorf("he job %q: crs seed of %d bytes, need at least 16", j.ID, len(j.CRSSeed))
	case j.Sites < 1 || j.Sites > 65535:
		return fmt.Errorf("he job %q: %d sites, want 1..65535", j.ID, j.Sites)
	case j.Threshold < 1 || j.Threshold > j.Sites:
		return fmt.Errorf("he job %q: threshold %d, want 1..%d (the number of sites)", j.ID, j.Threshold, j.Sites)
	}
	return nil
}

// DecryptionRequest is what the coordinator sends to the committee when a round closes.
// It is public; in this scheme the ciphertexts' second halves are derived from the job
// seed at each site, so nothing else needs to be sent down.
type DecryptionRequest struct {
	Round uint64
	// Contributors are the sorted points whose updates are in the sum.
	Contributors []int
	// Committee are the sorted points that must each send one share per ciphertext.
	Committee []int
	// Ciphertexts is the number of ciphertexts of the update.
	Ciphertexts int
}

// Errors of closing a round. A round that gets one of these is aborted: nothing was
// decrypted.
var (
	ErrNotEnoughParties   = errors.New("fewer parties than the threshold can decrypt")
	ErrTooFewContributors = errors.New("fewer contributors than the threshold")
	ErrIncompleteUploads  = errors.New("some sites uploaded only part of their update")
)

// Validate checks the request against the job.
func (r DecryptionRequest) Validate(job Job) error {
	if err := checkPoints(r.Contributors, job.Sites); err != nil {
		return fmt.Errorf("decryption request contributors: %w", err)
	}
	if err := checkPoints(r.Committee, job.Sites); err != nil {
		return fmt.Errorf("decryption request committee: %w", err)
	}
	if len(r.Contributors) < job.Threshold {
		return fmt.Errorf("decryption request: %d contributors: %w (%d)", len(r.Contributors), ErrTooFewContributors, job.Threshold)
	}
	if len(r.Committee) != job.Threshold {
		return fmt.Errorf("decryption request: committee of %d, want exactly the threshold %d", len(r.Committee), job.Threshold)
	}
	if r.Ciphertexts < 1 {
		return fmt.Errorf("decryption request: %d ciphertexts", r.Ciphertexts)
	}
	return nil
}

func checkPoints(pts []int, sites int) error {
	if len(pts) == 0 {
		return errors.New("empty")
	}
	for i, p := range pts {
		if p < 1 || p > sites {
			return fmt.Errorf("point %d outside 1..%d", p, sites)
		}
		if i > 0 && pts[i-1] >= p {
			return errors.New("points are not sorted and distinct")
		}
	}
	return nil
}

// Digest binds decryption shares to this exact request.
func (r DecryptionRequest) Digest() [8]byte {
	b, _ := r.MarshalBinary()
	s := sha256.Sum256(b)
	var d [8]byte
	copy(d[:], s[:])
	return d
}

// MarshalBinary encodes the request for the wire.
func (r DecryptionRequest) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 16+2*(len(r.Contributors)+len(r.Committee)))
	b = append(b, "CDR1"...)
	b = binary.LittleEndian.AppendUint64(b, r.Round)
	b = binary.LittleEndian.AppendUint32(b, uint32(r.Ciphertexts))
	for _, list := range [][]int{r.Contributors, r.Committee} {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(list)))
		for _, p := range list {
			b = binary.LittleEndian.AppendUint16(b, uint16(p))
		}
	}
	return b, nil
}

// UnmarshalDecryptionRequest decodes a request; validate it with Validate.
func UnmarshalDecryptionRequest(b []byte) (DecryptionRequest, error) {
	var r DecryptionRequest
	if len(b) < 16 || string(b[:4]) != "CDR1" {
		return r, errors.New("decryption request: not a concord decryption request")
	}
	r.Round = binary.LittleEndian.Uint64(b[4:])
	r.Ciphertexts = int(binary.LittleEndian.Uint32(b[12:]))
	rest := b[16:]
	for _, dst := range []*[]int{&r.Contributors, &r.Committee} {
		if len(rest) < 2 {
			return r, errors.New("decryption request: truncated")
		}
		n := int(binary.LittleEndian.Uint16(rest))
		rest = rest[2:]
		if len(rest) < 2*n {
			return r, errors.New("decryption request: truncated")
		}
		list := make([]int, n)
		for i := range list {
			list[i] = int(binary.LittleEndian.Uint16(rest[2*i:]))
		}
		rest = rest[2*n:]
		*dst = list
	}
	if len(rest) != 0 {
		return r, fmt.Errorf("decryption request: %d trailing bytes", len(rest))
	}
	return r, nil
}

func sortedUnique(pts []int) []int {
	out := slices.Clone(pts)
	slices.Sort(out)
	return slices.Compact(out)
}
