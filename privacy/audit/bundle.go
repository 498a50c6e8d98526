package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// BundleFormat is the format and version of the bundle file. A reader
// refuses any other.
const BundleFormat = "concord-audit-bundle/v1"

// Bundle is a self-contained export of the log, verifiable offline. Its
// file is JSON:
//
//	{
//	  "format": "concord-audit-bundle/v1",
//	  "origin": "concord.example.org/audit",
//	  "checkpoint": "<signed note: the checkpoint with the log signature and cosignatures>",
//	  "keys": {"log": ["coordinator+…"], "signer": [], "witness": ["st-marys+…"], "quorum": 1},
//	  "job": "7",                          (only in a one-job bundle)
//	  "records": [{"index": 0, "leaf": "<base64 canonical record>"}, …]
//	}
//
// A whole-log bundle holds records 0 … size-1 and no proofs: the verifier
// rebuilds the tree. A one-job bundle holds that job's records, each with
// an inclusion "proof" (base64 hashes) in the checkpoint's tree.
//
// The keys are those the exporter trusts, carried for a reader without a
// trust file; a verifier that has one (Verify with a Trust) ignores them.
type Bundle struct {
	Format     string         `json:"format"`
	Origin     string         `json:"origin"`
	Checkpoint string         `json:"checkpoint"`
	Keys       BundleKeys     `json:"keys"`
	Job        string         `json:"job,omitempty"`
	Records    []BundleRecord `json:"records"`
}

// BundleKeys are the verifier keys a bundle carries.
type BundleKeys struct {
	Log     []string `json:"log"`
	Signer  []string `json:"signer"`
	Witness []string `json:"witness"`
	Quorum  int      `json:"quorum"`
}

// BundleRecord is one record's leaf, with its inclusion proof in a partial
// bundle.
type BundleRecord struct {
	Index uint64   `json:"index"`
	Leaf  []byte   `json:"leaf"`
	Proof [][]byte `json:"proof,omitempty"`
}

// ExportOptions choose what Export includes.
type ExportOptions struct {
	// JobID, when set, exports only that job's records, each with an
	// inclusion proof; the bundle then proves those records are in the
	// log but not that none of the job's records is missing.
	JobID string
}

// ErrNoCheckpoint is Export before any checkpoint was published.
var ErrNoCheckpoint = errors.New("no checkpoint published yet")

// Export writes the log up to its latest published checkpoint into a
// bundle, with t's keys. Records appended after that checkpoint are not
// witnessed yet and are left out: publish a checkpoint first.
func Export(l *Log, t *Trust, opt ExportOptions) (*Bundle, error) {
	signed, err := l.Latest()
	if err != nil {
		return nil, err
	}
	if signed == nil {
		return nil, ErrNoCheckpoint
	}
	text, _, err := sigLines(signed)
	if err != nil {
		return nil, err
	}
	c, err := parseCheckpointText(string(text))
	if err != nil {
		return nil, err
	}
	b := &Bundle{Format: BundleFormat, Origin: c.Origin, Checkpoint: string(signed),
		Keys: BundleKeys{Log: t.Logs, Signer: t.Signers, Witness: t.Witnesses, Quorum: t.Quorum},
		Job:  opt.JobID, Records: []BundleRecord{}}
	for i := uint64(0); i < c.Size; i++ {
		leaf, err := l.store.Leaf(i)
		if err != nil {
			return nil, fmt.Errorf("export record %d: %w", i, err)
		}
		br := BundleRecord{Index: i, Leaf: leaf}
		if opt.JobID != "" {
			r, err := DecodeRecord(leaf)
			if err != nil {
				return nil, fmt.Errorf("export record %d: %w", i, err)
			}
			if r.JobID != opt.JobID {
				continue
			}
			if br.Proof, err = l.InclusionProof(i, c.Size); err != nil {
				return nil, fmt.Errorf("export record %d: %w", i, err)
			}
		}
		b.Records = append(b.Records, br)
	}
	return b, nil
}

// Marshal encodes b as its file.
func (b *Bundle) Marshal() ([]byte, error) {
	return json.MarshalIndent(b, "", " ")
}

// ErrBundle is a bundle file that cannot be read as one.
var ErrBundle = errors.New("not a readable audit bundle")

// ReadBundle parses a bundle file strictly: unknown fields, trailing data
// and other formats are refused.
func ReadBundle(r io.Reader) (*Bundle, error) {
	data, err := io.ReadAll(io.LimitReader(r, 4<<30))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBundle, err)
	}
	return ParseBundle(data)
}

// ParseBundle is ReadBundle on bytes.
func ParseBundle(data []byte) (*Bundle, error) {
	var probe struct {
		Format string `json:"format"`
	}
	if err := json.Unmarshal(data, &probe); err == nil && probe.Format != BundleFormat {
		return nil, fmt.Errorf("%w: format %q, this build reads %q", ErrBundle, probe.Format, BundleFormat)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b Bundle
	if err := dec.Decode(&b); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: the file ends early (truncated?): copy or export it again", ErrBundle)
		}
		return nil, fmt.Errorf("%w: %v", ErrBundle, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the bundle", ErrBundle)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the bundle", ErrBundle)
	}
	return &b, nil
}

// trust is the Trust the bundle's own keys describe, for a verifier
// without a trust file.
func (b *Bundle) trust() (*Trust, error) {
	return NewTrust(b.Origin, b.Keys.Log, b.Keys.Signer, b.Keys.Witness, b.Keys.Quorum)
}
