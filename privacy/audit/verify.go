package audit

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// RecordError is a verification failure of one record. Its message names
// the record: "record 17 (job.submitted by admin:alice): signature invalid".
type RecordError struct {
	Index uint64
	Kind  string // "" when the record could not be decoded
	Actor string
	Err   error
}

func (e *RecordError) Error() string {
	r := &Record{Kind: e.Kind, Actor: e.Actor}
	return r.label(e.Index) + ": " + e.Err.Error()
}

func (e *RecordError) Unwrap() error { return e.Err }

// ErrMissing is a record absent from a whole-log bundle, and ErrOrder a
// record out of place; ErrRoot is a set of records that does not hash to
// the checkpoint's root.
var (
	ErrMissing = errors.New("missing")
	ErrOrder   = errors.New("out of order")
	ErrSeq     = errors.New("sequence number does not match its place in the log")
	ErrRoot    = errors.New("records do not hash to the checkpoint's root")
)

// Report summarises a verified bundle.
type Report struct {
	Origin     string    `json:"origin"`
	Size       uint64    `json:"size"`          // records in the checkpoint's tree
	Records    int       `json:"records"`       // records in the bundle, all verified
	Whole      bool      `json:"whole"`         // the bundle holds the whole log
	Job        string    `json:"job,omitempty"` // the job of a one-job bundle
	Root       []byte    `json:"root"`
	Cosigners  []string  `json:"cosigners"`
	Quorum     int       `json:"quorum"`
	Trusted    bool      `json:"trusted"` // keys came from the caller's trust, not the bundle
	First      time.Time `json:"first,omitzero"`
	Last       time.Time `json:"last,omitzero"`
	Jobs       []string  `json:"jobs"`
	Consistent []uint64  `json:"consistent_with"` // sizes of earlier checkpoints this bundle extends
}

// VerifyOptions add what the verifier knew before it read the bundle.
type VerifyOptions struct {
	// Earlier are checkpoints seen before (a witness's state, a previous
	// bundle's checkpoint): the bundle must extend each of them, so records
	// deleted from the end since are detected.
	Earlier [][]byte
}

