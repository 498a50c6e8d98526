package siteagent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"github.com/concord-fl/concord/internal/chainlog"
	bolt "go.etcd.io/bbolt"
)

// The hospital's approvals of custom model code (`site-agent models
// approve-code`) live in their own small database in the state directory,
// not in agent.db: the running agent holds agent.db for its lifetime, and
// an approval must take effect without stopping it. Both the command and
// the agent open code.db for one transaction at a time. Each approval and
// revocation is also appended to a hash-chained log in the same file, which
// `models list` verifies: a record removed or edited breaks the chain.

// CodeDBFile is the approvals database's name in the state directory.
const CodeDBFile = "code.db"

var (
	bCodeApproved = []byte("approved") // sha256 → CodeApproval
	bCodeLog      = []byte("log")      // seq → CodeEvent, hash-chained
)

var codeHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

// CodeApproval is the hospital's approval of one module, by its SHA-256.
type CodeApproval struct {
	SHA256 string    `json:"sha256"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
}

// CodeEvent is one record of the approvals log.
type CodeEvent struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Event  string    `json:"event"` // approve-code | revoke-code
	SHA256 string    `json:"sha256"`
	By     string    `json:"by"`
	Prev   string    `json:"prev"`
	Hash   string    `json:"hash"`
}

// Link, SetLink and Digest make CodeEvent a chainlog.Record.
func (e CodeEvent) Link() chainlog.Link { return chainlog.Link{Seq: e.Seq, Prev: e.Prev, Hash: e.Hash} }

// SetLink implements chainlog.Record.
func (e *CodeEvent) SetLink(l chainlog.Link) { e.Seq, e.Prev, e.Hash = l.Seq, l.Prev, l.Hash }

// Digest implements chainlog.Record.
func (e CodeEvent) Digest() string {
	e.Hash = ""
	b, _ := json.Marshal(e) // plain strings, numbers and a time: cannot fail
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ErrCodeHash is returned for an argument that is not a SHA-256 in hex.
var ErrCodeHash = errors.New("not a SHA-256: want 64 lowercase hex digits, as the job's model.code.sha256")

func openCodeDB(stateDir string, readOnly bool) (*bolt.DB, error) {
	path := filepath.Join(stateDir, CodeDBFile)
	if !readOnly {
		if err := os.MkdirAll(stateDir, 0o700); err != nil {
			return nil, fmt.Errorf("create state directory: %w", err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, ReadOnly: readOnly})
	if err != nil {
		return nil, fmt.Errorf("open code approvals %s: %w", path, err)
	}
	if readOnly {
		return db, nil
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bCodeApproved, bCodeLog} {
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
	return db, nil
}

// ApproveCode records that by approved the module with this SHA-256 for
// training at this site.
func ApproveCode(stateDir, sha, by string, now time.Time) error {
	return changeCode(stateDir, "approve-code", sha, by, now)
}

// RevokeCode withdraws an approval: later tasks shipping the module are
// refused. A round already handed to the trainer finishes.
func RevokeCode(stateDir, sha, by string, now time.Time) error {
	return changeCode(stateDir, "revoke-code", sha, by, now)
}

func changeCode(stateDir, event, sha, by string, now time.Time) error {
	if !codeHash.MatchString(sha) {
		return fmt.Errorf("%q: %w", bounded(sha, 80), ErrCodeHash)
	}
	if by == "" || len(by) > 128 {
		return errors.New("say who approves in 1..128 characters (--by NAME)")
	}
	db, err := openCodeDB(stateDir, false)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Update(func(tx *bolt.Tx) error {
		ap := tx.Bucket(bCodeApproved)
		if event == "revoke-code" {
			if ap.Get([]byte(sha)) == nil {
				return fmt.Errorf("module %s is not approved at this site", sha)
			}
			if err := ap.Delete([]byte(sha)); err != nil {
				return err
			}
		} else {
			v, _ := json.Marshal(CodeApproval{SHA256: sha, By: by, At: now.UTC()})
			if err := ap.Put([]byte(sha), v); err != nil {
				return err
			}
		}
		return chainlog.Append(tx.Bucket(bCodeLog), &CodeEvent{Time: now.UTC(), Event: event, SHA256: sha, By: by})
	})
}

// CodeApprovals lists the approved modules and the approvals log, after
// checking the log's chain. A state directory without code.db has neither.
func CodeApprovals(stateDir string) ([]CodeApproval, []CodeEvent, error) {
	if _, err := os.Stat(filepath.Join(stateDir, CodeDBFile)); errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	db, err := openCodeDB(stateDir, true)
	if err != nil {
		return nil, nil, err
	}
	defer db.Close()
	var aps []CodeApproval
	var log []CodeEvent
	err = db.View(func(tx *bolt.Tx) error {
		ap, lg := tx.Bucket(bCodeApproved), tx.Bucket(bCodeLog)
		if ap == nil || lg == nil {
			return nil
		}
		err := ap.ForEach(func(_, v []byte) error {
			var a CodeApproval
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("code approval record: %w", err)
			}
			aps = append(aps, a)
			return nil
		})
		if err != nil {
			return err
		}
		log, err = chainlog.Read[CodeEvent](lg, "code approvals log")
		return err
	})
	sort.Slice(aps, func(i, j int) bool { return aps[i].At.Before(aps[j].At) })
	return aps, log, err
}

// codeApproved reports whether the module with this SHA-256 is approved.
func codeApproved(stateDir, sha string) (bool, error) {
	if _, err := os.Stat(filepath.Join(stateDir, CodeDBFile)); errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	db, err := openCodeDB(stateDir, true)
	if err != nil {
		return false, err
	}
	defer db.Close()
	ok := false
	err = db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bCodeApproved); b != nil {
			ok = b.Get([]byte(sha)) != nil
		}
		return nil
	})
	return ok, err
}
