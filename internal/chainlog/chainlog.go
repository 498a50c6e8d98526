// Package chainlog keeps an append-only log in a bbolt bucket whose records
// are hash-chained: each carries the hash of the one before it and its own
// hash over its content, so a record edited, removed or reordered after the
// fact breaks the chain, which Read reports. The site agent's inference log
// (serving) and its custom-code approvals log use it.
package chainlog

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Link is a record's place in its chain.
type Link struct {
	Seq  uint64 // the bucket's sequence number, from 1
	Prev string // the previous record's Hash; "" for the first
	Hash string // the record's Digest
}

// Record is one record of a chained log, JSON-encoded in its bucket.
type Record interface {
	Link() Link
	SetLink(Link)
	// Digest is the hex SHA-256 of the record with its Hash empty.
	Digest() string
}

// Key is the bucket key of sequence number seq (big-endian, so the
// bucket's order is the log's).
func Key(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// Append chains r after the bucket's last record and stores it.
func Append[R any, P interface {
	*R
	Record
}](b *bolt.Bucket, r P) error {
	var l Link
	if k, v := b.Cursor().Last(); k != nil {
		var last R
		if err := json.Unmarshal(v, &last); err != nil {
			return fmt.Errorf("log: last record: %w", err)
		}
		l.Prev = P(&last).Link().Hash
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	l.Seq = seq
	r.SetLink(l)
	l.Hash = r.Digest()
	r.SetLink(l)
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put(Key(seq), v)
}

// Read returns the bucket's records in order after checking the chain; a
// broken chain is an error naming the first bad record and what (the log's
// name in messages).
func Read[R any, P interface {
	*R
	Record
}](b *bolt.Bucket, what string) ([]R, error) {
	var out []R
	prev := ""
	err := b.ForEach(func(k, v []byte) error {
		var r R
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("%s record %x: %w", what, k, err)
		}
		l := P(&r).Link()
		if l.Prev != prev || l.Hash != P(&r).Digest() || string(k) != string(Key(l.Seq)) {
			return fmt.Errorf("%s record %d does not chain to the one before it: the log was altered", what, l.Seq)
		}
		prev = l.Hash
		out = append(out, r)
		return nil
	})
	return out, err
}
