package siteagent

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/concord-fl/concord/evaluation/receipt"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// Validation reports wait in an outbox until the task stream has taken
// them: a report made while the link is down, or whose sending failed, is
// sent after the agent reconnects. The outbox is in memory; after a
// restart the coordinator sends the open VALIDATE task again and the
// agent scores the model again, which gives the same figures.

// sentKindValidation is the sent log's kind for a validation report.
const sentKindValidation = "VALIDATION_REPORT"

// queueReport puts r in the outbox, in place of an earlier report for the
// same task (the coordinator sent the task again), and wakes the sender.
func (a *Agent) queueReport(r *pb.ValidationReport) {
	a.mu.Lock()
	replaced := false
	for i, q := range a.outbox {
		if q.TaskId == r.TaskId {
			a.outbox[i], replaced = r, true
		}
	}
	if !replaced {
		if len(a.outbox) >= maxQueued {
			a.log.Warn("too many validation reports waiting to be sent; dropped the oldest (the coordinator sends its task again)",
				"task", a.outbox[0].TaskId)
			a.outbox = a.outbox[1:]
		}
		a.outbox = append(a.outbox, r)
	}
	a.mu.Unlock()
	select {
	case a.reportReady <- struct{}{}:
	default:
	}
}

// sendReports sends the outbox's reports in order with send (the
// session's stream), removing each once the stream took it and recording
// it in the sent log. It stops at the first failure, leaving the rest.
func (a *Agent) sendReports(send func(*pb.AgentMessage) error) error {
	for {
		a.mu.Lock()
		if len(a.outbox) == 0 {
			a.mu.Unlock()
			return nil
		}
		r := a.outbox[0]
		a.mu.Unlock()
		if err := send(&pb.AgentMessage{Msg: &pb.AgentMessage_Validation{Validation: r}}); err != nil {
			return err
		}
		a.mu.Lock()
		if len(a.outbox) > 0 && a.outbox[0] == r {
			a.outbox = a.outbox[1:]
		}
		a.mu.Unlock()
		a.recordReport(r)
	}
}

// recordReport appends a sent report to the site's log of what left it:
// its size and SHA-256, never its content.
func (a *Agent) recordReport(r *pb.ValidationReport) {
	sum := sha256.Sum256(r.Receipt)
	e := SentEntry{Time: time.Now().UTC(), JobID: r.JobId, Round: r.Round, Kind: sentKindValidation,
		Bytes: int64(len(r.Receipt)), SHA256: hex.EncodeToString(sum[:])}
	if rc, err := receipt.Parse(r.Receipt); err == nil { // signed here a moment ago
		e.ModelRole = rc.ModelRole
	}
	if err := a.st.appendSent(e); err != nil {
		a.log.Error("validation report sent but not recorded in the sent log", "job", r.JobId, "err", err)
	}
}
