package pacs

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The intake's records in the agent's bbolt database. Keys hold UIDs;
// the database is the agent's state, private to the site.
var (
	bSeries    = []byte("pacs.series")    // series UID → seriesRec
	bInstances = []byte("pacs.instances") // series UID \x00 SOP UID → instanceRec
	bLRU       = []byte("pacs.lru")       // tick (8 bytes) → instance key, cached only
	bMeta      = []byte("pacs.meta")      // "tick", "bytes"
)

type seriesRec struct {
	Study     string `json:"study"`
	Modality  string `json:"modality,omitempty"`
	BodyPart  string `json:"body_part,omitempty"`
	Instances int    `json:"instances"` // what the PACS said when it was done
	Done      bool   `json:"done"`
}

type instanceRec struct {
	Study  string `json:"study"`
	Size   int64  `json:"size"`
	Cached bool   `json:"cached"`
	Tick   uint64 `json:"tick,omitempty"` // its key in bLRU while cached
}

func instanceKey(series, sop string) []byte { return []byte(series + "\x00" + sop) }

func splitKey(k []byte) (series, sop string) {
	for i, c := range k {
		if c == 0 {
			return string(k[:i]), string(k[i+1:])
		}
	}
	return string(k), ""
}

// cacheName is an instance's file in the cache: a hash, since a UID is an
// identifier and a folder listing should show none.
func cacheName(sop string) string {
	h := sha256.Sum256([]byte(sop))
	return hex.EncodeToString(h[:16]) + ".dcm"
}

func initBuckets(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bSeries, bInstances, bLRU, bMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
}

func getJSON(b *bolt.Bucket, k []byte, v any) (bool, error) {
	raw := b.Get(k)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("pacs intake state: %w", err)
	}
	return true, nil
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, raw)
}

func getU64(b *bolt.Bucket, k string) uint64 {
	v := b.Get([]byte(k))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putU64(b *bolt.Bucket, k string, v uint64) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	return b.Put([]byte(k), buf[:])
}

func tickKey(t uint64) []byte {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], t)
	return buf[:]
}
