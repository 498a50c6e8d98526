package coordinator

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/concord-fl/concord/privacy/audit"
	pb "github.com/concord-fl/concord/proto/concordpb"
)

// auditTrust is the trust an exported bundle carries: the coordinator's
// log key and the witness keys the sites presented, with a quorum of a
// majority of those witnesses. A verifier should check a bundle against
// the consortium's own trust file rather than these keys.
func (c *Coordinator) auditTrust() (*audit.Trust, error) {
	c.mu.Lock()
	var witnesses []string
	for _, r := range c.sites {
		if r.WitnessKey != "" && !slices.Contains(witnesses, r.WitnessKey) {
			witnesses = append(witnesses, r.WitnessKey)
		}
	}
	c.mu.Unlock()
	slices.Sort(witnesses)
	quorum := 0
	if len(witnesses) > 0 {
		quorum = len(witnesses)/2 + 1
	}
	return audit.NewTrust(c.bus.alog.Origin(), []string{c.cfg.AuditKey.Verifier()}, nil, witnesses, quorum)
}

// freshCheckpoint signs a checkpoint covering the whole log and waits up
// to wait for the witnesses' quorum to cosign it.
func (c *Coordinator) freshCheckpoint(t *audit.Trust, wait time.Duration) {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		// Again each time: a site answers one offer at a time, so one
		// that was cosigning an older checkpoint is offered this one next.
		c.publishCheckpoint()
		signed, err := c.bus.alog.Latest()
		if err == nil && signed != nil {
			if cp, cosigners, err := audit.OpenCheckpoint(signed, t); err == nil && t.CheckQuorum(cp, cosigners) == nil {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exportBundle is the audit bundle of a job ("" for the whole log).
func (c *Coordinator) exportBundle(jobID string) ([]byte, error) {
	t, err := c.auditTrust()
	if err != nil {
		return nil, err
	}
	c.freshCheckpoint(t, 5*time.Second)
	b, err := audit.Export(c.bus.alog, t, audit.ExportOptions{JobID: jobID})
	if err != nil {
		return nil, err
	}
	return b.Marshal()
}

// ExportAudit streams an audit bundle or a compliance report. Nothing in
// the log changes except the record of the export itself, appended after.
func (a *adminService) ExportAudit(req *pb.ExportAuditRequest, stream pb.Admin_ExportAuditServer) error {
	c := a.c
	id, err := a.caller(stream.Context())
	if err != nil {
		return err
	}
	jobID := req.JobId
	if req.ModelVersion != "" {
		mvs, _, err := c.models("")
		if err != nil {
			return status.Errorf(codes.Internal, "%v", err)
		}
		i := slices.IndexFunc(mvs, func(m *pb.ModelVersion) bool { return m.Version == req.ModelVersion })
		if i < 0 {
			return status.Errorf(codes.NotFound, "model version %s does not exist; `concordctl models list` shows the versions", q(req.ModelVersion))
		}
		jobID = mvs[i].JobId
	}
	if jobID != "" {
		c.mu.Lock()
		_, ok := c.jobs[jobID]
		c.mu.Unlock()
		if !ok {
			return status.Errorf(codes.NotFound, "job %s does not exist; `concordctl jobs list` shows the jobs", q(jobID))
		}
	}
	format := req.Format
	if format == "" {
		format = "bundle"
	}
	var data []byte
	var name string
	switch format {
	case "bundle":
		data, err = c.exportBundle(jobID)
		name = "audit-bundle.json"
		if jobID != "" {
			name = fmt.Sprintf("audit-job-%s.json", jobID)
		}
	default:
		data, name, err = c.exportReport(jobID, format, id)
	}
	if err != nil {
		if status.Code(err) != codes.Unknown {
			return err
		}
		return status.Errorf(codes.Internal, "export: %v", err)
	}
	for off := 0; off < len(data) || off == 0; off += ChunkSize {
		ch := &pb.ExportChunk{Data: data[off:min(off+ChunkSize, len(data))]}
		if off == 0 {
			ch.FileName = name
		}
		if err := within(stream.Context(), c.cfg.StreamTimeout, "sending the export", func() error { return stream.Send(ch) }); err != nil {
			return err
		}
		if len(data) == 0 {
			break
		}
	}
	sum := sha256.Sum256(data)
	what := "the whole audit log"
	if jobID != "" {
		what = "job " + jobID
	}
	c.bus.emit(Event{Kind: EvAuditExported, Actor: id.String(), JobID: jobID,
		Detail: fmt.Sprintf("%s of %s exported by %s (%d bytes, sha256 %x)", format, what, id, len(data), sum),
		Data:   []audit.DataField{{Name: name, Size: uint64(len(data)), SHA256: sum}}})
	return nil
}
