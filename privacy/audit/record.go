package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Record is one entry of the audit log. It says what happened, who did it
// and, for data that left a site, how much and which bytes (by SHA-256),
// never the content.
type Record struct {
	Seq    uint64    // the record's leaf index in the tree: 0 for the first record
	Time   time.Time // when the writer saw it; stored to the nanosecond, in UTC
	Kind   string    // e.g. "job.submitted"
	Actor  string    // the certificate identity that caused it, e.g. "admin:alice" or "site:st-marys"
	JobID  string
	Round  uint32
	Site   string
	Detail string
	Data   []DataField

	KeyID string // the signer's key, "name+hash" as in a note verifier key
	Sig   []byte // Ed25519 over SignedBytes
}

// DataField describes one thing that was sent: its size and its SHA-256.
type DataField struct {
	Name   string
	Size   uint64
	SHA256 [32]byte
}

// Limits that keep a hostile leaf cheap to reject.
const (
	MaxLeafBytes  = 64 << 10
	maxDataFields = 256
)

// recordVersion is the first byte of every encoded record. A new encoding
// gets a new version; old leaves keep verifying under the old one.
const recordVersion = 1

// signContext separates record signatures from every other use of a key; a
// note (checkpoint) text cannot start with it because notes forbid NUL.
const signContext = "concord audit record v1\x00"

// Errors of decoding and signature checking.
var (
	ErrMalformedRecord = errors.New("malformed record")
	ErrRecordSignature = errors.New("signature invalid")
	ErrUnknownSigner   = errors.New("signed by a key the trust list does not name")
)

// label names a record in messages: "record 17 (job.submitted by admin:alice)".
func (r *Record) label(index uint64) string {
	if r == nil || r.Kind == "" {
		return fmt.Sprintf("record %d", index)
	}
	return fmt.Sprintf("record %d (%s by %s)", index, r.Kind, r.Actor)
}

