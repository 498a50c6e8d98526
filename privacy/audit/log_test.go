package audit

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	bolt "go.etcd.io/bbolt"
)

// mth is RFC 6962's Merkle Tree Hash, written from the RFC's definition.
func mth(leaves [][]byte) []byte {
	switch n := len(leaves); n {
	case 0:
		return hasher.EmptyRoot()
	case 1:
		return hasher.HashLeaf(leaves[0])
	default:
		k := 1
		for k*2 < n {
			k *= 2
		}
		return hasher.HashChildren(mth(leaves[:k]), mth(leaves[k:]))
	}
}

func openBolt(t testing.TB) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "audit.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func stores(t *testing.T) map[string]func() Store {
	return map[string]func() Store{
		"mem": func() Store { return NewMemStore() },
		"bolt": func() Store {
			s, err := NewBoltStore(openBolt(t), "audit")
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
}

// Every root, inclusion proof and consistency proof of a growing log
// checks against the RFC's definition.
func TestTreeAndProofs(t *testing.T) {
	for name, mk := range stores(t) {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, mk())
			var leaves [][]byte
			roots := [][]byte{hasher.EmptyRoot()}
			for n := 1; n <= 21; n++ {
				f.add(t, 1)
				leaf, err := f.store.Leaf(uint64(n - 1))
				if err != nil {
					t.Fatal(err)
				}
				leaves = append(leaves, leaf)
				want := mth(leaves)
				if got := f.log.Current().Root; !bytes.Equal(got, want) {
					t.Fatalf("size %d: root differs from RFC 6962", n)
				}
				roots = append(roots, want)
				for i := range n {
					p, err := f.log.InclusionProof(uint64(i), uint64(n))
					if err != nil {
						t.Fatal(err)
					}
					if err := proof.VerifyInclusion(hasher, uint64(i), uint64(n), hasher.HashLeaf(leaves[i]), p, want); err != nil {
						t.Fatalf("inclusion %d in %d: %v", i, n, err)
					}
				}
				for m := 0; m <= n; m++ {
					p, err := f.log.ConsistencyProof(uint64(m), uint64(n))
					if err != nil {
						t.Fatal(err)
					}
					if err := proof.VerifyConsistency(hasher, uint64(m), uint64(n), p, roots[m], want); err != nil {
						t.Fatalf("consistency %d to %d: %v", m, n, err)
					}
					if r, err := f.log.RootAt(uint64(m)); err != nil || !bytes.Equal(r, roots[m]) {
						t.Fatalf("RootAt(%d): %v", m, err)
					}
				}
			}
			if _, err := f.log.InclusionProof(0, 22); !errors.Is(err, ErrNotFound) {
				t.Errorf("proof beyond the size: %v", err)
			}
		})
	}
}

// A reopened bbolt log carries on where it stopped.
func TestBoltReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewBoltStore(db, "audit")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, s)
	f.add(t, 13)
	cp := f.checkpoint(t)
	root := f.log.Current().Root
	db.Close()

	db, err = bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err = NewBoltStore(db, "audit")
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(s, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if c := l.Current(); c.Size != 13 || !bytes.Equal(c.Root, root) {
		t.Fatalf("reopened at %v", c)
	}
	if got, _ := l.Latest(); !bytes.Equal(got, cp) {
		t.Errorf("checkpoint not kept")
	}
	r, err := l.Append(testRecord(f.t0, 13), f.logKey)
	if err != nil || r.Seq != 13 {
		t.Fatalf("append after reopen: seq %d, %v", r.Seq, err)
	}
	if err := VerifyStore(s, f.trust); err != nil {
		t.Fatal(err)
	}
}

// failingStore refuses appends, as a full disk does.
type failingStore struct{ Store }

var errDisk = errors.New("disk full")

func (failingStore) Append(uint64, []byte, []Node) error { return errDisk }

// A failed append leaves the log as it was: same size, same root, and the
// next good append takes the same sequence number.
func TestAppendFailureChangesNothing(t *testing.T) {
	mem := NewMemStore()
	f := newFixture(t, mem)
	f.add(t, 5)
	before := f.log.Current()
	f.log.store = failingStore{mem}
	if _, err := f.log.Append(testRecord(f.t0, 5), f.logKey); !errors.Is(err, errDisk) {
		t.Fatalf("append on a failing store: %v", err)
	}
	if c := f.log.Current(); c.Size != before.Size || !bytes.Equal(c.Root, before.Root) {
		t.Fatalf("state moved to %v", c)
	}
	f.log.store = mem
	if r, err := f.log.Append(testRecord(f.t0, 5), f.logKey); err != nil || r.Seq != 5 {
		t.Fatalf("seq %d, %v", r.Seq, err)
	}
	if err := VerifyStore(mem, f.trust); err != nil {
		t.Fatal(err)
	}
}

// Two writers on one store: the second append at a stale index fails.
func TestStoreConflict(t *testing.T) {
	for name, mk := range stores(t) {
		t.Run(name, func(t *testing.T) {
			s := mk()
			if err := s.Append(0, []byte("a"), nil); err != nil {
				t.Fatal(err)
			}
			if err := s.Append(0, []byte("b"), nil); !errors.Is(err, ErrConflict) {
				t.Fatalf("second append at 0: %v", err)
			}
			if _, err := s.Leaf(1); !errors.Is(err, ErrNotFound) {
				t.Fatalf("leaf past the end: %v", err)
			}
			if n, _ := s.Size(); n != 1 {
				t.Fatalf("size %d", n)
			}
		})
	}
}

func TestPublishRefuses(t *testing.T) {
	f := newFixture(t, NewMemStore())
	f.add(t, 6)
	big := f.checkpoint(t)
	other := newFixture(t, NewMemStore())
	other.add(t, 6)
	foreign, err := other.log.SignCheckpoint(other.logKey)
	if err != nil {
		t.Fatal(err)
	}
	small, err := SignCheckpoint(Checkpoint{Origin: testOrigin, Size: 3, Root: mustRoot(t, f.log, 3)}, f.logKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.log.Publish(foreign); !errors.Is(err, ErrInconsistent) {
		t.Errorf("another log's root: %v", err)
	}
	if err := f.log.Publish(small); !errors.Is(err, ErrTruncated) {
		t.Errorf("smaller than the published: %v", err)
	}
	if got, _ := f.log.Latest(); !bytes.Equal(got, big) {
		t.Errorf("latest changed")
	}
}

func mustRoot(t testing.TB, l *Log, size uint64) []byte {
	t.Helper()
	r, err := l.RootAt(size)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
