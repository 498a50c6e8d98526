package siteagent

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bSubmissions = []byte("submissions")
	bKeys        = []byte("keys")
)

// state is the agent's embedded database: what it has computed and
// submitted, and its sealed key material.
type state struct {
	db  *bolt.DB
	dir string
}

// submission is an upload the agent has prepared. It is recorded before
// the first byte is sent; Complete is set when the coordinator confirms.
type submission struct {
	Key      string             `json:"key"`
	Nonce    []byte             `json:"nonce"`
	File     string             `json:"file"`
	Chunks   int                `json:"chunks"`
	Bytes    int64              `json:"bytes"`
	SHA256   []byte             `json:"sha256"`
	Samples  uint64             `json:"samples"`
	Metrics  map[string]float64 `json:"metrics,omitempty"`
	Params   uint64             `json:"params"`
	Layout   string             `json:"layout"`
	Complete bool               `json:"complete"`
	// Receipt is the site-signed privacy receipt sent with a DP update.
	Receipt []byte    `json:"receipt,omitempty"`
	Created time.Time `json:"created"`
}

func openState(path string) (*state, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open agent state %s: %w (is another agent running on it?)", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bSubmissions, bKeys, bPrivacy, bReceipts} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &state{db: db, dir: filepath.Dir(path)}, nil
}

func (s *state) close() error { return s.db.Close() }

func (s *state) submission(key string) (*submission, error) {
	var sub *submission
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bSubmissions).Get([]byte(key))
		if v == nil {
			return nil
		}
		sub = &submission{}
		return json.Unmarshal(v, sub)
	})
	return sub, err
}

func (s *state) putSubmission(sub *submission) error {
	data, err := json.Marshal(sub)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bSubmissions).Put([]byte(sub.Key), data) })
}

func (s *state) putKey(job string, sealed []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bKeys).Put([]byte(job), sealed) })
}

func (s *state) key(job string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bKeys).Get([]byte(job)); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	if out == nil && err == nil {
		err = fmt.Errorf("no key material for job %s: %w", job, errNoKey)
	}
	return out, err
}

var errNoKey = errors.New("key setup has not run at this site")

// writeChunks stores an upload's chunks in a file of length-prefixed
// records (synced to disk) and describes it in a submission.
func (s *state) writeChunks(key string, chunks [][]byte) (*submission, error) {
	dir := filepath.Join(s.dir, "pending")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	name := filepath.Join(dir, fmt.Sprintf("%x.bin", sha256.Sum256([]byte(key))))
	f, err := os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	h := sha256.New()
	sub := &submission{Key: key, File: name, Chunks: len(chunks), Created: time.Now().UTC()}
	for _, c := range chunks {
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(len(c)))
		w.Write(n[:])
		w.Write(c)
		h.Write(c)
		sub.Bytes += int64(len(c))
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	sub.SHA256 = h.Sum(nil)
	return sub, nil
}

// readChunks calls fn for each chunk of a submission's file from index from.
func readChunks(sub *submission, from int, fn func(i int, data []byte) error) error {
	f, err := os.Open(sub.File)
	if err != nil {
		return fmt.Errorf("pending upload file: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	for i := 0; i < sub.Chunks; i++ {
		var n [4]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return fmt.Errorf("pending upload file truncated at chunk %d: %w", i, err)
		}
		size := binary.LittleEndian.Uint32(n[:])
		if i < from {
			if _, err := r.Discard(int(size)); err != nil {
				return err
			}
			continue
		}
		data := make([]byte, size)
		if _, err := io.ReadFull(r, data); err != nil {
			return fmt.Errorf("pending upload file truncated at chunk %d: %w", i, err)
		}
		if err := fn(i, data); err != nil {
			return err
		}
	}
	return nil
}

// salt returns the state database's random salt for stretching the key
// passphrase, creating it on first use.
func (s *state) salt() ([]byte, error) {
	var out []byte
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bKeys)
		if v := b.Get([]byte("\x00salt")); v != nil {
			out = append([]byte(nil), v...)
			return nil
		}
		out = make([]byte, 16)
		if _, err := rand.Read(out); err != nil {
			return err
		}
		return b.Put([]byte("\x00salt"), out)
	})
	return out, err
}
