package serving

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/concord-fl/concord/internal/chainlog"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// StoreFile is the serving database's name in the agent's state folder.
// It is apart from the agent's own database so that `site-agent run` and
// `site-agent serve` can run side by side (bbolt locks a file to one
// process).
const StoreFile = "serve.db"

var (
	bApprovals = []byte("approvals")  // version → Approval
	bQueue     = []byte("queue")      // seq → Item, delivery order
	bParked    = []byte("parked")     // seq → Item with its reason
	bResults   = []byte("results")    // result id → resultRecord
	bAudit     = []byte("audit")      // seq → AuditRecord, hash-chained
	bCounts    = []byte("counts")     // name → uint64
	bSEGQueue  = []byte("seg-queue")  // seq → SEGItem, DICOM SEGs for the PACS
	bSEGParked = []byte("seg-parked") // seq → SEGItem the PACS refused for good
)

// ErrBusy is returned by OpenStore when another process holds the store.
var ErrBusy = errors.New("the serving database is in use by another process")

// Store is the serving side's durable state: approvals, the delivery
// queue, parked results, the results feedback can refer to, and the
// inference audit log. Every write is one bbolt transaction, fsynced
// before it returns.
type Store struct {
	db *bolt.DB
}

// OpenStore opens (creating) dir/serve.db, waiting up to timeout for a
// process that holds it.
func OpenStore(dir string, timeout time.Duration) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state folder: %w", err)
	}
	path := filepath.Join(dir, StoreFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open %s: %w (stop `site-agent serve` first)", path, ErrBusy)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bApprovals, bQueue, bParked, bResults, bAudit, bCounts, bSEGQueue, bSEGParked} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Approval is a hospital's decision to serve one published version: the
// exact signed manifest it looked at, who decided and when.
type Approval struct {
	Version        string    `json:"version"`
	ManifestSHA256 string    `json:"manifest_sha256"`
	DeviceUID      string    `json:"device_uid"`
	By             string    `json:"by"`
	At             time.Time `json:"at"`
}

// Approve records a. Approving a version again replaces the record (a
// re-download with another manifest must be approved again).
func (s *Store) Approve(a Approval) error {
	v, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bApprovals).Put([]byte(a.Version), v) })
}

// Approvals lists the recorded approvals by version name.
func (s *Store) Approvals() ([]Approval, error) {
	var out []Approval
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bApprovals).ForEach(func(_, v []byte) error {
			var a Approval
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("approval record: %w", err)
			}
			out = append(out, a)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, err
}

