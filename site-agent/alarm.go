package siteagent

import (
	"encoding/json"
	"errors"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/concord-fl/concord/privacy/audit"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// A witness alarm is the site's refusal to cosign an audit checkpoint
// because the coordinator's history is not an extension of what the site
// witnessed: truncated, rewritten, forked, or signed by another key. A
// log line at the site is not enough: the consortium must learn of it.
// The agent keeps every alarm in its own state (site-agent privacy shows
// them; the coordinator cannot erase them) and sends each to the
// coordinator, which records it in its audit log and shows it to the
// admins. An alarm not yet sent goes out at the next session.

var kAlarms = []byte("alarms")

// maxAlarms bounds the alarms kept: the oldest go first. The first alarm
// is what matters; later ones usually repeat it.
const maxAlarms = 32

// Alarm is one refused checkpoint.
type Alarm struct {
	Time time.Time `json:"time"`
	// Kind is what was wrong (truncated, rewritten, key, malformed);
	// Witnessed the size this site had cosigned when it refused. A site
	// whose witness stays where it was refuses every later checkpoint for
	// the same reason: one alarm per kind and witnessed size is raised,
	// not one per checkpoint (which would also grow the log it alarms about).
	Kind       string `json:"kind"`
	Witnessed  uint64 `json:"witnessed"`
	Reason     string `json:"reason"`
	Size       uint64 `json:"size"`       // the size the refused checkpoint claims (0 if unreadable)
	Checkpoint []byte `json:"checkpoint"` // the refused signed checkpoint: the evidence
	Sent       bool   `json:"sent"`       // handed to the coordinator's stream
}

// alarmKind says whether a witness error means the coordinator's history
// changed, and how; "" for a local failure or a checkpoint that cannot be
// judged yet (no key pinned, a proof from another size).
func alarmKind(err error) string {
	for _, k := range []struct {
		err  error
		kind string
	}{{audit.ErrTruncated, "truncated"}, {audit.ErrInconsistent, "rewritten"}, {audit.ErrCheckpointSignature, "key"},
		{audit.ErrOrigin, "key"}, {audit.ErrMalformedCheckpoint, "malformed"}} {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	return ""
}

// raiseAlarm records a refused checkpoint in the agent's state and queues
// it for the coordinator. It returns false when err is no alarm.
func (a *Agent) raiseAlarm(err error, cp *pb.AuditCheckpoint, out chan<- *pb.WitnessAlarm) bool {
	kind := alarmKind(err)
	if kind == "" {
		return false
	}
	al := Alarm{Time: time.Now().UTC(), Kind: kind, Witnessed: a.witnessed(), Reason: bounded(err.Error(), maxDetail), Checkpoint: cp.Signed}
	if logKey := a.st.auditGet(kLogKey); logKey != nil {
		if t, terr := audit.NewTrust(string(a.st.auditGet(kOrigin)), []string{string(logKey)}, nil, nil, 0); terr == nil {
			if c, _, perr := audit.OpenCheckpoint(cp.Signed, t); perr == nil {
				al.Size = c.Size
			}
		}
	}
	repeat := false
	if serr := a.st.db.Update(func(tx *bolt.Tx) error {
		return updateAlarms(tx, func(as []Alarm) []Alarm {
			if n := len(as); n > 0 && as[n-1].Kind == al.Kind && as[n-1].Witnessed == al.Witnessed {
				repeat = true
				return as
			}
			return append(as, al)
		})
	}); serr != nil {
		a.log.Error("could not store the witness alarm", "err", serr)
	}
	if repeat {
		a.log.Warn("audit checkpoint not cosigned, for the reason already raised as a witness alarm", "size", al.Size, "err", al.Reason)
		return true
	}
	a.log.Error("WITNESS ALARM: audit checkpoint not cosigned: the coordinator's audit history was truncated, rewritten or forked; the alarm is sent to the coordinator and kept here (site-agent privacy)",
		"size", al.Size, "err", al.Reason)
	select {
	case out <- al.proto():
	default: // one is queued already; the stored alarm goes out at the next session
	}
	return true
}

func (al Alarm) proto() *pb.WitnessAlarm {
	return &pb.WitnessAlarm{Reason: al.Reason, Size: al.Size, Checkpoint: al.Checkpoint}
}

// markAlarmSent records that the alarm for checkpoint was handed to the
// coordinator's stream.
func (a *Agent) markAlarmSent(checkpoint []byte) {
	err := a.st.db.Update(func(tx *bolt.Tx) error {
		return updateAlarms(tx, func(as []Alarm) []Alarm {
			for i := range as {
				if string(as[i].Checkpoint) == string(checkpoint) {
					as[i].Sent = true
				}
			}
			return as
		})
	})
	if err != nil {
		a.log.Warn("could not mark the witness alarm sent; it will be sent again", "err", err)
	}
}

// unsentAlarms are the stored alarms not yet handed to a stream.
func (a *Agent) unsentAlarms() []*pb.WitnessAlarm {
	var out []*pb.WitnessAlarm
	_ = a.st.db.View(func(tx *bolt.Tx) error {
		as, err := readAlarms(tx)
		for _, al := range as {
			if !al.Sent {
				out = append(out, al.proto())
			}
		}
		return err
	})
	return out
}

func readAlarms(tx *bolt.Tx) ([]Alarm, error) {
	b := tx.Bucket(bAudit)
	if b == nil {
		return nil, nil
	}
	v := b.Get(kAlarms)
	if v == nil {
		return nil, nil
	}
	var as []Alarm
	if err := json.Unmarshal(v, &as); err != nil {
		return nil, err
	}
	return as, nil
}

func updateAlarms(tx *bolt.Tx, f func([]Alarm) []Alarm) error {
	as, err := readAlarms(tx)
	if err != nil {
		return err
	}
	as = f(as)
	if len(as) > maxAlarms {
		as = as[len(as)-maxAlarms:]
	}
	data, err := json.Marshal(as)
	if err != nil {
		return err
	}
	b, err := tx.CreateBucketIfNotExists(bAudit)
	if err != nil {
		return err
	}
	return b.Put(kAlarms, data)
}
