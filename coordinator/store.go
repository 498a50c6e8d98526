package coordinator

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ChunkSize is the payload size of one chunk of a stored or transferred
// blob: small enough to stay far below gRPC's message limit.
const ChunkSize = 1 << 20

var (
	bMeta       = []byte("meta")
	bJobs       = []byte("jobs")
	bBlobs      = []byte("blobs")
	bBlobMeta   = []byte("blobmeta")
	bUploads    = []byte("uploads")
	bModels     = []byte("models")
	bSites      = []byte("sites")
	bReceipts   = []byte("receipts")   // countersigned privacy receipts, by job/round/site
	bValidation = []byte("validation") // signed validation receipts, by job/round/role/site
	allBuckets  = [][]byte{bMeta, bJobs, bBlobs, bBlobMeta, bUploads, bModels, bSites, bReceipts, bValidation}
)

// ErrNotFound is returned when a job, blob, model or upload does not exist.
var ErrNotFound = errors.New("not found")

// store is the coordinator's embedded database. Everything that must
// survive a crash lives here: jobs with their round state, uploads (chunks
// persisted before they are acknowledged), global models, the event log.
type store struct {
	db *bolt.DB
}

func openStore(path string) (*store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open state database %s: %w (is another coordinator running on it?)", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise state database: %w", err)
	}
	return &store{db: db}, nil
}

func (s *store) Close() error { return s.db.Close() }

// nextSeq increments and returns a named counter.
func nextSeq(tx *bolt.Tx, name string) (uint64, error) {
	b := tx.Bucket(bMeta)
	var n uint64
	if v := b.Get([]byte(name)); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	n++
	return n, b.Put([]byte(name), u64(n))
}

func u64(n uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return b[:]
}

func putJSON(tx *bolt.Tx, bucket []byte, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Bucket(bucket).Put([]byte(key), data)
}

func getJSON(tx *bolt.Tx, bucket []byte, key string, v any) error {
	data := tx.Bucket(bucket).Get([]byte(key))
	if data == nil {
		return fmt.Errorf("%s %q: %w", bucket, key, ErrNotFound)
	}
	return json.Unmarshal(data, v)
}

// blobInfo describes a stored blob.
type blobInfo struct {
	Chunks int    `json:"chunks"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

func chunkKey(name string, i int) []byte {
	return append([]byte(name+"\x00"), u64(uint64(i))...)
}

// putBlob stores data as a chunked blob within tx, replacing any old one.
func putBlob(tx *bolt.Tx, name string, data []byte) (blobInfo, error) {
	if err := deleteBlob(tx, name); err != nil {
		return blobInfo{}, err
	}
	b := tx.Bucket(bBlobs)
	n := 0
	for off := 0; off < len(data) || n == 0; off += ChunkSize {
		end := min(off+ChunkSize, len(data))
		if err := b.Put(chunkKey(name, n), bytes.Clone(data[off:end])); err != nil {
			return blobInfo{}, err
		}
		n++
		if end == len(data) {
			break
		}
	}
	sum := sha256.Sum256(data)
	info := blobInfo{Chunks: n, Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	return info, putJSON(tx, bBlobMeta, name, info)
}

// putBlobChunk stores chunk i of a blob being assembled piecewise (an upload).
func putBlobChunk(tx *bolt.Tx, name string, i int, data []byte) error {
	return tx.Bucket(bBlobs).Put(chunkKey(name, i), bytes.Clone(data))
}

func finishBlob(tx *bolt.Tx, name string, info blobInfo) error {
	return putJSON(tx, bBlobMeta, name, info)
}

func deleteBlob(tx *bolt.Tx, name string) error {
	c := tx.Bucket(bBlobs).Cursor()
	prefix := []byte(name + "\x00")
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return tx.Bucket(bBlobMeta).Delete([]byte(name))
}

func (s *store) blobInfo(name string) (blobInfo, error) {
	var info blobInfo
	err := s.db.View(func(tx *bolt.Tx) error { return getJSON(tx, bBlobMeta, name, &info) })
	return info, err
}

// eachChunk calls fn for every chunk of a blob from chunk `from` on, in
// order. Each chunk is copied out of its own short read transaction and fn
// runs outside any transaction: fn may send on the network, and a read
// transaction held across a blocked send would stop the database from
// growing, and so every writer. fn owns the slice it is given.
func (s *store) eachChunk(name string, from int, fn func(i int, data []byte) error) error {
	info, err := s.blobInfo(name)
	if err != nil {
		return err
	}
	for i := from; i < info.Chunks; i++ {
		var data []byte
		if err := s.db.View(func(tx *bolt.Tx) error {
			d := tx.Bucket(bBlobs).Get(chunkKey(name, i))
			if d == nil {
				return fmt.Errorf("blob %q chunk %d: %w", name, i, ErrNotFound)
			}
			data = bytes.Clone(d)
			return nil
		}); err != nil {
			return err
		}
		if err := fn(i, data); err != nil {
			return err
		}
	}
	return nil
}

// readBlob reads a whole blob into memory. Use only for blobs whose size is
// bounded by one model or one aggregate.
func (s *store) readBlob(name string) ([]byte, error) {
	var buf bytes.Buffer
	err := s.eachChunk(name, 0, func(_ int, data []byte) error {
		_, err := buf.Write(data)
		return err
	})
	return buf.Bytes(), err
}