// Verify checks a bundle offline against t, the consortium's keys (nil:
// the bundle's own keys, and Report.Trusted is false): the checkpoint's
// log signature and origin, the witnesses' cosignatures and quorum, then
// each record in order (decoding, place, sequence number, signature), the
// tree root, and consistency with every earlier checkpoint. The first
// failing record is named in a *RecordError.
func Verify(b *Bundle, t *Trust, opt VerifyOptions) (*Report, error) {
	rep := &Report{Trusted: t != nil, Jobs: []string{}, Cosigners: []string{}, Consistent: []uint64{}}
	if b.Format != BundleFormat {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrBundle, b.Format, BundleFormat)
	}
	if t == nil {
		var err error
		if t, err = b.trust(); err != nil {
			return nil, fmt.Errorf("the bundle's own keys: %w", err)
		}
	}
	c, cosigners, err := OpenCheckpoint([]byte(b.Checkpoint), t)
	if err != nil {
		return nil, err
	}
	rep.Origin, rep.Size, rep.Root, rep.Quorum = c.Origin, c.Size, c.Root, t.Quorum
	rep.Cosigners = append(rep.Cosigners, cosigners...)
	if err := t.CheckQuorum(c, cosigners); err != nil {
		return nil, err
	}
	if b.Origin != c.Origin {
		return nil, fmt.Errorf("%w: the bundle says %q, its checkpoint %q", ErrOrigin, b.Origin, c.Origin)
	}

	leaves := make([][]byte, len(b.Records))
	for i, br := range b.Records {
		leaves[i] = br.Leaf
	}
	whole := b.Job == ""
	rep.Whole, rep.Job = whole, b.Job
	// Places first, so a missing record is reported as missing rather
	// than as a wrong sequence number.
	for i, br := range b.Records {
		switch {
		case whole && br.Index != uint64(i):
			return nil, misplaced(b.Records, i)
		case !whole && i > 0 && br.Index <= b.Records[i-1].Index:
			return nil, &RecordError{Index: br.Index, Err: fmt.Errorf("%w: it comes after record %d", ErrOrder, b.Records[i-1].Index)}
		case br.Index >= c.Size:
			return nil, &RecordError{Index: br.Index, Err: fmt.Errorf("beyond the checkpoint's %d records", c.Size)}
		case !whole && br.Proof == nil:
			return nil, &RecordError{Index: br.Index, Err: errors.New("no inclusion proof in a one-job bundle")}
		case whole && br.Proof != nil:
			return nil, &RecordError{Index: br.Index, Err: errors.New("an inclusion proof in a whole-log bundle")}
		}
	}
	indices := make([]uint64, len(b.Records))
	for i, br := range b.Records {
		indices[i] = br.Index
	}
	recs, err := checkRecords(leaves, indices, t)
	if err != nil {
		return nil, err
	}

	if whole {
		if uint64(len(leaves)) != c.Size {
			return nil, &RecordError{Index: uint64(len(leaves)), Err: fmt.Errorf("%w: the checkpoint covers %d records, the bundle holds %d (records %d to %d deleted)",
				ErrMissing, c.Size, len(leaves), len(leaves), c.Size-1)}
		}
		if err := checkTree(leaves, c, opt.Earlier, t, rep); err != nil {
			return nil, err
		}
	} else {
		for i, br := range b.Records {
			if recs[i].JobID != b.Job {
				return nil, &RecordError{Index: br.Index, Kind: recs[i].Kind, Actor: recs[i].Actor,
					Err: fmt.Errorf("of job %q in a bundle of job %q", recs[i].JobID, b.Job)}
			}
			if err := proof.VerifyInclusion(hasher, br.Index, c.Size, hasher.HashLeaf(br.Leaf), br.Proof, c.Root); err != nil {
				return nil, &RecordError{Index: br.Index, Kind: recs[i].Kind, Actor: recs[i].Actor,
					Err: fmt.Errorf("not in the checkpoint's tree: %w", err)}
			}
		}
		for _, e := range opt.Earlier {
			ec, _, err := OpenCheckpoint(e, t)
			if err != nil {
				return nil, fmt.Errorf("earlier checkpoint: %w", err)
			}
			if ec.Size > c.Size {
				return nil, truncated(ec, c)
			}
			if ec.Size == c.Size && !bytes.Equal(ec.Root, c.Root) {
				return nil, fmt.Errorf("%w: the earlier checkpoint (%s) has the same size and another root", ErrInconsistent, ec)
			}
			if ec.Size < c.Size {
				return nil, fmt.Errorf("a one-job bundle cannot prove it extends the earlier checkpoint at size %d: verify a whole-log export", ec.Size)
			}
			rep.Consistent = append(rep.Consistent, ec.Size)
		}
	}

	rep.Records = len(recs)
	jobs := map[string]bool{}
	for _, r := range recs {
		if rep.First.IsZero() || r.Time.Before(rep.First) {
			rep.First = r.Time
		}
		if r.Time.After(rep.Last) {
			rep.Last = r.Time
		}
		if r.JobID != "" && !jobs[r.JobID] {
			jobs[r.JobID] = true
			rep.Jobs = append(rep.Jobs, r.JobID)
		}
	}
	slices.Sort(rep.Jobs)
	return rep, nil
}

// misplaced explains why the record at position i of a whole-log bundle
// is not record i: record i is elsewhere (reordered) or nowhere (deleted).
func misplaced(recs []BundleRecord, i int) error {
	if recs[i].Index < uint64(i) {
		return &RecordError{Index: recs[i].Index, Err: fmt.Errorf("%w: it appears again after record %d", ErrOrder, i-1)}
	}
	for j := i + 1; j < len(recs); j++ {
		if recs[j].Index == uint64(i) {
			return &RecordError{Index: uint64(i), Err: fmt.Errorf("%w: it comes after record %d", ErrOrder, recs[j-1].Index)}
		}
	}
	if i == 0 {
		return &RecordError{Index: 0, Err: fmt.Errorf("%w: the bundle starts at record %d", ErrMissing, recs[0].Index)}
	}
	return &RecordError{Index: uint64(i), Err: fmt.Errorf("%w: the bundle goes from record %d to %d", ErrMissing, i-1, recs[i].Index)}
}

func truncated(earlier, now Checkpoint) error {
	return fmt.Errorf("%w: a checkpoint already seen has %d records, this one %d: records %d to %d were deleted",
		ErrTruncated, earlier.Size, now.Size, now.Size, earlier.Size-1)
}

