package coordinator

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/concord-fl/concord/privacy/audit"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Event is one entry of the coordinator's event stream: every admin action
// and every round event passes through it, with who did it and when. Each
// event is a record of the audit log (package privacy/audit): signed with
// the coordinator's audit key and appended to an RFC 6962 Merkle tree whose
// checkpoints the sites witness, so no single party can rewrite or
// truncate it. The audit trail, metrics and `jobs watch` are all
// subscribers of this one stream.
type Event struct {
	Seq    int64 // 1-based: the audit record's index + 1
	Time   time.Time
	Kind   string
	Actor  string
	JobID  string
	Round  int
	Site   string
	Detail string
	// Data names what a peer sent (sizes and SHA-256, never content).
	Data []audit.DataField
}

// Event kinds.
const (
	EvJobSubmitted       = "job.submitted"
	EvJobAborted         = "job.aborted"
	EvJobCompleted       = "job.completed"
	EvRoundNote          = "round.note"
	EvRoundClosed        = "round.closed"
	EvRoundAggregate     = "round.aggregated"
	EvTaskSent           = "task.sent"
	EvTaskFailed         = "task.failed"
	EvUploadAccepted     = "upload.accepted"
	EvUploadRejected     = "upload.rejected"
	EvSiteConnected      = "site.connected"
	EvSiteLeft           = "site.disconnected"
	EvSiteHealth         = "site.health"
	EvSiteRevoked        = "site.revoked"
	EvSiteWitness        = "site.witness"
	EvModelPublished     = "model.published"
	EvKeyCombined        = "key.combined"
	EvCoordinator        = "coordinator.started"
	EvAuditOverride      = "audit.override"
	EvAuditExported      = "audit.exported"
	EvPrivacyReceipt     = "privacy.receipt"
	EvModelRejected      = "model.rejected"
	EvValidation         = "validation.receipt"
	EvValidationRejected = "validation.refused"
	EvSiteDrift          = "site.drift"
	EvRetrain            = "job.retrain"
	EvJobApproved        = "job.approved"
	// EvWitnessAlarm: a site refused to cosign a checkpoint because the
	// history it was shown does not extend what it witnessed.
	EvWitnessAlarm = "site.witness_alarm"
)

func (e *Event) proto() *pb.JobEvent {
	return &pb.JobEvent{Seq: e.Seq, UnixMillis: e.Time.UnixMilli(), JobId: e.JobID, Kind: e.Kind,
		Actor: e.Actor, Round: uint32(e.Round), Site: e.Site, Detail: e.Detail}
}

func eventOf(r *audit.Record) Event {
	return Event{Seq: int64(r.Seq) + 1, Time: r.Time, Kind: r.Kind, Actor: r.Actor, JobID: r.JobID, Round: int(r.Round),
		Site: r.Site, Detail: r.Detail, Data: r.Data}
}

// bus persists events in the audit log and fans them out to subscribers.
type bus struct {
	log   *slog.Logger
	now   func() time.Time
	store *audit.BoltStore
	alog  *audit.Log
	key   *audit.Key

	mu   sync.Mutex
	subs map[chan Event]struct{}
	// signedSize is the size of the last checkpoint signed.
	signedSize uint64
}

// auditBucket holds the audit log in the coordinator's database.
const auditBucket = "audit"

func newBus(st *store, log *slog.Logger, now func() time.Time, key *audit.Key, origin string) (*bus, error) {
	bs, err := audit.NewBoltStore(st.db, auditBucket)
	if err != nil {
		return nil, err
	}
	l, err := audit.Open(bs, origin)
	if err != nil {
		return nil, err
	}
	return &bus{log: log, now: now, store: bs, alog: l, key: key, subs: map[chan Event]struct{}{}}, nil
}

// trust is what the coordinator itself trusts: its own log key.
func (b *bus) trust() (*audit.Trust, error) {
	return audit.NewTrust(b.alog.Origin(), []string{b.key.Verifier()}, nil, nil, 0)
}

// verify checks the stored log (signatures, tree, latest checkpoint) and
// returns its size.
func (b *bus) verify() (uint64, error) {
	t, err := b.trust()
	if err != nil {
		return 0, err
	}
	if err := audit.VerifyStore(b.store, t); err != nil {
		return 0, err
	}
	return b.alog.Size(), nil
}

// emit appends an event to the audit log and delivers it to subscribers. A
// subscriber too slow to keep up loses events rather than stalling rounds;
// it can re-read them from the log by sequence number.
func (b *bus) emit(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e.Time = b.now().UTC()
	e.Detail = bound(e.Detail, maxDetailBytes)
	e.JobID, e.Site, e.Actor = bound(e.JobID, maxEchoBytes), bound(e.Site, maxEchoBytes), bound(e.Actor, 2*maxEchoBytes)
	rec, err := b.alog.Append(audit.Record{Time: e.Time, Kind: e.Kind, Actor: e.Actor, JobID: e.JobID, Round: uint32(max(e.Round, 0)),
		Site: e.Site, Detail: e.Detail, Data: e.Data}, b.key)
	if err != nil {
		b.log.Error("audit log write failed", "kind", e.Kind, "job", e.JobID, "err", err)
		return
	}
	e.Seq = int64(rec.Seq) + 1
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
// record that cannot be read is returned as an "event.unreadable" entry
// rather than failing the listing, and every detail is cut to
// maxDetailBytes, so no single record can break listings for everyone.
func (b *bus) events(jobID string, after int64, limit int) ([]Event, bool, error) {
	var out []Event
	size := b.alog.Size()
	for i := uint64(max(after, 0)); i < size; i++ {
		var e Event
		r, err := b.alog.Record(i)
		switch {
		case err != nil && jobID != "":
			continue
		case err != nil:
			e = Event{Seq: int64(i) + 1, Kind: "event.unreadable", Actor: "coordinator",
				Detail: fmt.Sprintf("this audit record could not be read (%s)", bound(err.Error(), maxEchoBytes))}
		default:
			e = eventOf(r)
		}
		if jobID != "" && e.JobID != jobID {
			continue
		}
		if limit > 0 && len(out) >= limit {
			return out, true, nil
		}
		e.Detail = bound(e.Detail, maxDetailBytes)
		out = append(out, e)
	}
	return out, false, nil
}
