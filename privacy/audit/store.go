package audit

import (
	"errors"
	"fmt"
	"sync"
)

// Store is what the log needs from storage: leaves by index, the hashes of
// the tree's complete subtrees, and the latest published checkpoint.
//
// The log keeps every complete subtree's hash (each leaf's hash at level 0,
// then each perfect node as it completes): about two hashes per record, 64
// bytes, so a log of 10^6 records keeps about 64 MB of hashes and makes any
// inclusion or consistency proof with at most 2·log2(size) reads instead of
// rehashing leaves.
type Store interface {
	// Size is the number of leaves.
	Size() (uint64, error)
	// Leaf returns leaf index; ErrNotFound past the end.
	Leaf(index uint64) ([]byte, error)
	// Node returns the hash of the complete subtree at level covering
	// leaves [index<<level, (index+1)<<level); ErrNotFound if not stored.
	Node(level uint, index uint64) ([]byte, error)
	// Append stores leaf at index, which must equal Size(), and the node
	// hashes it completes, all or nothing.
	Append(index uint64, leaf []byte, nodes []Node) error
	// Checkpoint returns the latest signed checkpoint, nil if none.
	Checkpoint() ([]byte, error)
	// SetCheckpoint replaces the latest signed checkpoint.
	SetCheckpoint(signed []byte) error
}

// Node is the hash of one complete subtree.
type Node struct {
	Level uint
	Index uint64
	Hash  []byte
}

// Storage errors.
var (
	ErrNotFound = errors.New("not in the log")
	// ErrConflict is Append at an index other than the size: another
	// writer appended first, or the caller's view is stale.
	ErrConflict = errors.New("append at the wrong index")
)

// MemStore is a Store in memory, for tests and tools.
type MemStore struct {
	mu         sync.Mutex
	leaves     [][]byte
	nodes      map[nodeKey][]byte
	checkpoint []byte
}

type nodeKey struct {
	level uint
	index uint64
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{nodes: map[nodeKey][]byte{}} }

func (s *MemStore) Size() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint64(len(s.leaves)), nil
}

func (s *MemStore) Leaf(i uint64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= uint64(len(s.leaves)) {
		return nil, fmt.Errorf("leaf %d: %w", i, ErrNotFound)
	}
	return s.leaves[i], nil
}

func (s *MemStore) Node(level uint, index uint64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.nodes[nodeKey{level, index}]
	if !ok {
		return nil, fmt.Errorf("node %d/%d: %w", level, index, ErrNotFound)
	}
	return h, nil
}

func (s *MemStore) Append(index uint64, leaf []byte, nodes []Node) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if index != uint64(len(s.leaves)) {
		return fmt.Errorf("%w: %d, size %d", ErrConflict, index, len(s.leaves))
	}
	s.leaves = append(s.leaves, append([]byte{}, leaf...))
	for _, n := range nodes {
		s.nodes[nodeKey{n.Level, n.Index}] = append([]byte{}, n.Hash...)
	}
	return nil
}

func (s *MemStore) Checkpoint() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkpoint, nil
}

func (s *MemStore) SetCheckpoint(signed []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checkpoint = append([]byte{}, signed...)
	return nil
}

// truncate drops the leaves from size on: what a malicious operator does to
// a log's storage. Tests use it to show the damage is detected.
func (s *MemStore) truncate(size uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leaves = s.leaves[:size]
}

// setLeaf replaces leaf i without touching the tree: storage corruption or
// tampering, for tests.
func (s *MemStore) setLeaf(i uint64, leaf []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leaves[i] = leaf
}
