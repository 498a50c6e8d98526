package audit

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

var (
	hasher = rfc6962.DefaultHasher
	ranges = &compact.RangeFactory{Hash: hasher.HashChildren}
)

// Log is the writer's side of the audit log: it signs and appends records
// and answers proofs. One Log per Store; it is safe for concurrent use.
type Log struct {
	store  Store
	origin string

	mu  sync.Mutex
	rng *compact.Range // the tree's right border, [0, size)
}

// Open opens the log kept in s. origin is the log's name in its
// checkpoints, e.g. "concord.example.org/audit"; the consortium's trust
// file names the same.
func Open(s Store, origin string) (*Log, error) {
	if err := checkOrigin(origin); err != nil {
		return nil, err
	}
	size, err := s.Size()
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	rng, err := rangeAt(s, size)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return &Log{store: s, origin: origin, rng: rng}, nil
}

// rangeAt rebuilds the compact range [0, size) from stored node hashes.
func rangeAt(s Store, size uint64) (*compact.Range, error) {
	ids := compact.RangeNodes(0, size, nil)
	hashes := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := s.Node(id.Level, id.Index)
		if err != nil {
			return nil, fmt.Errorf("tree state at size %d: %w", size, err)
		}
		hashes[i] = h
	}
	return ranges.NewRange(0, size, hashes)
}

func rootOf(r *compact.Range) []byte {
	root, err := r.GetRootHash(nil)
	if err != nil || root == nil {
		return hasher.EmptyRoot()
	}
	return root
}

// Origin is the log's name.
func (l *Log) Origin() string { return l.origin }

// Size is the number of records.
func (l *Log) Size() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rng.End()
}

// Current is the log's present tree state, unsigned.
func (l *Log) Current() Checkpoint {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Checkpoint{Origin: l.origin, Size: l.rng.End(), Root: rootOf(l.rng)}
}

// Append sets r.Seq to the next index, signs r with k and stores it with
// the tree nodes it completes, in one Store.Append. It returns the record
// as stored. r.Time must be set; it is kept in UTC.
func (l *Log) Append(r Record, k *Key) (Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r.Seq = l.rng.End()
	r.Time = r.Time.UTC()
	r.Data = append([]DataField(nil), r.Data...)
	if err := r.Sign(k); err != nil {
		return Record{}, fmt.Errorf("audit record %s: %w", r.Kind, err)
	}
	leaf := r.Leaf()
	next, err := ranges.NewRange(0, l.rng.End(), append([][]byte(nil), l.rng.Hashes()...))
	if err != nil {
		return Record{}, err
	}
	var nodes []Node
	if err := next.Append(hasher.HashLeaf(leaf), func(id compact.NodeID, h []byte) {
		nodes = append(nodes, Node{Level: id.Level, Index: id.Index, Hash: h})
	}); err != nil {
		return Record{}, err
	}
	if err := l.store.Append(r.Seq, leaf, nodes); err != nil {
		return Record{}, fmt.Errorf("append audit record %d (%s): %w", r.Seq, r.Kind, err)
	}
	l.rng = next
	return r, nil
}

// Record reads and decodes record index.
func (l *Log) Record(index uint64) (*Record, error) {
	leaf, err := l.store.Leaf(index)
	if err != nil {
		return nil, err
	}
	return DecodeRecord(leaf)
}

// SignCheckpoint signs the current tree state with the log key k. It does
// not store it: publish it to the witnesses first, then Publish it with
// their cosignatures.
func (l *Log) SignCheckpoint(k *Key) ([]byte, error) {
	return SignCheckpoint(l.Current(), k)
}

// Publish stores signed (a checkpoint with any cosignatures) as the
// latest, after checking it is this log's state at its size and not
// smaller than the latest already stored.
func (l *Log) Publish(signed []byte) error {
	text, sigs, err := sigLines(signed)
	if err != nil {
		return err
	}
	if len(sigs) == 0 {
		return fmt.Errorf("%w: unsigned", ErrMalformedCheckpoint)
	}
	c, err := parseCheckpointText(string(text))
	if err != nil {
		return err
	}
	if c.Origin != l.origin {
		return fmt.Errorf("%w: %q, this log is %q", ErrOrigin, c.Origin, l.origin)
	}
	root, err := l.RootAt(c.Size)
	if err != nil {
		return err
	}
	if !bytes.Equal(root, c.Root) {
		return fmt.Errorf("%w: the checkpoint's root at size %d is not this log's", ErrInconsistent, c.Size)
	}
	if prev, err := l.store.Checkpoint(); err != nil {
		return err
	} else if prev != nil {
		ptext, _, err := sigLines(prev)
		if err != nil {
			return err
		}
		if p, err := parseCheckpointText(string(ptext)); err == nil && p.Size > c.Size {
			return fmt.Errorf("%w: publishing size %d after size %d", ErrTruncated, c.Size, p.Size)
		}
	}
	return l.store.SetCheckpoint(signed)
}

// Latest returns the latest published checkpoint, nil if none.
func (l *Log) Latest() ([]byte, error) { return l.store.Checkpoint() }

// RootAt is the root hash of the tree of the first size records.
func (l *Log) RootAt(size uint64) ([]byte, error) {
	l.mu.Lock()
	cur := l.rng.End()
	if size == cur {
		defer l.mu.Unlock()
		return rootOf(l.rng), nil
	}
	l.mu.Unlock()
	if size > cur {
		return nil, fmt.Errorf("tree size %d: %w (size %d)", size, ErrNotFound, cur)
	}
	r, err := rangeAt(l.store, size)
	if err != nil {
		return nil, err
	}
	return rootOf(r), nil
}

// InclusionProof proves record index is in the tree of size records.
func (l *Log) InclusionProof(index, size uint64) ([][]byte, error) {
	if size > l.Size() {
		return nil, fmt.Errorf("tree size %d: %w", size, ErrNotFound)
	}
	n, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	return l.rehash(n)
}

// ConsistencyProof proves the tree of size1 records is a prefix of the
// tree of size2: what a witness checks before cosigning.
func (l *Log) ConsistencyProof(size1, size2 uint64) ([][]byte, error) {
	if size2 > l.Size() {
		return nil, fmt.Errorf("tree size %d: %w", size2, ErrNotFound)
	}
	n, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	return l.rehash(n)
}

func (l *Log) rehash(n proof.Nodes) ([][]byte, error) {
	hashes := make([][]byte, len(n.IDs))
	for i, id := range n.IDs {
		h, err := l.store.Node(id.Level, id.Index)
		if err != nil {
			return nil, errors.Join(errors.New("make proof"), err)
		}
		hashes[i] = h
	}
	return n.Rehash(hashes, hasher.HashChildren)
}
