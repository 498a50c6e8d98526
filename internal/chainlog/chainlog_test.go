package chainlog

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

type note struct {
	Seq  uint64 `json:"seq"`
	Text string `json:"text"`
	Prev string `json:"prev"`
	Hash string `json:"hash"`
}

func (n note) Link() Link      { return Link{Seq: n.Seq, Prev: n.Prev, Hash: n.Hash} }
func (n *note) SetLink(l Link) { n.Seq, n.Prev, n.Hash = l.Seq, l.Prev, l.Hash }
func (n note) Digest() string {
	n.Hash = ""
	b, _ := json.Marshal(n)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestChain: records read back in order, chained; editing, removing or
// swapping a record after the fact is reported with its sequence number.
func TestChain(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "log.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bucket := []byte("log")
	update := func(f func(b *bolt.Bucket) error) {
		t.Helper()
		if err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucket)
			if err != nil {
				return err
			}
			return f(b)
		}); err != nil {
			t.Fatal(err)
		}
	}
	read := func() ([]note, error) {
		var out []note
		err := db.View(func(tx *bolt.Tx) error {
			var err error
			out, err = Read[note](tx.Bucket(bucket), "test")
			return err
		})
		return out, err
	}
	for _, s := range []string{"a", "b", "c"} {
		update(func(b *bolt.Bucket) error { return Append(b, &note{Text: s}) })
	}
	got, err := read()
	if err != nil || len(got) != 3 || got[0].Seq != 1 || got[0].Prev != "" || got[2].Prev != got[1].Hash || got[1].Text != "b" {
		t.Fatalf("read %+v, %v", got, err)
	}
	put := func(k uint64, n note) {
		update(func(b *bolt.Bucket) error { v, _ := json.Marshal(n); return b.Put(Key(k), v) })
	}
	edited := got[1]
	edited.Text = "B"
	put(2, edited)
	if _, err := read(); err == nil || !strings.Contains(err.Error(), "test record 2 does not chain") {
		t.Errorf("an edited record: %v", err)
	}
	put(2, got[1])
	if _, err := read(); err != nil {
		t.Fatalf("restored: %v", err)
	}
	update(func(b *bolt.Bucket) error { return b.Delete(Key(2)) })
	if _, err := read(); err == nil || !strings.Contains(err.Error(), "test record 3 does not chain") {
		t.Errorf("a removed record: %v", err)
	}
	put(2, got[2])
	put(3, got[1])
	if _, err := read(); err == nil || !strings.Contains(err.Error(), "does not chain") {
		t.Errorf("swapped records: %v", err)
	}
}