// Item is one result waiting for delivery: its FHIR transaction bundle.
type Item struct {
	Seq       uint64    `json:"seq"`
	ResultID  string    `json:"result_id"`
	Bundle    []byte    `json:"bundle"`
	Arrived   time.Time `json:"arrived"` // when the study arrived
	Enqueued  time.Time `json:"enqueued"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
	Parked    time.Time `json:"parked,omitzero"`
}

// seqKey is the key of a queue's sequence number, in order.
var seqKey = chainlog.Key

// resultRecord is what feedback needs of a result: where the study's
// instances were kept and what the model said. It stays at the site.
type resultRecord struct {
	ID       string    `json:"id"`
	Version  string    `json:"version"`
	Classes  []string  `json:"classes"`
	Decided  int       `json:"decided"` // the class index the decision names
	Files    []string  `json:"files"`
	Seg      string    `json:"seg,omitempty"` // a segmentation result's DICOM SEG
	Created  time.Time `json:"created"`
	Feedback string    `json:"feedback,omitempty"` // the verdict, once given
}

// commitResult records one study's result in a single transaction: the
// audit record, the result feedback refers to, the queue item and, when
// given, the SEG to store in the PACS. A result is either wholly recorded
// or not at all.
func (s *Store) commitResult(rec resultRecord, audit AuditRecord, item Item, segs ...SEGItem) error {
	rv, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := appendAudit(tx, audit); err != nil {
			return err
		}
		if err := tx.Bucket(bResults).Put([]byte(rec.ID), rv); err != nil {
			return err
		}
		q := tx.Bucket(bQueue)
		seq, err := q.NextSequence()
		if err != nil {
			return err
		}
		item.Seq = seq
		iv, err := json.Marshal(item)
		if err != nil {
			return err
		}
		if err := q.Put(seqKey(seq), iv); err != nil {
			return err
		}
		for _, sg := range segs {
			if err := putSEGItem(tx, sg); err != nil {
				return err
			}
		}
		return bump(tx, "served", 1)
	})
}

func (s *Store) result(id string) (resultRecord, bool, error) {
	var r resultRecord
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bResults).Get([]byte(id))
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &r)
	})
	return r, ok, err
}

func (s *Store) putResult(r resultRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bResults).Put([]byte(r.ID), v) })
}

// head returns the oldest queued item, or ok false when the queue is empty.
func (s *Store) head() (it Item, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bQueue).Cursor().First()
		if k == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &it)
	})
	return it, ok, err
}

// delivered removes a delivered item.
func (s *Store) delivered(seq uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bQueue).Delete(seqKey(seq)); err != nil {
			return err
		}
		return bump(tx, "delivered", 1)
	})
}

// failedAttempt records a retryable failure on the queued item.
func (s *Store) failedAttempt(it Item) error {
	v, err := json.Marshal(it)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bQueue).Put(seqKey(it.Seq), v) })
}

// park moves an item the endpoint refused for good out of the queue.
func (s *Store) park(it Item) error {
	v, err := json.Marshal(it)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bQueue).Delete(seqKey(it.Seq)); err != nil {
			return err
		}
		if err := tx.Bucket(bParked).Put(seqKey(it.Seq), v); err != nil {
			return err
		}
		return bump(tx, "parked", 1)
	})
}

// Parked lists the results the endpoint refused for good, oldest first.
func (s *Store) Parked() ([]Item, error) {
	var out []Item
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bParked).ForEach(func(_, v []byte) error {
			var it Item
			if err := json.Unmarshal(v, &it); err != nil {
				return err
			}
			it.Bundle = nil
			out = append(out, it)
			return nil
		})
	})
	return out, err
}

// Counts are the serving totals since the store was made.
type Counts struct {
	Served    uint64 `json:"served"`
	Delivered uint64 `json:"fhir_delivered"`
	Parked    uint64 `json:"parked"`
	Resent    uint64 `json:"resent"` // parked results sent back to the queue (Resend)
	Queued    int    `json:"queued"`
	Feedback  uint64 `json:"feedback"`
	// SEGStored, SEGQueued and SEGParked count the DICOM SEGs sent to the
	// PACS (Config.SEGStore), waiting, and refused for good.
	SEGStored uint64 `json:"seg_stored"`
	SEGQueued int    `json:"seg_queued"`
	SEGParked uint64 `json:"seg_parked"`
}

// Counts reads the totals and the queue depth.
func (s *Store) Counts() (Counts, error) {
	var c Counts
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bCounts)
		get := func(name string) uint64 {
			if v := b.Get([]byte(name)); len(v) == 8 {
				return binary.BigEndian.Uint64(v)
			}
			return 0
		}
		c.Served, c.Delivered, c.Parked, c.Feedback, c.Resent = get("served"), get("delivered"), get("parked"), get("feedback"), get("resent")
		c.Queued = tx.Bucket(bQueue).Stats().KeyN
		c.SEGStored, c.SEGParked = get("seg_stored"), get("seg_parked")
		c.SEGQueued = tx.Bucket(bSEGQueue).Stats().KeyN
		return nil
	})
	return c, err
}

func bump(tx *bolt.Tx, name string, n uint64) error {
	b := tx.Bucket(bCounts)
	var cur uint64
	if v := b.Get([]byte(name)); len(v) == 8 {
		cur = binary.BigEndian.Uint64(v)
	}
	return b.Put([]byte(name), binary.BigEndian.AppendUint64(nil, cur+n))
}

// AuditRecord is one inference in the site's own log: which model, which
// study (by the SHA-256 of its UID), when. No pixel, no identifier.
type AuditRecord struct {
	Seq          uint64    `json:"seq"`
	Time         time.Time `json:"time"`
	Event        string    `json:"event"` // inference | feedback
	Version      string    `json:"version"`
	DeviceUID    string    `json:"device_uid"`
	StudyUIDHash string    `json:"study_uid_sha256"`
	ResultID     string    `json:"result_id"`
	Instances    int       `json:"instances,omitempty"`
	Verdict      string    `json:"verdict,omitempty"`
	Prev         string    `json:"prev"` // the previous record's hash; "" for the first
	Hash         string    `json:"hash"` // SHA-256 of this record with Hash empty
}

// Link, SetLink and Digest make AuditRecord a chainlog.Record.
func (r AuditRecord) Link() chainlog.Link {
	return chainlog.Link{Seq: r.Seq, Prev: r.Prev, Hash: r.Hash}
}

// SetLink implements chainlog.Record.
func (r *AuditRecord) SetLink(l chainlog.Link) { r.Seq, r.Prev, r.Hash = l.Seq, l.Prev, l.Hash }

// Digest implements chainlog.Record.
func (r AuditRecord) Digest() string {
	r.Hash = ""
	b, _ := json.Marshal(r)
	s := sha256.Sum256(append([]byte("concord serving audit v1\n"), b...))
	return hex.EncodeToString(s[:])
}

// appendAudit chains r after the last record: the log can be appended to,
// and a record changed or removed afterwards breaks every hash after it.
func appendAudit(tx *bolt.Tx, r AuditRecord) error { return chainlog.Append(tx.Bucket(bAudit), &r) }

func (s *Store) feedbackAudit(r AuditRecord) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := appendAudit(tx, r); err != nil {
			return err
		}
		return bump(tx, "feedback", 1)
	})
}

// AuditLog returns the inference log after checking its chain; a broken
// chain is an error naming the first bad record.
func (s *Store) AuditLog() ([]AuditRecord, error) {
	var out []AuditRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = chainlog.Read[AuditRecord](tx.Bucket(bAudit), "audit")
		return err
	})
	return out, err
}

// pruneResults forgets the results created before t and returns their
// ids: the studies kept for feedback are not kept forever.
func (s *Store) pruneResults(t time.Time) ([]string, error) {
	var ids []string
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bResults)
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var r resultRecord
			if err := json.Unmarshal(v, &r); err != nil || r.Created.Before(t) {
				ids = append(ids, string(k))
			}
		}
		for _, id := range ids {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	return ids, err
}
