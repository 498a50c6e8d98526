package coordinator

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Event is one entry of the coordinator's event stream: every admin action
// and every round event passes through it, with who did it and when. The
// persisted log is hash-chained (each entry's hash covers the previous
// entry's hash), so an edited or deleted entry breaks the chain; the audit
// trail, metrics and `jobs watch` are all subscribers of this one stream.
type Event struct {
	Seq      int64     `json:"seq"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Actor    string    `json:"actor"`
	JobID    string    `json:"job_id,omitempty"`
	Round    int       `json:"round,omitempty"`
	Site     string    `json:"site,omitempty"`
	Detail   string    `json:"detail,omitempty"`
	PrevHash string    `json:"prev_hash"`
	Hash     string    `json:"hash"`
}

// Event kinds.
const (
	EvJobSubmitted   = "job.submitted"
	EvJobAborted     = "job.aborted"
	EvJobCompleted   = "job.completed"
	EvRoundNote      = "round.note"
	EvRoundClosed    = "round.closed"
	EvRoundAggregate = "round.aggregated"
	EvTaskSent       = "task.sent"
	EvTaskFailed     = "task.failed"
	EvUploadAccepted = "upload.accepted"
	EvUploadRejected = "upload.rejected"
	EvSiteConnected  = "site.connected"
	EvSiteLeft       = "site.disconnected"
	EvSiteHealth     = "site.health"
	EvSiteRevoked    = "site.revoked"
	EvModelPublished = "model.published"
	EvKeyCombined    = "key.combined"
	EvCoordinator    = "coordinator.started"
)

func (e *Event) computeHash() string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00%s\x00%s\x00%s\x00%s\x00%d\x00%s\x00%s\x00%s",
		e.Seq, e.Time.UTC().Format(time.RFC3339Nano), e.Kind, e.Actor, e.JobID, e.Round, e.Site, e.Detail, e.PrevHash)
	return hex.EncodeToString(h.Sum(nil))
}

func (e *Event) proto() *pb.JobEvent {
	return &pb.JobEvent{Seq: e.Seq, UnixMillis: e.Time.UnixMilli(), JobId: e.JobID, Kind: e.Kind,
		Actor: e.Actor, Round: uint32(e.Round), Site: e.Site, Detail: e.Detail}
}

// bus persists events and fans them out to subscribers.
type bus struct {
	st  *store
	log *slog.Logger
	now func() time.Time

	mu   sync.Mutex
	last string
	subs map[chan Event]struct{}
}

func newBus(st *store, log *slog.Logger, now func() time.Time) (*bus, error) {
	b := &bus{st: st, log: log, now: now, subs: map[chan Event]struct{}{}}
	err := st.db.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bEvents).Cursor().Last()
		if k == nil {
			return nil
		}
		var e Event
		if err := json.Unmarshal(v, &e); err != nil {
			return err
		}
		b.last = e.Hash
		return nil
	})
	return b, err
}

// emit appends an event to the log and delivers it to subscribers. A
// subscriber too slow to keep up loses events rather than stalling rounds;
// it can re-read them from the log by sequence number.
func (b *bus) emit(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e.Time = b.now().UTC()
	e.PrevHash = b.last
	e.Detail = bound(e.Detail, maxDetailBytes)
	e.JobID, e.Site, e.Actor = bound(e.JobID, maxEchoBytes), bound(e.Site, maxEchoBytes), bound(e.Actor, 2*maxEchoBytes)
	err := b.st.db.Update(func(tx *bolt.Tx) error {
		seq, err := nextSeq(tx, "event")
		if err != nil {
			return err
		}
		e.Seq = int64(seq)
		e.Hash = e.computeHash()
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return tx.Bucket(bEvents).Put(u64(seq), data)
	})
	if err != nil {
		b.log.Error("event log write failed", "kind", e.Kind, "job", e.JobID, "err", err)
		return
	}
	b.last = e.Hash
	b.log.Info(e.Detail, "event", e.Kind, "job", e.JobID, "round", e.Round, "site", e.Site, "actor", e.Actor, "seq", e.Seq)
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

func (b *bus) subscribe() (chan Event, func()) {
	ch := make(chan Event, 256)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
	}
}

// events returns logged events after seq for a job ("" for all), oldest
// first, at most limit of them (0: no limit), and whether more follow. A
// record that cannot be decoded is returned as an "event.unreadable" entry
// rather than failing the listing, and every detail is cut to
// maxDetailBytes, so no single record can break listings for everyone.
func (b *bus) events(jobID string, after int64, limit int) ([]Event, bool, error) {
	var out []Event
	more := false
	err := b.st.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bEvents).Cursor()
		for k, v := c.Seek(u64(uint64(after + 1))); k != nil; k, v = c.Next() {
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				e = Event{Seq: int64(binary.BigEndian.Uint64(k)), Kind: "event.unreadable", Actor: "coordinator",
					Detail: "this log record could not be decoded"}
				if jobID != "" {
					continue
				}
			}
			if jobID == "" || e.JobID == jobID {
				if limit > 0 && len(out) >= limit {
					more = true
					break
				}
				e.Detail = bound(e.Detail, maxDetailBytes)
				out = append(out, e)
			}
		}
		return nil
	})
	return out, more, err
}

// VerifyChain checks the hash chain of the whole event log and returns the
// number of entries verified, or the sequence number where it breaks.
func (b *bus) VerifyChain() (int, error) {
	n := 0
	prev := ""
	err := b.st.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bEvents).ForEach(func(k, v []byte) error {
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if e.PrevHash != prev || e.computeHash() != e.Hash {
				return fmt.Errorf("audit chain broken at entry %d", e.Seq)
			}
			prev = e.Hash
			n++
			return nil
		})
	})
	return n, err
}