// checkTree rebuilds the tree from leaves, checks its root against c and,
// on the way, the roots at every earlier checkpoint's size.
func checkTree(leaves [][]byte, c Checkpoint, earlier [][]byte, t *Trust, rep *Report) error {
	want := map[uint64][]Checkpoint{}
	for _, e := range earlier {
		ec, _, err := OpenCheckpoint(e, t)
		if err != nil {
			return fmt.Errorf("earlier checkpoint: %w", err)
		}
		if ec.Size > c.Size {
			return truncated(ec, c)
		}
		want[ec.Size] = append(want[ec.Size], ec)
	}
	rng := ranges.NewEmptyRange(0)
	check := func() error {
		for _, ec := range want[rng.End()] {
			if !bytes.Equal(rootOf(rng), ec.Root) {
				return fmt.Errorf("%w: the first %d records are not those of the earlier checkpoint (%s): records were changed or deleted after it was witnessed",
					ErrInconsistent, ec.Size, ec)
			}
			rep.Consistent = append(rep.Consistent, ec.Size)
		}
		return nil
	}
	if err := check(); err != nil {
		return err
	}
	for _, leaf := range leaves {
		if err := rng.Append(hasher.HashLeaf(leaf), nil); err != nil {
			return err
		}
		if err := check(); err != nil {
			return err
		}
	}
	if !bytes.Equal(rootOf(rng), c.Root) {
		return fmt.Errorf("%w (%s): a record was changed and re-signed, or records were added, removed or reordered after it was signed",
			ErrRoot, c)
	}
	slices.Sort(rep.Consistent)
	return nil
}

// checkRecords decodes each leaf and checks its sequence number against
// its index and its signature against t, spread over the CPUs; the error
// is the lowest-indexed failure.
func checkRecords(leaves [][]byte, indices []uint64, t *Trust) ([]*Record, error) {
	recs := make([]*Record, len(leaves))
	errs := make([]error, len(leaves))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(leaves)/256))
	var wg sync.WaitGroup
	chunk := (len(leaves) + workers - 1) / max(workers, 1)
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(leaves))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				recs[i], errs[i] = checkRecord(leaves[i], indices[i], t)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return recs, nil
}

func checkRecord(leaf []byte, index uint64, t *Trust) (*Record, error) {
	r, err := DecodeRecord(leaf)
	if err != nil {
		return nil, &RecordError{Index: index, Err: err}
	}
	fail := func(err error) error { return &RecordError{Index: index, Kind: r.Kind, Actor: r.Actor, Err: err} }
	if r.Seq != index {
		return nil, fail(fmt.Errorf("%w: it says %d", ErrSeq, r.Seq))
	}
	if err := r.verifySig(t); err != nil {
		return nil, fail(err)
	}
	return r, nil
}

// VerifyStore checks a stored log before the writer uses it: every record
// (decoding, sequence number, signature by a key t names), every stored
// tree hash against the leaves, and the latest checkpoint: signed by a log
// key of t, valid cosignatures, a tree state of this store. The witness
// quorum is not required, since cosignatures may still be collecting. It
// cannot see records deleted from the end together with the checkpoint
// that covered them; the witnesses see that at the next checkpoint.
func VerifyStore(s Store, t *Trust) error {
	size, err := s.Size()
	if err != nil {
		return err
	}
	var cp *Checkpoint
	signed, err := s.Checkpoint()
	if err != nil {
		return err
	}
	if signed != nil {
		c, _, err := OpenCheckpoint(signed, t)
		if err != nil {
			return fmt.Errorf("stored checkpoint: %w", err)
		}
		if c.Size > size {
			return fmt.Errorf("stored checkpoint: %w", truncated(c, Checkpoint{Size: size}))
		}
		cp = &c
	}
	rng := ranges.NewEmptyRange(0)
	checkRoot := func() error {
		if cp != nil && rng.End() == cp.Size && !bytes.Equal(rootOf(rng), cp.Root) {
			return fmt.Errorf("stored checkpoint: %w at size %d: records before %d were changed after it was signed", ErrRoot, cp.Size, cp.Size)
		}
		return nil
	}
	if err := checkRoot(); err != nil {
		return err
	}
	// In batches, so a log of millions of records is not held in memory.
	const batch = 1 << 14
	for start := uint64(0); start < size; start += batch {
		n := min(batch, size-start)
		leaves, indices := make([][]byte, n), make([]uint64, n)
		for i := range n {
			indices[i] = start + i
			if leaves[i], err = s.Leaf(start + i); err != nil {
				return &RecordError{Index: start + i, Err: err}
			}
		}
		if _, err := checkRecords(leaves, indices, t); err != nil {
			return err
		}
		for i, leaf := range leaves {
			var bad error
			err := rng.Append(hasher.HashLeaf(leaf), func(id compact.NodeID, h []byte) {
				if bad != nil {
					return
				}
				stored, err := s.Node(id.Level, id.Index)
				if err == nil && !bytes.Equal(stored, h) {
					err = errors.New("it differs")
				}
				if err != nil {
					bad = &RecordError{Index: indices[i], Err: fmt.Errorf("the stored tree hash %d/%d does not match the records: %w", id.Level, id.Index, err)}
				}
			})
			if err != nil {
				return err
			}
			if bad != nil {
				return bad
			}
			if err := checkRoot(); err != nil {
				return err
			}
		}
	}
	return nil
}
