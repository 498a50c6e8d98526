package coordinator

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/concord-fl/concord/privacy/audit"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// A witness alarm is a site's refusal to cosign an audit checkpoint: the
// history it was offered is not an extension of what it witnessed. The
// site keeps the alarm itself; the coordinator records it in the audit
// log (an event the site's next cosignature then covers), logs an error
// for the operator and shows it in concordctl sites list. Nothing here
// can make the site forget it.

// maxCheckpointBytes bounds the evidence a site may attach.
const maxCheckpointBytes = 16 << 10

type witnessAlarm struct {
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
	Size   uint64    `json:"size"`
	// CheckpointSHA256 names the refused checkpoint; the bytes are in the
	// audit event's data and at the site.
	CheckpointSHA256 [32]byte `json:"checkpoint_sha256"`
}

// String is the alarm as the admin sees it; empty without one.
func (a *witnessAlarm) String() string {
	if a == nil {
		return ""
	}
	return fmt.Sprintf("%s: refused to cosign the audit checkpoint of size %d: %s", a.Time.Format(time.RFC3339), a.Size, a.Reason)
}

// witnessAlarm records a site's alarm.
func (c *Coordinator) witnessAlarm(site string, m *pb.WitnessAlarm) {
	reason := bound(m.Reason, maxReasonBytes)
	if reason == "" {
		reason = "no reason given"
	}
	cp := m.Checkpoint
	if len(cp) > maxCheckpointBytes {
		cp = cp[:maxCheckpointBytes]
	}
	al := &witnessAlarm{Time: c.now().UTC(), Reason: reason, Size: m.Size, CheckpointSHA256: sha256.Sum256(cp)}
	c.log.Error("WITNESS ALARM: a site refused to cosign the audit checkpoint: the audit history it was shown does not extend what it witnessed; "+
		"tell the consortium and investigate before anything else", "site", site, "size", m.Size, "reason", reason)
	c.mu.Lock()
	r := c.siteLocked(site)
	r.WitnessAlarm = al
	c.saveSiteLocked(r)
	c.mu.Unlock()
	c.bus.emit(Event{Kind: EvWitnessAlarm, Actor: "site:" + site, Site: site,
		Detail: fmt.Sprintf("site %s refused to cosign the audit checkpoint of size %d: %s", site, m.Size, reason),
		Data:   []audit.DataField{{Name: "refused-checkpoint", Size: uint64(len(cp)), SHA256: al.CheckpointSHA256}}})
}