// encode writes the version 1 encoding:
//
//	version byte 1
//	seq uvarint, time int64 big-endian nanoseconds since 1970 UTC
//	kind, actor, job, site, detail: uvarint length + UTF-8 bytes each
//	round uvarint
//	count uvarint, then per field: name (length + bytes), size uvarint, 32-byte SHA-256
//	key id: length + bytes
//	signature: length + bytes (only when withSig)
func (r *Record) encode(withSig bool) []byte {
	b := make([]byte, 0, 128+len(r.Detail)+len(r.Data)*48)
	b = append(b, recordVersion)
	b = binary.AppendUvarint(b, r.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixNano()))
	for _, s := range []string{r.Kind, r.Actor, r.JobID, r.Site, r.Detail} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(r.Round))
	b = binary.AppendUvarint(b, uint64(len(r.Data)))
	for _, d := range r.Data {
		b = appendString(b, d.Name)
		b = binary.AppendUvarint(b, d.Size)
		b = append(b, d.SHA256[:]...)
	}
	b = appendString(b, r.KeyID)
	if withSig {
		b = binary.AppendUvarint(b, uint64(len(r.Sig)))
		b = append(b, r.Sig...)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// SignedBytes is the message a record's signature covers: a fixed context
// string and the encoding without the signature.
func (r *Record) SignedBytes() []byte {
	return append([]byte(signContext), r.encode(false)...)
}

// Leaf is the record's canonical encoding, signature included: the bytes
// the Merkle tree hashes.
func (r *Record) Leaf() []byte { return r.encode(true) }

// check refuses a record the encoding cannot carry faithfully.
func (r *Record) check() error {
	if r.Time.IsZero() {
		return fmt.Errorf("%w: time is not set", ErrMalformedRecord)
	}
	if y := r.Time.Year(); y < 1678 || y > 2261 {
		return fmt.Errorf("%w: time %v is outside what nanoseconds since 1970 can hold", ErrMalformedRecord, r.Time)
	}
	if r.Kind == "" {
		return fmt.Errorf("%w: kind is empty", ErrMalformedRecord)
	}
	for _, s := range []string{r.Kind, r.Actor, r.JobID, r.Site, r.Detail, r.KeyID} {
		if !utf8.ValidString(s) {
			return fmt.Errorf("%w: a text field is not UTF-8", ErrMalformedRecord)
		}
	}
	if len(r.Data) > maxDataFields {
		return fmt.Errorf("%w: %d data fields, at most %d", ErrMalformedRecord, len(r.Data), maxDataFields)
	}
	for _, d := range r.Data {
		if !utf8.ValidString(d.Name) {
			return fmt.Errorf("%w: a data field name is not UTF-8", ErrMalformedRecord)
		}
	}
	if n := len(r.encode(true)); n > MaxLeafBytes {
		return fmt.Errorf("%w: %d bytes encoded, at most %d (shorten the detail)", ErrMalformedRecord, n, MaxLeafBytes)
	}
	return nil
}

// DecodeRecord parses a leaf. Only the canonical encoding is accepted: the
// decoded record must encode back to exactly the same bytes, so one record
// has one leaf and one leaf hash.
func DecodeRecord(leaf []byte) (*Record, error) {
	if len(leaf) > MaxLeafBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformedRecord, len(leaf), MaxLeafBytes)
	}
	d := decoder{b: leaf}
	if v := d.byte(); v != recordVersion {
		if d.err != nil {
			return nil, d.err
		}
		return nil, fmt.Errorf("%w: encoding version %d, this build reads version %d", ErrMalformedRecord, v, recordVersion)
	}
	r := &Record{}
	r.Seq = d.uvarint()
	r.Time = time.Unix(0, int64(d.uint64())).UTC()
	r.Kind, r.Actor, r.JobID, r.Site, r.Detail = d.string(), d.string(), d.string(), d.string(), d.string()
	round := d.uvarint()
	if round > 1<<32-1 {
		d.fail("round out of range")
	}
	r.Round = uint32(round)
	n := d.uvarint()
	if n > maxDataFields {
		d.fail("too many data fields")
		n = 0
	}
	if n > 0 {
		r.Data = make([]DataField, n)
	}
	for i := range r.Data {
		r.Data[i].Name = d.string()
		r.Data[i].Size = d.uvarint()
		copy(r.Data[i].SHA256[:], d.bytes(32))
	}
	r.KeyID = d.string()
	r.Sig = d.bytes(int(min(d.uvarint(), MaxLeafBytes)))
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the signature", ErrMalformedRecord, len(d.b))
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	if !bytes.Equal(r.encode(true), leaf) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrMalformedRecord)
	}
	return r, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrMalformedRecord, what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad or truncated number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uint64() uint64 {
	return binary.BigEndian.Uint64(d.bytes(8))
}

func (d *decoder) bytes(n int) []byte {
	if n < 0 || len(d.b) < n {
		d.fail("truncated")
		return make([]byte, max(n, 0))
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("truncated text")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	if !utf8.ValidString(s) {
		d.fail("text is not UTF-8")
	}
	return s
}

// Sign sets r.KeyID and r.Sig with k. The record's Seq must already be
// the index it will take in the log.
func (r *Record) Sign(k *Key) error {
	r.KeyID = k.ID()
	r.Sig = nil
	if err := r.check(); err != nil {
		return err
	}
	r.Sig = ed25519.Sign(k.priv, r.SignedBytes())
	return nil
}

// verifySig checks r's signature with the public key trust lists for r.KeyID.
func (r *Record) verifySig(t *Trust) error {
	pub, ok := t.signers[r.KeyID]
	if !ok {
		return fmt.Errorf("%w (%s)", ErrUnknownSigner, r.KeyID)
	}
	if len(r.Sig) != ed25519.SignatureSize || !ed25519.Verify(pub, r.SignedBytes(), r.Sig) {
		return fmt.Errorf("%w (key %s)", ErrRecordSignature, r.KeyID)
	}
	return nil
}
