package audit

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// BoltStore is a Store in one top-level bucket of a bbolt database, with
// nested buckets "leaves" (big-endian index → leaf), "nodes" (level byte +
// big-endian index → hash) and "meta" (size, checkpoint). Each Append is
// one transaction.
type BoltStore struct {
	db     *bolt.DB
	bucket []byte
}

var (
	bLeaves     = []byte("leaves")
	bNodes      = []byte("nodes")
	bMeta       = []byte("meta")
	kSize       = []byte("size")
	kCheckpoint = []byte("checkpoint")
)

// NewBoltStore uses (and creates if needed) the bucket named bucket in db.
// The caller owns db and closes it.
func NewBoltStore(db *bolt.DB, bucket string) (*BoltStore, error) {
	s := &BoltStore{db: db, bucket: []byte(bucket)}
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(s.bucket)
		if err != nil {
			return err
		}
		for _, name := range [][]byte{bLeaves, bNodes, bMeta} {
			if _, err := b.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("audit store in bucket %q: %w", bucket, err)
	}
	return s, nil
}

func (s *BoltStore) sub(tx *bolt.Tx, name []byte) *bolt.Bucket {
	return tx.Bucket(s.bucket).Bucket(name)
}

func u64key(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func nodeKeyBytes(level uint, index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{byte(level)}, index)
}

func (s *BoltStore) Size() (n uint64, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		n = sizeIn(s.sub(tx, bMeta))
		return nil
	})
	return n, err
}

func sizeIn(meta *bolt.Bucket) uint64 {
	if v := meta.Get(kSize); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (s *BoltStore) get(name []byte, key []byte, what string) (out []byte, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v := s.sub(tx, name).Get(key)
		if v == nil {
			return fmt.Errorf("%s: %w", what, ErrNotFound)
		}
		out = append([]byte{}, v...)
		return nil
	})
	return out, err
}

func (s *BoltStore) Leaf(i uint64) ([]byte, error) {
	return s.get(bLeaves, u64key(i), fmt.Sprintf("leaf %d", i))
}

func (s *BoltStore) Node(level uint, index uint64) ([]byte, error) {
	return s.get(bNodes, nodeKeyBytes(level, index), fmt.Sprintf("node %d/%d", level, index))
}

func (s *BoltStore) Append(index uint64, leaf []byte, nodes []Node) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := s.sub(tx, bMeta)
		if size := sizeIn(meta); index != size {
			return fmt.Errorf("%w: %d, size %d", ErrConflict, index, size)
		}
		if err := s.sub(tx, bLeaves).Put(u64key(index), leaf); err != nil {
			return err
		}
		nb := s.sub(tx, bNodes)
		for _, n := range nodes {
			if err := nb.Put(nodeKeyBytes(n.Level, n.Index), n.Hash); err != nil {
				return err
			}
		}
		return meta.Put(kSize, u64key(index+1))
	})
}

func (s *BoltStore) Checkpoint() (cp []byte, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		if v := s.sub(tx, bMeta).Get(kCheckpoint); v != nil {
			cp = append([]byte{}, v...)
		}
		return nil
	})
	return cp, err
}

func (s *BoltStore) SetCheckpoint(signed []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return s.sub(tx, bMeta).Put(kCheckpoint, signed)
	})
}
