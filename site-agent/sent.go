package siteagent

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	pb "github.com/concord-fl/concord/proto/concordpb"
)

// The site keeps its own log of everything that left it: each upload the
// coordinator confirmed, with its size and SHA-256 (never its content) and
// whether its privacy receipt came back countersigned. With the audit log
// the coordinator keeps (which the site witnesses) and the countersigned
// receipts, a hospital can show what it shared, from its own records.

var bSent = []byte("sent")

// SentEntry is one upload the coordinator confirmed, or one validation
// report (Kind VALIDATION_REPORT: Bytes and SHA256 are the signed receipt's)
// the task stream took.
type SentEntry struct {
	Time          time.Time `json:"time"`
	JobID         string    `json:"job_id"`
	Round         uint32    `json:"round"`
	Kind          string    `json:"kind"`
	Bytes         int64     `json:"bytes"`
	SHA256        string    `json:"sha256"`
	Receipt       bool      `json:"privacy_receipt"`
	Countersigned bool      `json:"countersigned"`
	ModelRole     string    `json:"model_role,omitempty"` // validation reports: the model scored
}

// completeSubmission marks an upload complete and appends it to the sent
// log, in one transaction.
func (s *state) completeSubmission(sub *submission, h *pb.UploadHeader, countersigned bool) error {
	sub.Complete = true
	data, err := json.Marshal(sub)
	if err != nil {
		return err
	}
	e := SentEntry{Time: time.Now().UTC(), JobID: h.JobId, Round: h.Round, Kind: h.Kind.String(), Bytes: sub.Bytes,
		SHA256: hex.EncodeToString(sub.SHA256), Receipt: len(sub.Receipt) > 0, Countersigned: countersigned}
	entry, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bSubmissions).Put([]byte(sub.Key), data); err != nil {
			return err
		}
		return putSent(tx, entry)
	})
}

// appendSent appends one entry to the sent log.
func (s *state) appendSent(e SentEntry) error {
	entry, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return putSent(tx, entry) })
}

// putSent appends an encoded entry to the sent log within tx.
func putSent(tx *bolt.Tx, entry []byte) error {
	b, err := tx.CreateBucketIfNotExists(bSent)
	if err != nil {
		return err
	}
	n, err := b.NextSequence()
	if err != nil {
		return err
	}
	return b.Put(u64be(n), entry)
}

func u64be(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// ReadSent reads the sent log from an agent's state folder, read-only.
func ReadSent(stateDir string, timeout time.Duration) ([]SentEntry, error) {
	db, err := openStateReadOnly(stateDir, timeout)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	out := []SentEntry{}
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bSent)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var e SentEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// openStateReadOnly opens an agent's state database without writing it,
// for the offline commands; a running agent holds it (ErrStateLocked).
func openStateReadOnly(stateDir string, timeout time.Duration) (*bolt.DB, error) {
	path := filepath.Join(stateDir, "agent.db")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no agent state in %s: %w (check state_dir in agent.yaml)", stateDir, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s is locked by a running agent (bbolt allows one writer and no reader beside it); stop the agent to read it",
			ErrStateLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("open agent state %s: %w", path, err)
	}
	return db, nil
}
